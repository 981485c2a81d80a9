"""Thread policy: how many intra-op threads torch uses in this process, chosen before any torch work.

`threads: auto` picks one thread for small networks (a supernet step of a few tens of MMAC does not
amortise OpenMP's fork/join) and, for large work, one thread per MACS_PER_THREAD up to the cores of
the affinity mask; with spinning OpenMP waits only the free cores (mask minus the 1-minute load
average) count. Parallel work goes to processes (the search's pool
runs one thread per worker). `OMP_WAIT_POLICY=PASSIVE` makes idle OpenMP threads sleep instead of
spinning on a core another process needs; it is read when torch loads its OpenMP runtime, so it is set
on `import crossnas` (before torch) and only where the user has not set it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

OMP_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE"}

# Work (multiply-accumulates of one forward pass of a training step) below which one thread is chosen,
# and the work each further thread must bring. Measured with benchmarks/threads.py on the 2-core
# development machine: the demo supernet step (~40 MMAC) and the small28 step (~2 GMAC at batch 128)
# both ran fastest at one thread under load; idle, two threads paid off only above ~1 GMAC.
MACS_PER_THREAD = 1.0e9


def set_omp_defaults() -> None:
    """OpenMP settings for torch, where the environment does not set them (call before importing torch)."""
    for key, value in OMP_DEFAULTS.items():
        os.environ.setdefault(key, value)


def machine_cores() -> int:
    """Cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores not held by other runnable work: affinity cores minus the 1-minute load average, at least 1."""
    cores = machine_cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


@dataclass(frozen=True)
class ThreadChoice:
    setting: str | int
    """What was asked for: "auto" or a fixed count."""
    intra_op: int
    """torch intra-op threads set in this process."""
    cores: int
    load_1min: float
    work_macs: float | None
    omp_wait_policy: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def auto_threads(work_macs: float | None, cores: int | None = None, load: float | None = None,
                 passive: bool | None = None) -> int:
    """Threads for one process doing `work_macs` per step: one for small work, else one per
    MACS_PER_THREAD up to the cores. With spinning OpenMP waits (OMP_WAIT_POLICY not PASSIVE) only the
    free cores count: a spinning thread whose partner is descheduled burns the core the partner needs
    (the 3-4x slowdown issue #13 measured). With passive waits a busy machine costs an extra thread little,
    and each thread gets its own share of the cores (benchmarks/threads.py)."""
    if not work_macs or work_macs < MACS_PER_THREAD:
        return 1
    cores = machine_cores() if cores is None else cores
    if passive is None:
        passive = os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
    limit = cores if passive else free_cores(cores, load)
    return max(1, min(limit, int(work_macs // MACS_PER_THREAD)))


def resolve_threads(setting: str | int, work_macs: float | None = None) -> ThreadChoice:
    cores = machine_cores()
    try:
        load = float(os.getloadavg()[0])
    except (AttributeError, OSError):
        load = 0.0
    n = auto_threads(work_macs, cores, load) if setting == "auto" else int(setting)
    return ThreadChoice(setting, n, cores, round(load, 2), work_macs, os.environ.get("OMP_WAIT_POLICY"))


def apply_threads(setting: str | int, work_macs: float | None = None) -> ThreadChoice:
    """Resolve the setting and set torch's intra-op threads; returns what was chosen (for run.json)."""
    set_omp_defaults()
    import torch

    choice = resolve_threads(setting, work_macs)
    torch.set_num_threads(choice.intra_op)
    return choice


def network_macs(arch, in_channels: int, input_size: int) -> float:
    """Multiply-accumulates of one forward pass of a `NetworkArch` on one image (convolutions only;
    the head is a few thousand MACs). Analytic, so it needs no torch."""
    h, cin, total = int(input_size), int(in_channels), 0.0
    for _, b in arch.active:
        total += h * h * b.width * 9 * (cin + b.width)
        if b.kind == "residual":
            total += h * h * cin * b.width
        if b.kind == "vgg_pool":
            h //= 2
        cin = b.width
    return total


def largest_step_macs(space, in_channels: int, batch_size: int) -> float:
    """Work of a training step on the space's largest network (what sizes the thread choice)."""
    from crossnas.space.extremes import largest_network

    return network_macs(largest_network(space), in_channels, space.input_size) * batch_size


def threads_arg(text: str) -> str | int:
    """argparse type of `--threads`: `auto` or a positive count."""
    import argparse

    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected auto or a positive integer, got {text!r}")
    return n


def add_threads_option(parser) -> None:
    parser.add_argument("--threads", type=threads_arg, default=None, metavar="auto|N",
                        help="torch intra-op threads (overrides config.threads; auto: by work, free cores)")


def apply_for_space(setting: str | int, space, in_channels: int, batch_size: int) -> ThreadChoice:
    """`apply_threads` sized by a training step on the space's largest network."""
    return apply_threads(setting, largest_step_macs(space, in_channels, batch_size))


def apply_for_model(setting: str | int, model, input_shape: tuple[int, ...], batch_size: int) -> ThreadChoice:
    """`apply_threads` sized by one batch of inference through `model` (its traced MACs)."""
    from crossnas.network import extract_layers

    macs = sum(float(ly.macs) for ly in extract_layers(model, tuple(input_shape)))
    return apply_threads(setting, macs * batch_size)
