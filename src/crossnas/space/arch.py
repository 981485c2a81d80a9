"""What a cross-layer genome means: the network (blocks, widths, bits) and the hardware overrides.

This is the contract between the search space, the supernet and the hardware config:
- `NetworkArch` is what `Supernet.forward(x, arch)` and `Supernet.extract(arch)` take.
- `CrossLayerArch.hardware` is a flat {dotted.config.key: value} overlay applied with
  `HardwareConfig.with_overrides(...)`; per-layer ADC bits go to `adc.per_layer` keyed by a
  module-name glob of the extracted subnet (`blocks.3.*`).

Module names in an extracted subnet are stable: `stem` is not used; slot i lives at `blocks.{i}`
(an `nn.Identity` when the slot is a skip) with children `conv1`, `bn1`, `conv2`, `bn2`,
`shortcut.0` (1x1 conv) / `shortcut.1` (BN) for residual blocks, `pool` for vgg_pool; the head is
`head.fc1`, `head.fc2`, `head.fc3` (Linear), after `head.pool` (adaptive avg-pool to 2x2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BLOCK_KINDS = ("vgg_pool", "vgg", "residual", "skip")


@dataclass(frozen=True)
class BlockArch:
    """One slot: block kind, output width, weight bits and input-activation bits of its convolutions."""

    kind: str
    width: int = 0
    wbits: int = 8
    abits: int = 8

    def __post_init__(self):
        if self.kind not in BLOCK_KINDS:
            raise ValueError(f"block kind must be one of {BLOCK_KINDS}, got {self.kind!r}")

    @property
    def pools(self) -> bool:
        return self.kind == "vgg_pool"


@dataclass(frozen=True)
class NetworkArch:
    """A subnet of the supernet: one BlockArch per slot (skips included) and the head's bits."""

    blocks: tuple[BlockArch, ...]
    head_bits: int = 9

    @property
    def n_pools(self) -> int:
        return sum(b.pools for b in self.blocks)

    @property
    def active(self) -> list[tuple[int, BlockArch]]:
        return [(i, b) for i, b in enumerate(self.blocks) if b.kind != "skip"]

    def canonical(self) -> NetworkArch:
        """Skips moved to the end: a network is its sequence of non-skip blocks (a skip is an identity)."""
        skips = [b for b in self.blocks if b.kind == "skip"]
        return NetworkArch(tuple(b for _, b in self.active) + tuple(skips), head_bits=self.head_bits)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkArch:
        return cls(blocks=tuple(BlockArch(**b) for b in d["blocks"]), head_bits=int(d.get("head_bits", 9)))


@dataclass(frozen=True)
class CrossLayerArch:
    """A full candidate: network plus hardware overlay {dotted key: value}."""

    network: NetworkArch
    hardware: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"network": self.network.to_dict(), "hardware": dict(self.hardware)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CrossLayerArch:
        return cls(network=NetworkArch.from_dict(d["network"]), hardware=dict(d.get("hardware", {})))
