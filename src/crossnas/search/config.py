"""The typed `search` section of a crossnas config (`crossnas search`, `crossnas run`).

Metric names in objectives, constraints and ref_point are those the cross-layer evaluator returns: the
cost model's totals (`crossnas.cost.TOTAL_KEYS`) and the simulator's accuracies (`SIMULATOR_METRICS`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from crossnas.cost import TOTAL_KEYS
from crossnas.errors import validated
from crossnas.search import defaults
from crossnas.search.fitness import PRESETS
from crossnas.search.surrogate import SurrogateSpec

SIMULATOR_METRICS = ("accuracy_pim", "accuracy_pim_std", "accuracy_digital")
METRICS: tuple[str, ...] = SIMULATOR_METRICS + tuple(TOTAL_KEYS)


def _check_metric(name: str, what: str) -> None:
    if name not in METRICS:
        raise ValueError(f"{what} {name!r} is not a metric; expected one of {', '.join(METRICS)}")


class SearchConfig(BaseModel):
    """Everything `run_cross_layer_search` needs besides the space, supernet, data and hardware."""

    model_config = ConfigDict(extra="forbid")

    strategy: Literal["nsga2", "evolution", "random"] = defaults.STRATEGY
    """Search strategy: NSGA-II, single-objective evolution or random."""
    budget: int = Field(defaults.BUDGET, ge=1)
    """Distinct canonical evaluations (a hard cap; in two-stage mode shared by both stages)."""
    pop_size: int | None = Field(None, ge=2)
    """Absent -> from the budget and the space's size (`crossnas.search.defaults`, docs/search.md)."""
    surrogate: SurrogateSpec | None = None
    """{model: gbm | rf | none, pool, explore}: model-ranked offspring (strategy nsga2)."""
    seed: int = defaults.SEED
    """Seed of the strategy and of the evaluator's batches."""
    objectives: dict[str, Literal["min", "max"]] = Field(default_factory=lambda: dict(defaults.OBJECTIVES))
    """Metrics to optimise, {metric: min | max}."""
    constraints: dict[str, tuple[Literal["<=", ">="], float]] | None = None
    """{metric: [op, bound]}, e.g. {area_mm2: ["<=", 5.0], accuracy_pim: [">=", 0.8]}."""
    fitness: str | None = None
    """Scalar fitness for `evolution` and for picking the two-stage winner (e.g. paper-stage1)."""
    fitness_bounds: dict[Literal["latency_ms", "energy_mj"], tuple[float, float]] | None = None
    """Normalisation bounds of the paper fitness, {latency_ms: [lo, hi], energy_mj: [lo, hi]}; unset: the
    space's own range through the cost model (recorded in the run). Over 5% of candidates outside fails."""
    ref_point: dict[str, float] | None = None
    """Hypervolume reference point {objective: value}; absent -> from the first population."""
    max_stall: int = Field(defaults.MAX_STALL, ge=1)
    """Stop after this many generations that propose nothing new."""
    mode: Literal["joint", "two-stage"] = "joint"
    """joint: all genes at once; two-stage: network genes, then bits and circuit."""
    stage1_fraction: float = Field(0.5, gt=0.0, lt=1.0)
    """two-stage: share of the budget spent on stage 1."""
    fidelity: Literal["fast", "exact"] = "fast"
    """Simulator fidelity in the loop: fast (one matmul, ADC error as gaussian noise) or exact (bit-sliced
    crossbar reads)."""
    val_limit: int | None = Field(1000, ge=1)
    """Validation images per candidate (None: the whole split)."""
    bn_batches: int = Field(10, ge=0)
    """Training batches for BN recalibration of each candidate."""
    calib_batches: int = Field(2, ge=1)
    """Training batches for ADC range calibration of each candidate."""
    batch_size: int = Field(128, ge=1)
    """Images per evaluation batch."""
    chips: int = Field(1, ge=1)
    """Simulated chip instances per candidate in the loop."""
    final_fidelity: Literal["fast", "exact"] = "exact"
    """Fidelity of the re-scoring of the Pareto front after the search."""
    final_chips: int = Field(3, ge=1)
    """Chip instances per front design at re-scoring."""
    backend: Literal["local", "process", "ray"] = "local"
    """Where candidates are evaluated: this process, a process pool or Ray."""
    workers: int = Field(1, ge=1)
    """Workers (processes or Ray actors) for the process and ray backends."""
    address: str | None = None
    """Ray cluster address (auto or HOST:PORT); None starts a local Ray."""

    @field_validator("objectives")
    @classmethod
    def _objectives(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("at least one objective is needed")
        for k in v:
            _check_metric(k, "objective")
        return v

    @field_validator("constraints")
    @classmethod
    def _constraints(cls, v):
        for k in v or {}:
            _check_metric(k, "constraint")
        return v

    @field_validator("fitness")
    @classmethod
    def _fitness(cls, v):
        if v is not None and v not in PRESETS:
            raise ValueError(f"unknown fitness {v!r}; presets: {', '.join(sorted(PRESETS))}")
        return v

    @field_validator("fitness_bounds")
    @classmethod
    def _fitness_bounds(cls, v):
        for k, (lo, hi) in (v or {}).items():
            if not lo < hi:
                raise ValueError(f"{k}: min {lo} must be below max {hi}")
        return v

    @field_validator("mode")
    @classmethod
    def _mode(cls, v, info: ValidationInfo):
        if v == "two-stage" and info.data.get("budget", 2) < 2:
            raise ValueError("two-stage needs budget >= 2 (one evaluation per stage at least)")
        return v

    @field_validator("surrogate")
    @classmethod
    def _surrogate(cls, v, info: ValidationInfo):
        if v is not None and v.model != "none" and info.data.get("strategy", "nsga2") != "nsga2":
            raise ValueError(f"model {v.model!r} needs strategy nsga2")
        return v

    @field_validator("ref_point")
    @classmethod
    def _ref_point(cls, v, info: ValidationInfo):
        objectives = info.data.get("objectives")
        if v is not None and objectives is not None and set(v) != set(objectives):
            raise ValueError(f"must give exactly the objectives {sorted(objectives)}, got {sorted(v)}")
        return v

    def search_kwargs(self) -> dict[str, Any]:
        """Keywords for `crossnas.search.search` (budget aside, which two-stage splits)."""
        cons = {k: tuple(v) for k, v in self.constraints.items()} if self.constraints else None
        return {"objectives": dict(self.objectives), "strategy": self.strategy, "seed": self.seed,
                "constraints": cons,
                "pop_size": self.pop_size, "fitness": self.fitness, "ref_point": self.ref_point,
                "max_stall": self.max_stall, "surrogate": self.surrogate}


def load_search_config(data: dict | None, where: str = "config.search") -> SearchConfig:
    """Validate a `search` mapping; errors read `config.search.budget: ...`."""
    return validated(SearchConfig, dict(data or {}), where, sep=".")
