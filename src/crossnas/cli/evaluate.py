"""`crossnas evaluate`: cost of one network on one hardware config (table, JSON, energy breakdown plot)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from crossnas.errors import CrossnasError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="latency / energy / area of a network on PIM hardware")
    p.add_argument("--model", required=True,
                   help="built-in name (vgg8, lenet, resnet18-cifar) or path.py:NAME (a class or a factory)")
    p.add_argument("--model-arg", action="append", default=[], metavar="K=V",
                   help="extra keyword argument for the model (e.g. width_mult=0.5), repeatable")
    p.add_argument("--input", required=True, help="input shape CxHxW, e.g. 3x32x32 (H may differ from W)")
    p.add_argument("--hardware", default="mnsim-default", help="preset name or YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--json", dest="json_out", help="write totals and layers as JSON")
    p.add_argument("--plot", help="write a stacked energy breakdown bar chart (PNG)")
    p.add_argument("--strict", action="store_true", help="fail when an op the tracer sees cannot be costed")


def parse_input(s: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(x) for x in s.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise CrossnasError(f"--input: expected CxHxW with positive integers, e.g. 3x32x32, got {s!r}")
    return parts


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    if path.parent and not path.parent.exists():
        raise CrossnasError(f"{path}: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(args) -> int:
    from crossnas.cost import evaluate_cost
    from crossnas.hardware import load_hardware, parse_set_args
    from crossnas.models import get_model, parse_model_args
    from crossnas.network import extract_layers, uncosted

    c, h, w = parse_input(args.input)
    hw = load_hardware(args.hardware, parse_set_args(args.set))
    model = get_model(args.model, c, args.num_classes, (h, w), **parse_model_args(args.model_arg))
    import warnings

    with warnings.catch_warnings():  # listed in the output below instead
        warnings.filterwarnings("ignore", message="not costed")
        layers = extract_layers(model, (c, h, w), strict=args.strict)
    report = evaluate_cost(layers, hw)
    _print(report)
    skipped = uncosted(layers)
    if skipped:
        print(f"not costed ({len(skipped)}, --strict makes this an error): {', '.join(skipped)}")
    if args.json_out:
        data = report.to_dict()
        data["model"], data["input"], data["not_costed"] = args.model, [c, h, w], skipped
        _atomic_write(Path(args.json_out), lambda p: Path(p).write_text(json.dumps(data, indent=2)))
    if args.plot:
        _atomic_write(Path(args.plot), lambda p: plot_breakdown(report, p))
    return 0


def _print(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from crossnas.cost import COMPONENTS

    t = Table(title=f"cost on {report.hardware} ({report.packing} packing)")
    for col in ("layer", "kind", "xbars", "latency us", *(f"{x} nJ" for x in COMPONENTS), "area mm2"):
        t.add_column(col, justify="left" if col in ("layer", "kind") else "right")
    for ly in report.layers:
        t.add_row(ly["name"], ly["kind"], str(ly["crossbars"]), f"{ly['latency_s'] * 1e6:.3f}",
                  *(f"{ly['energy_breakdown'][x] * 1e9:.2f}" for x in COMPONENTS), f"{ly['area_mm2']:.3f}")
    con = Console(width=max(Console().width, 200))
    con.print(t)
    tt = report.totals
    con.print(f"latency {tt['latency_s'] * 1e3:.4f} ms "
              f"(sequential {tt['latency_sequential_s'] * 1e3:.4f} ms), "
              f"energy {tt['energy_j'] * 1e3:.4f} mJ, area {tt['area_mm2']:.2f} mm2, "
              f"EDP {tt['edp_js']:.3e} Js, "
              f"crossbars {tt['crossbars']}, tiles {tt['tiles']}, {tt['tops_per_w']:.3f} TOPS/W")


def plot_breakdown(report, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crossnas.cost import COMPONENTS

    names = [ly["name"] for ly in report.layers]
    fig, ax = plt.subplots(figsize=(max(6, 0.4 * len(names)), 4))
    bottom = [0.0] * len(names)
    for comp in COMPONENTS:
        vals = [ly["energy_breakdown"][comp] * 1e6 for ly in report.layers]
        ax.bar(range(len(names)), vals, bottom=bottom, label=comp)
        bottom = [b + v for b, v in zip(bottom, vals)]
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_ylabel("energy (uJ)")
    ax.set_title(f"energy by component ({report.hardware})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
