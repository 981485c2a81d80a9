"""Model level: to_pim (BN fold, wrap every mappable layer, calibrate), chip instances, evaluate_pim."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from crossnas.analog.fold import fold_batchnorm, unmappable_layers
from crossnas.analog.layers import PIMConv2d, PIMLinear, _PIMBase
from crossnas.cost.mapping_rules import mappable
from crossnas.errors import CrossnasError
from crossnas.hardware.config import HardwareConfig


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _batches(loader, n: int | None = None):
    for i, b in enumerate(loader):
        if n is not None and i >= n:
            break
        yield b[0] if isinstance(b, (tuple, list)) else b


def pim_layers(model: nn.Module) -> list[tuple[str, _PIMBase]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, _PIMBase)]


def set_mode(model: nn.Module, mode: str) -> None:
    for _, m in pim_layers(model):
        m.mode = mode


def set_chip(model: nn.Module, seed: int) -> None:
    """Redraw every layer's device effects for a new chip instance."""
    for i, (_, m) in enumerate(pim_layers(model)):
        m.set_chip(_layer_seed(seed, i))


def _layer_seed(seed: int, i: int) -> int:
    return (int(seed) * 1_000_003 + i * 9_176 + 12_345) % (2**62)


def _needs_calibration_pass(hw: HardwareConfig) -> bool:
    """The ADC range, or the fast fidelity's per-tile statistics of the read effects, come from data."""
    from crossnas.analog.effects import active_read_effects

    return hw.adc.range == "calibrated" or bool(active_read_effects(hw))


def to_pim(model: nn.Module, hardware: HardwareConfig, *, calib_loader, input_shape=None, bits=None,
           seed: int = 0, fidelity: str = "exact", device: str = "auto", allow_digital: bool = False,
           calib_batches: int = 8, kernel: str | None = None) -> nn.Module:
    """A deep copy of `model` with BN folded and Conv1d/Conv2d/Linear layers replaced by PIM wrappers.

    `kernel` (auto | int8 | float32; None: the process default, crossnas.analog.set_kernel) only chooses
    the exact route's GEMM; results do not depend on it."""
    if fidelity not in ("exact", "fast"):
        raise CrossnasError(f"fidelity: expected exact or fast, got {fidelity!r}")
    dev = _resolve_device(device)
    m = copy.deepcopy(model).to(dev).eval()
    fold_batchnorm(m)
    bad = unmappable_layers(m)
    if bad and not allow_digital:
        raise CrossnasError("layers that cannot be mapped to crossbars: "
                            + "; ".join(f"{n} ({why})" for n, why in bad)
                            + " (pass allow_digital=True to keep them digital)")
    if bad:
        warnings.warn("kept digital, not simulated on crossbars: " + ", ".join(n for n, _ in bad),
                      stacklevel=2)
    skip = [n for n, _ in bad]
    targets = [(n, mod) for n, mod in m.named_modules() if mappable(mod)
               and not any(n == b or n.startswith(b + ".") for b in skip)]
    bits = dict(bits or {})
    unknown = sorted(set(bits) - {n for n, _ in targets})
    if unknown:
        raise CrossnasError(f"bits: no mappable Conv2d/Linear layer named {unknown}; layers: "
                            f"{[n for n, _ in targets]}")
    stats: dict[str, list[float]] = {n: [math.inf, 0.0] for n, _ in targets}
    hooks = []
    for n, mod in targets:
        def hook(_m, inp, _out, n=n):
            x = inp[0].detach()
            stats[n][0] = min(stats[n][0], float(x.min()))
            stats[n][1] = max(stats[n][1], float(x.abs().max()))
        hooks.append(mod.register_forward_hook(hook))
    seen = False
    with torch.no_grad():
        for x in _batches(calib_loader, calib_batches):
            m(x.to(dev))
            seen = True
    for h in hooks:
        h.remove()
    if not seen:
        raise CrossnasError("calib_loader: expected at least one batch")
    for i, (n, mod) in enumerate(targets):
        own_w, own_a = getattr(mod, "weight_bits", None), getattr(mod, "act_bits", None)
        wb, ab = bits.get(n, (None, None))  # precedence: bits argument, the layer's own, the hardware's
        wb = next(v for v in (wb, own_w, hardware.quant.weight_bits) if v is not None)
        ab = next(v for v in (ab, own_a, hardware.quant.act_bits) if v is not None)
        if hasattr(mod, "act_signed") and own_a is not None:
            signed = bool(mod.act_signed)
        else:
            signed = stats[n][0] < 0
        rng = stats[n][1]
        if own_a is not None and float(getattr(mod, "act_range", torch.zeros(()))) > 0:
            rng = float(mod.act_range)
        cls = PIMLinear if isinstance(mod, nn.Linear) else PIMConv2d
        wrapped = cls(mod, n, hardware, int(wb), int(ab), signed, rng, _layer_seed(seed, i), fidelity,
                      kernel)
        parent, _, child = n.rpartition(".")
        setattr(m.get_submodule(parent) if parent else m, child, wrapped)
    m.to(dev)
    m.pim_digital_layers = skip  # layers the user asked to keep digital (allow_digital=True)
    if _needs_calibration_pass(hardware):
        set_mode(m, "calibrate")
        with torch.no_grad():
            for x in _batches(calib_loader, min(calib_batches, 2)):
                m(x.to(dev))
        for _, lay in pim_layers(m):
            lay.finish_calibration(hardware.adc.percentile, hardware.adc.range_scope)
    set_mode(m, "analog")
    for _, lay in pim_layers(m):  # read noise counts batches from here: a rerun of the chip is identical
        for c in lay.cores:
            c.batch = 0
    return m


