"""Surrogate models for the surrogate-assisted search: its settings, genome features and regressors.

A model is fitted per expensive metric (an objective or constraint the evaluator's cheap metrics do not
give) on the evaluated history: one-hot genome, the rank of each ordered gene, and the cheap metrics
(cost-model figures, MACs), which are known exactly for any genome; plus the pairwise products of the
ordered genes' scaled ranks, so gene interactions are visible to the model. Regressors are
scikit-learn's with a fixed `random_state` and one thread, so a seeded search is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from crossnas.errors import validated
from crossnas.search.variation import gene_order
from crossnas.space.base import Space

POOL_PER_INDIVIDUAL = 20
"""Default pool: this many offspring ranked by the model per genome evaluated."""


class SurrogateSpec(BaseModel):
    """`search.surrogate`: model-ranked offspring for `strategy: nsga2`."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["gbm", "rf", "none"] = "gbm"
    """gbm: gradient boosting (scikit-learn), rf: random forest, none: plain NSGA-II."""
    pool: int | None = Field(None, ge=1)
    """Offspring generated and ranked per generation; absent -> 20 x the population size."""
    explore: float = Field(0.1, ge=0.0, le=1.0)
    """Share of each generation drawn at random from the pool instead of by predicted rank."""


def surrogate_spec(value: Any, strategy: str) -> SurrogateSpec | None:
    """None (or model none) -> None; a mapping or `SurrogateSpec` -> validated; nsga2 only."""
    if value is None:
        return None
    spec = value if isinstance(value, SurrogateSpec) else validated(SurrogateSpec, dict(value), "surrogate",
                                                                    sep=".")
    if spec.model == "none":
        return None
    if strategy != "nsga2":
        raise ValueError(f"surrogate: model {spec.model!r} needs strategy nsga2, not {strategy!r}")
    return spec


def features(space: Space, genomes: np.ndarray, cheap: Sequence[dict],
             cheap_keys: Sequence[str]) -> np.ndarray:
    """(n, sum(sizes) + o + o(o-1)/2 + cheap keys): one-hot genes, the ranks of the o ordered genes (with
    more than one choice: ranks scaled to [0, 1] for the products), their pairwise products, cheap metrics."""
    G = np.asarray(genomes, dtype=np.int64).reshape(-1, space.n_genes)
    order = gene_order(space)
    cols = []
    for i, size in enumerate(order.sizes):
        cols.append(np.eye(int(size))[G[:, i]])
        if order.ordered[i]:
            cols.append(order.rank[i][G[:, i]][:, None].astype(float))
    # pairwise products of the ordered genes' scaled ranks: an effect that needs two genes raised together
    # is one feature, not a depth-2 interaction a tree must find from a few hundred records
    idx = np.flatnonzero(order.ordered & (order.sizes > 1))
    R = np.stack([order.rank[i][G[:, i]] / (order.sizes[i] - 1) for i in idx], axis=1) if len(idx) else \
        np.zeros((len(G), 0))
    a, b = np.triu_indices(R.shape[1], k=1)
    cols.append(R[:, a] * R[:, b])
    if cheap_keys:
        cols.append(np.array([[float(m[k]) for k in cheap_keys] for m in cheap], dtype=float))
    return np.concatenate(cols, axis=1)


def make_regressor(model: str, seed: int):
    """A fresh scikit-learn regressor for `model` (gbm | rf)."""
    if model == "gbm":
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=150, max_depth=3, learning_rate=0.1, subsample=1.0,
                                         random_state=seed)
    if model == "rf":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=150, min_samples_leaf=1, random_state=seed, n_jobs=1)
    raise ValueError(f"surrogate.model: unknown {model!r}; expected gbm, rf or none")


def predict(model: str, seed: int, X_train: np.ndarray, y_train: np.ndarray,
            X_pool: np.ndarray) -> np.ndarray:
    """Fit on (X_train, y_train) and predict the pool; a constant target predicts itself."""
    if np.ptp(y_train) == 0:
        return np.full(len(X_pool), float(y_train[0]))
    reg = make_regressor(model, seed)
    reg.fit(X_train, y_train)
    return reg.predict(X_pool)
