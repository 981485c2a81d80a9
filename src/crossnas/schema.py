"""One typed schema for what a run writes: final.json (and final/NAME.json), search/pareto.json,
search/front_exact.json and a design's design.json. Validated on write and on read, with a format version.

Models allow extra fields (`_Open`) so a new metric is added here as a typed field, or travels as an extra
key until it is; the fields listed are required, so a renamed or missing one is an error naming the file
and the field, never a silent "-" in a report. Readers: the pipeline, the search, the CLI and the report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from crossnas.errors import CrossnasError, validated

SCHEMA_VERSION = 1


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Versioned(_Open):
    schema_version: int = Field(SCHEMA_VERSION, le=SCHEMA_VERSION)
    """Format of the file; a newer one than this crossnas reads is refused."""


# --- search results ---------------------------------------------------------------------------------
class SearchRecord(_Open):
    """One evaluated candidate (search/pareto.json `pareto` and `history`)."""

    genome: list[int]
    key: str
    arch: dict[str, Any]
    metrics: dict[str, float]
    wall_s: float
    generation: int


class ParetoFile(_Versioned):
    """search/pareto.json (`crossnas.search.result.SearchResult.to_dict`)."""

    objectives: dict[str, Literal["min", "max"]]
    constraints: dict[str, Any] | None = None
    pareto: list[SearchRecord]
    history: list[SearchRecord]
    hypervolume: list[float] = Field(default_factory=list)
    """Per generation; empty when none was recorded."""
    hv_ideal: list[float] = Field(default_factory=list)
    hv_ref: list[float] = Field(default_factory=list)
    generations: int
    n_evaluations: int
    meta: dict[str, Any]


class FrontCache(_Versioned):
    """search/front_exact.json: the front's re-scored metrics by genome key, and what they depend on."""

    meta: dict[str, Any]
    metrics: dict[str, dict[str, float]]


# --- final evaluation ---------------------------------------------------------------------------------
class TestMetrics(_Open):
    accuracy_digital: float = Field(ge=0, le=1)
    accuracy_pim: float = Field(ge=0, le=1)
    accuracy_pim_std: float = Field(ge=0, allow_inf_nan=False)
    per_chip: list[float]
    correct_chips: list[int] | None = None
    """Per test image (subset order): how many chips classified it correctly; pairs two entries."""


class CostTotals(_Open):
    latency_s: float
    latency_sequential_s: float
    energy_j: float
    area_mm2: float
    edp_js: float
    crossbars: float
    tiles: float
    tops_per_w: float


class Cost(_Open):
    totals: CostTotals


class FinalEntry(_Versioned):
    """One design or baseline on the test subset (final/NAME.json and final.json `entries`)."""

    name: str
    kind: Literal["design", "baseline"]
    source_key: str | None
    selected_by: str | None
    description: str
    design_dir: str
    bits: list[dict[str, Any]]
    hardware: dict[str, Any]
    val: dict[str, float] | None
    retrain: dict[str, Any] | None
    test: TestMetrics
    cost: Cost
    wall_s: float = Field(ge=0)


class FinalResult(_Versioned):
    """final.json."""

    split: Literal["test"]
    test_subset: dict[str, Any]
    chips: int = Field(ge=1)
    fidelity: str
    dataset: str
    entries: list[FinalEntry]
    picked: str | None = None
    """The design chosen on validation accuracy after retraining (None without designs)."""
    comparisons: list[dict[str, Any]] = Field(default_factory=list)
    """The picked design against each baseline, paired over the same images and chips
    (crossnas.pipeline.compare)."""


# --- designs --------------------------------------------------------------------------------------------
class DesignMeta(_Open):
    """design.json (its own `format` string is checked by crossnas.design)."""

    format: str
    name: str | None = None
    in_channels: int = Field(ge=1)
    num_classes: int = Field(ge=1)
    input_size: int | list[int]
    """Side of square images, or [height, width]."""
    metrics: dict[str, Any] = Field(default_factory=dict)


# --- reading and writing --------------------------------------------------------------------------------
def check(model_cls: type[BaseModel], data: Any, where: str) -> BaseModel:
    """`data` validated as `model_cls`, or a CrossnasError naming `where` and the field."""
    try:
        return validated(model_cls, data, where)
    except CrossnasError as e:
        raise CrossnasError(f"{e} (restore it or start a new run folder)") from None


def read(path: str | Path, model_cls: type[BaseModel], what: str) -> Any:
    """The file at `path` parsed and validated as `model_cls` (errors name the file and the field)."""
    from crossnas.jsonio import read_json

    return check(model_cls, read_json(path, what), str(path))


def write(path: str | Path, model_cls: type[BaseModel], data: Any) -> dict:
    """Validate `data` as `model_cls` (a bug, not the user, if it fails) and write it atomically; returns
    the written dict."""
    from crossnas.search.store import atomic_write

    plain = json.loads(json.dumps(data, default=float))  # numpy scalars -> floats
    out = model_cls.model_validate(plain).model_dump(mode="json")
    atomic_write(path, json.dumps(out, indent=1))
    return out
