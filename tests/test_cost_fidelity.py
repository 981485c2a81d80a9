"""The MNSIM-2.0 fidelity goals of benchmarks/cost_fidelity.py hold (skipped without the reference runs)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "cost_fidelity.py"


@pytest.fixture(scope="module")
def fidelity(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("cost_fidelity", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    if not (mod.RUNS / "vgg8_256_adc_dac.jsonl").exists():
        pytest.skip(f"MNSIM-2.0 reference runs not found at {mod.RUNS}")
    out = tmp_path_factory.mktemp("fid") / "f.json"
    assert mod.main(["--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_faithful_mapping_ranks_like_mnsim(fidelity):
    for m in ("energy_j", "area_mm2", "edp_js"):
        assert fidelity["faithful"][m]["spearman"] >= 0.9, m


def test_every_gene_step_moves_cost_in_mnsims_direction(fidelity):
    steps = [s for s in fidelity["steps"] if s["metric"] in ("energy_j", "area_mm2", "edp_js")]
    assert len(steps) == 21 and all(s["agree"] for s in steps)
    assert 1.5 <= fidelity["energy_4_to_8_bits"]["ours"] <= 3.5


def test_latency_disagreements_carry_a_reason(fidelity):
    assert all(d["reason"] for d in fidelity["latency_disagreements"])
