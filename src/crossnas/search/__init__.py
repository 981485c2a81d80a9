"""Evolutionary cross-layer search: ask/tell strategies over a `Space`, cached and checkpointed."""

from crossnas.search.backends import EvaluatorBackend, LocalBackend, ProcessPoolBackend
from crossnas.search.engine import search
from crossnas.search.fitness import make_fitness, paper_fitness
from crossnas.search.result import SearchResult, hypervolume, pareto_records
from crossnas.search.store import Store
from crossnas.search.subspace import SubSpace, gene_groups

# these pull in torch (cost model, supernet): imported on first use so `import crossnas.search` stays light
_LAZY = {"SearchConfig": "crossnas.search.config", "load_search_config": "crossnas.search.config",
         "run_cross_layer_search": "crossnas.search.crosslayer",
         "CrossLayerEvaluator": "crossnas.search.crosslayer"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crossnas.search' has no attribute {name!r}")


__all__ = ["search", "SearchResult", "EvaluatorBackend", "LocalBackend", "ProcessPoolBackend", "Store",
           "make_fitness", "paper_fitness", "hypervolume", "pareto_records", "SubSpace", "gene_groups",
           *_LAZY]
