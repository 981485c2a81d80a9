"""Analog PIM inference simulator (docs/analog.md)."""

from crossnas.analog.sim import (
    PIMConv2d,
    PIMLinear,
    PIMResult,
    evaluate_pim,
    fold_batchnorm,
    pim_layers,
    set_chip,
    set_mode,
    to_pim,
)

__all__ = ["PIMConv2d", "PIMLinear", "PIMResult", "evaluate_pim", "fold_batchnorm", "pim_layers",
           "set_chip", "set_mode", "to_pim"]
