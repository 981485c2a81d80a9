"""Search strategies by name."""

from crossnas.search.strategies.base import Strategy
from crossnas.search.strategies.evolution import EvolutionStrategy
from crossnas.search.strategies.nsga2 import NSGA2Strategy
from crossnas.search.strategies.random import RandomStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    "nsga2": NSGA2Strategy, "evolution": EvolutionStrategy, "random": RandomStrategy}

__all__ = ["STRATEGIES", "Strategy", "EvolutionStrategy", "NSGA2Strategy", "RandomStrategy"]