@dataclass
class PIMResult:
    accuracy_pim: float
    accuracy_pim_std: float
    accuracy_digital: float
    per_chip: list[float]
    correct_chips: list[int] | None = None
    """Per image, in loader order: how many chips classified it correctly (with `per_image=True`)."""


def _correct(model: nn.Module, loader, dev) -> torch.Tensor:
    """Per image, in loader order: 1 when the model's top class is the label."""
    out = []
    with torch.no_grad():
        for b in loader:
            x, y = b[0].to(dev), b[1].to(dev)
            out.append((model(x).argmax(1) == y).cpu())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _accuracy(hits: torch.Tensor) -> float:
    return float(hits.sum()) / max(int(hits.numel()), 1)


def evaluate_pim(model: nn.Module, loader, hardware: HardwareConfig, *, calib_loader, chips: int = 5,
                 fidelity: str = "exact", seed: int = 0, device: str = "auto", bits=None,
                 allow_digital: bool = False, kernel: str | None = None,
                 per_image: bool = False) -> PIMResult:
    """Accuracy over `chips` chip instances (device effects redrawn per chip) and the digital accuracy of
    the same quantized integers; `per_image` also keeps each image's count of correct chips (for paired
    comparisons of two networks on the same images and chips)."""
    dev = _resolve_device(device)
    pm = to_pim(model, hardware, calib_loader=calib_loader, bits=bits, seed=seed, fidelity=fidelity,
                device=device, allow_digital=allow_digital, kernel=kernel)
    set_mode(pm, "digital")
    acc_d = _accuracy(_correct(pm, loader, dev))
    set_mode(pm, "analog")
    per, count = [], None
    for c in range(chips):
        set_chip(pm, seed + c)
        hits = _correct(pm, loader, dev)
        per.append(_accuracy(hits))
        count = hits.long() if count is None else count + hits.long()
    t = torch.tensor(per, dtype=torch.float64)
    correct = [int(v) for v in count.tolist()] if per_image and count is not None else None
    return PIMResult(float(t.mean()), float(t.std()) if len(per) > 1 else 0.0, acc_d, per, correct)
