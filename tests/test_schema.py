"""The typed run schema: what a run writes validates, a missing or renamed metric is an error naming
the file and the field (never a "-" in the report), and extra fields travel."""

from __future__ import annotations

import json
import shutil

import pytest

from crossnas import schema
from crossnas.errors import CrossnasError
from crossnas.pipeline.report import write_report


def test_a_run_writes_valid_schema_files(tiny_done_run):
    final = schema.read(tiny_done_run / "final.json", schema.FinalResult, "final")
    assert final.schema_version == schema.SCHEMA_VERSION and final.entries
    assert all(0 <= e.test.accuracy_pim <= 1 and e.cost.totals.edp_js > 0 for e in final.entries)
    pareto = schema.read(tiny_done_run / "search" / "pareto.json", schema.ParetoFile, "pareto")
    assert pareto.pareto and all("accuracy_pim" in r.metrics for r in pareto.pareto)
    schema.read(tiny_done_run / "search" / "front_exact.json", schema.FrontCache, "front")


@pytest.mark.parametrize("drop", ["accuracy_pim", "edp_js"])
def test_report_refuses_a_missing_metric(tiny_done_run, tmp_path, drop):
    out = tmp_path / "run"
    shutil.copytree(tiny_done_run, out)
    data = json.loads((out / "final.json").read_text())
    e = data["entries"][0]
    (e["test"] if drop.startswith("accuracy") else e["cost"]["totals"]).pop(drop)
    (out / "final.json").write_text(json.dumps(data))
    with pytest.raises(CrossnasError, match=rf"final.json: entries.0.*{drop}: Field required"):
        write_report(out)


def test_extra_fields_are_kept_and_newer_versions_refused(tiny_done_run, tmp_path):
    data = json.loads((tiny_done_run / "final.json").read_text())
    data["entries"][0]["test"]["correct"] = 17  # e.g. a field another change adds
    out = schema.write(tmp_path / "f.json", schema.FinalResult, data)
    assert out["entries"][0]["test"]["correct"] == 17
    data["schema_version"] = schema.SCHEMA_VERSION + 1
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(CrossnasError, match="g.json: schema_version"):
        schema.read(tmp_path / "g.json", schema.FinalResult, "final")
