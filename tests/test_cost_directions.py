"""The direction contract (docs/cost-model.md, "Direction contract"): the sign of each gene's effect on each
metric, on VGG-8, LeNet-5 and a supernet subnet, for both presets; regime-dependent signs in both regimes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from crossnas.cost import evaluate_batch, table_for
from crossnas.hardware import load_hardware
from crossnas.models import get_model
from crossnas.space.arch import BlockArch, NetworkArch
from crossnas.supernet.model import build_subnet

METRICS = ("latency_s", "energy_j", "area_mm2", "edp_js")
PRESETS = ("mnsim-default", "isaac-like")
NETS = ("vgg8", "lenet", "subnet")


def xb(n):
    return {"crossbar.rows": n, "crossbar.cols": n}


def first_conv_adc(bits):
    return {"adc.per_layer": {"0": bits, "blocks.0.conv1": bits}}


# (step, from, to, presets, nets, signs for latency, energy, area, EDP): "+" rises, "-" falls, "0" equal,
# "." not part of the contract (regime-dependent there; see the docs table)
L8, VS = ("lenet", "subnet"), ("vgg8", "subnet")
MN, IS = ("mnsim-default",), ("isaac-like",)
CONTRACT = [
    ("crossbar 64->128 (small arrays)", xb(64), xb(128), MN, NETS, "+---"),
    ("crossbar 64->128 (small arrays)", xb(64), xb(128), IS, NETS, "+-.."),
    ("crossbar 512->1024 (large arrays)", xb(512), xb(1024), MN, NETS, "..+."),
    ("crossbar 512->1024 (large arrays)", xb(512), xb(1024), IS, L8, "..+."),
    ("crossbar 512->1024 (large layers, packed slices)", xb(512), xb(1024), IS, ("vgg8",), ".--."),
    ("crossbar 512->1024 (large arrays)", xb(512), xb(1024), MN, ("vgg8", "lenet"), "++++"),
    ("adc bits 4->6 (below the corner)", {"adc.bits": 4}, {"adc.bits": 6}, PRESETS, NETS, "++++"),
    ("adc bits 6->8 (above the corner)", {"adc.bits": 6}, {"adc.bits": 8}, PRESETS, NETS, "++++"),
    ("adc bits 8->10 (thermal region)", {"adc.bits": 8}, {"adc.bits": 10}, PRESETS, NETS, "++++"),
    ("per-layer adc bits 6->8 (first conv)", first_conv_adc(6), first_conv_adc(8), PRESETS, NETS, ".+++"),
    ("per-layer adc bits 6->4 (first conv)", first_conv_adc(6), first_conv_adc(4), PRESETS, NETS, ".--."),
    ("dac bits 1->2", {"dac.bits": 1}, {"dac.bits": 2}, PRESETS, NETS, "--+-"),
    ("dac bits 2->4 (conversion-bound)", {"dac.bits": 2}, {"dac.bits": 4}, PRESETS, VS, "--+-"),
    ("dac bits 2->4 (DAC-hold-bound)", {"dac.bits": 2}, {"dac.bits": 4}, MN, ("lenet",), "-++-"),
    ("cell bits x2", "cell-lo", "cell-hi", MN, NETS, "----"),
    ("cell bits x2", "cell-lo", "cell-hi", IS, NETS, "--.-"),
    ("duplication none->balance", {"system.duplication": "none"}, {"system.duplication": "balance"}, PRESETS,
     NETS, "-..."),
]
CELLS = {"mnsim-default": (1, 2), "isaac-like": (2, 4)}


@pytest.fixture(scope="module")
def tables():
    arch = NetworkArch(blocks=(BlockArch("vgg_pool", 32, 7, 7), BlockArch("residual", 64, 5, 7),
                               BlockArch("vgg", 64, 9, 9), BlockArch("skip")), head_bits=9)
    return {"vgg8": table_for(get_model("vgg8", 3, 10, 32), (3, 32, 32)),
            "lenet": table_for(get_model("lenet", 1, 10, 28), (1, 28, 28)),
            "subnet": table_for(build_subnet(arch, 3, 10, 32), (3, 32, 32))}


def _cases():
    for step, a, b, presets, nets, signs in CONTRACT:
        for p in presets:
            for n in nets:
                yield pytest.param(step, a, b, p, n, signs, id=f"{step}-{p}-{n}")


@pytest.mark.parametrize("step,a,b,preset,net,signs", list(_cases()))
def test_direction_contract(tables, step, a, b, preset, net, signs):
    if a == "cell-lo":
        a, b = ({"device.bits_per_cell": c} for c in CELLS[preset])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_layer = a.get("adc.per_layer", {})
        if per_layer:  # keep only the pattern that names a layer of this network
            names = tables[net].names
            keep = "0" if "0" in names else "blocks.0.conv1"
            a = {"adc.per_layer": {keep: per_layer[keep]}}
            b = {"adc.per_layer": {keep: b["adc.per_layer"][keep]}}
        r = evaluate_batch(tables[net], [load_hardware(preset, a), load_hardware(preset, b)])
    for m, s in zip(METRICS, signs):
        if s == ".":
            continue
        ratio = r[m][1] / r[m][0]
        got = "+" if ratio > 1 + 1e-9 else ("-" if ratio < 1 - 1e-9 else "0")
        assert got == s, f"{step} on {net}/{preset}: {m} x{ratio:.4f}, contract says {s}"


def test_contract_covers_every_space_gene():
    from crossnas.space.crosslayer import HW_GENES

    steps = " ".join(c[0] for c in CONTRACT)
    for gene in ("crossbar", "adc bits", "per-layer adc", "dac bits", "cell bits", "duplication"):
        assert gene in steps
    assert {"crossbar", "dac_bits", "adc_bits", "cell_bits", "duplication"} <= set(HW_GENES)
    assert np.isfinite(len(CONTRACT))
