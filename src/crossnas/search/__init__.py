"""Evolutionary cross-layer search: ask/tell strategies over a `Space`, cached and checkpointed."""

from crossnas.search.backends import EvaluatorBackend, LocalBackend, ProcessPoolBackend
from crossnas.search.engine import search
from crossnas.search.fitness import make_fitness, paper_fitness
from crossnas.search.result import SearchResult, hypervolume, pareto_records
from crossnas.search.store import Store

__all__ = ["search", "SearchResult", "EvaluatorBackend", "LocalBackend", "ProcessPoolBackend", "Store",
           "make_fitness", "paper_fitness", "hypervolume", "pareto_records"]
