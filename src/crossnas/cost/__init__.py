"""Mapping onto crossbars and the vectorised latency / energy / area model."""

from crossnas.cost.api import CostReport, evaluate_batch, evaluate_cost
from crossnas.cost.compile import HardwareArrays, LayerTable, table_for
from crossnas.cost.model import COMPONENTS, TOTAL_KEYS

__all__ = ["COMPONENTS", "TOTAL_KEYS", "CostReport", "HardwareArrays", "LayerTable", "evaluate_batch",
           "evaluate_cost", "table_for"]
