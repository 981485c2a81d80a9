"""The exact bit-sliced computation: GEMM kernel choice, dtype rules and the block loop.

Reads only the LayerPlan (and the chip's tensors), never the hardware config. Kernels: `int8`
(torch._int_mm, int8 x int8 -> int32, exact at any size) or `float32` (exact for integers below 2^24,
float64 where a partial sum can reach it); `auto` picks the faster by a one-time probe of measured
throughput, cached per process and thread count. A speed choice only: both are bit-exact.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

from crossnas.analog.adc import CAL_ROWS, RangeRecorder
from crossnas.analog.effects import ChipReads
from crossnas.analog.plan import F32_EXACT, LayerPlan
from crossnas.errors import CrossnasError

PS_BLOCK = 2**18  # partial sums per row tile per memory block (1 MiB of float32: stays in L2)
KERNELS = ("auto", "int8", "float32")
_DEFAULT = ["auto"]
_PROBE: dict[int, dict] = {}  # threads -> probe result


@contextmanager
def exact_float():
    """float32 matmuls/convs without TF32 on CUDA (sums of small integers must stay exact)."""
    if not torch.cuda.is_available():
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def set_kernel(kind: str) -> None:
    """The process default for layers built with kernel=None (`analog.kernel`, `--kernel`)."""
    if kind not in KERNELS:
        raise CrossnasError(f"analog.kernel: expected one of {', '.join(KERNELS)}, got {kind!r}")
    _DEFAULT[0] = kind


def probe(reps: int = 3) -> dict:
    """Seconds of one representative tile GEMM (256 crossbar columns x 256 rows x 2,048 position-chunks,
    operand conversion included) per kernel, best of `reps`; cached per process and thread count."""
    key = torch.get_num_threads()
    if key not in _PROBE:
        g = torch.Generator().manual_seed(0)
        w8 = torch.randint(0, 2, (256, 256), generator=g, dtype=torch.int8)
        x8 = torch.randint(0, 2, (256, 2048), generator=g, dtype=torch.uint8)
        w32 = w8.float()
        runs = {"int8": lambda: torch._int_mm(w8, x8.view(torch.int8)).view(torch.float32),
                "float32": lambda: w32 @ x8.to(torch.float32)}
        t = {}
        for k, f in runs.items():
            f()
            best = float("inf")
            for _ in range(reps):
                t0 = time.perf_counter()
                f()
                best = min(best, time.perf_counter() - t0)
            t[k] = best
        _PROBE[key] = {"seconds": t, "choice": min(t, key=t.get), "threads": key}
    return _PROBE[key]


def resolve_kernel(kind: str | None, device: torch.device) -> str:
    kind = kind or _DEFAULT[0]
    if kind not in KERNELS:
        raise CrossnasError(f"analog.kernel: expected one of {', '.join(KERNELS)}, got {kind!r}")
    if device.type != "cpu":
        return "float32"  # no int8 GEMM route off CPU
    return probe()["choice"] if kind == "auto" else kind


def tile_dtype(plan: LayerPlan, max_level: float, effects: bool, kernel: str) -> torch.dtype:
    """dtype of the crossbar tiles (GEMM operands): int8 for ideal cells with the int8 kernel when levels
    and chunk values fit; float64 when an ideal partial sum can reach 2^24; else float32 (device effects:
    non-integer levels, relative rounding 6e-8)."""
    if not effects and kernel == "int8" and max_level <= 127 and 2**plan.dac - 1 <= 127:
        return torch.int8
    if not effects and float(plan.fs_full().max()) >= F32_EXACT:
        return torch.float64
    return torch.float32


def adc_dtype(plan: LayerPlan, effects: bool) -> torch.dtype:
    """float32 ADC arithmetic when every ideal partial sum is an integer below 2^24 (exact in float32);
    with device effects the partial sums are float32 anyway."""
    if effects or float(plan.fs_full().max()) < F32_EXACT:
        return torch.float32
    return torch.float64


def sum_dtype(plan: LayerPlan) -> torch.dtype:
    """float32 shift-and-add when every partial result is an integer below 2^24, else float64."""
    bound = plan.qmax * float(plan.chunk_weights().abs().sum()) * float(plan.col_weights().abs().sum())
    return torch.float32 if bound < F32_EXACT else torch.float64


def block_rows(plan: LayerPlan) -> int:
    """Output rows per memory block: one row tile's partial sums of a block fit in PS_BLOCK."""
    return max(1, PS_BLOCK // (plan.C * plan.AC * plan.S * plan.O))


def gemm(w: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Partial sums of one row tile: (cols, R) cell levels x (R, positions*chunks) chunk values."""
    if w.dtype == torch.int8:
        if a.is_cpu:
            return torch._int_mm(w, a.view(torch.int8))
        w = w.float()
    if a.is_cpu:
        return w @ a.to(w.dtype)
    with exact_float():
        return w @ a.to(w.dtype)


def run_blocks(plan: LayerPlan, tiles: list[torch.Tensor], step: torch.Tensor, blocks, M: int,
               xsum: torch.Tensor | None, *, effects: bool, reads: ChipReads | None = None,
               record: RangeRecorder | None = None) -> torch.Tensor | None:
    """Bit-sliced crossbar computation over memory blocks of output rows -> (O, M) float64.

    Each block is (r0, r1, x) with x (K, (r1-r0)*C) DAC chunk values (chunk fastest). Per row tile one GEMM
    gives the partial sums of every (array, slice, column) x (output row, chunk); the read effects, the ADC
    (scale, round, clip) and the shift-and-add over chunks, then over arrays and slices, are whole-tensor
    ops on that block. With `record` the partial sums of the first CAL_ROWS rows are recorded, nothing is
    converted and None is returned."""
    C, O, AS = plan.C, plan.O, plan.AC * plan.S
    qm = plan.qmax
    lo = -qm if plan.adc_signed else 0
    adt, sdt = adc_dtype(plan, effects), sum_dtype(plan)
    st = step.to(adt)
    cw = plan.chunk_weights().to(sdt).to(tiles[0].device)
    colw = plan.col_weights().to(sdt).to(tiles[0].device)
    off = 2.0 ** (plan.wbits - 1)
    out = None if record is not None else torch.empty(O, M, dtype=torch.float64, device=tiles[0].device)
    wdt = tiles[0].dtype
    for r0, r1, x in blocks:  # memory blocking over output rows only
        if record is not None and r0 >= CAL_ROWS:
            break  # the first CAL_ROWS output rows of a batch give enough partial-sum samples
        mb = r1 - r0
        if wdt != torch.int8:
            x = x.to(wdt)
        y = None
        for t, (a0, a1) in enumerate(plan.bounds):
            ps = gemm(tiles[t], x[a0:a1])  # (AC*S*O, mb*C)
            if reads is not None and reads.noisy:
                ps = reads.analog(ps if ps.is_floating_point() else ps.float(), t)
            if record is not None:
                record.record(t, ps)
                continue
            if ps.dtype == adt:
                codes = ps.div_(st[t])
            elif ps.is_floating_point() or adt != torch.float32:
                codes = ps.to(adt).div_(st[t])
            else:  # int32 -> float32 in place (same element size)
                codes = torch.div(ps, st[t], out=ps.view(torch.float32))
            if reads is not None:
                codes = reads.adc(codes, t)
            codes = codes.round_().clamp_(lo, qm)
            if codes.dtype != sdt:
                codes = codes.to(sdt)
            r = colw @ codes.view(AS, -1)  # shift-and-add over arrays and slices -> (O*mb*C,)
            r = r.view(-1, C) @ cw  # then over chunks: integer ADC-code sums (O*mb,)
            yt = r.view(O, mb).double().mul_(step[t])
            y = yt if y is None else y.add_(yt)
        if record is not None:
            continue
        if xsum is not None:
            y = y.sub_(off * xsum[r0:r1].reshape(1, -1))
        out[:, r0:r1] = y
    return out
