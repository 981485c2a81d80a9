"""Quantization-aware single-path one-shot supernet: weight sharing, extraction, BN recal, training."""

from crossnas.supernet.bn import recalibrate_bn, recalibrate_supernet_bn
from crossnas.supernet.model import ResidualBlock, SubNet, Supernet, SupernetSpec

__all__ = ["ResidualBlock", "SubNet", "Supernet", "SupernetSpec", "recalibrate_bn", "recalibrate_supernet_bn"]
