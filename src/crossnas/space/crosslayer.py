"""The cross-layer space: per-slot block/width/bits genes plus optional circuit (hardware) genes.

Gene order: for each slot i `slot{i}.block`, `slot{i}.width`, `slot{i}.wbits`, `slot{i}.abits`
(and `slot{i}.adc_bits` when `adc_per_layer`), then the searched `hw.*` genes in the order of
`HW_GENES`. A genome maps to a `CrossLayerArch` with `to_arch`.

Validity: slot 0 is not a skip; after the network's max-pools (each halves H, floor) the map entering
the head is at least 2x2; `hw.cell_bits` <= the wbits of every active (non-skip) slot.
Canonical: a network is its sequence of non-skip blocks (a skip is an identity), so the skip slots move
to the end, every non-skip slot keeping its own width/bits (and per-slot ADC) genes and its order, and
skip slots get those genes set to index 0. Sampling draws genes uniformly, then canonicalises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from crossnas.errors import CrossnasError, validated
from crossnas.space.arch import BLOCK_KINDS, BlockArch, CrossLayerArch, NetworkArch
from crossnas.space.base import Gene, Space
from crossnas.yamlio import read_yaml_mapping

# spec field -> (gene label, hardware overlay keys)
HW_GENES: dict[str, tuple[str, tuple[str, ...]]] = {
    "crossbar": ("hw.crossbar", ("crossbar.rows", "crossbar.cols")),
    "dac_bits": ("hw.dac_bits", ("dac.bits",)),
    "adc_bits": ("hw.adc_bits", ("adc.bits",)),
    "cell_bits": ("hw.cell_bits", ("device.bits_per_cell",)),
    "crossbars_per_pe": ("hw.crossbars_per_pe", ("system.crossbars_per_pe",)),
    "pes_per_tile": ("hw.pes_per_tile", ("system.pes_per_tile",)),
    "duplication": ("hw.duplication", ("system.duplication",)),
}


class CrossLayerSpec(BaseModel):
    """Declarative description of a cross-layer space (the YAML preset format)."""

    model_config = ConfigDict(extra="forbid")

    name: str = "custom"
    """Label of the space."""
    n_slots: int = Field(ge=1)
    """Block slots of the network (a slot may be a skip)."""
    blocks: list[str] = Field(default_factory=lambda: list(BLOCK_KINDS))
    """Block kinds a slot may take."""
    widths: list[int]
    """Output channel choices of a block."""
    wbits: list[int]
    """Weight bit choices per slot (sign included)."""
    abits: list[int]
    """Activation bit choices per slot."""
    head_bits: int = 9
    """Bits of the classifier head."""
    head_hidden: list[int] = Field(default_factory=lambda: [200, 50])
    """Hidden widths of the fully connected head."""
    input_size: int | None = None
    """Default input size (H=W) when the constructor is not given one."""
    crossbar: list[int] | None = None
    """Searched crossbar sizes (rows = cols); None keeps the hardware's."""
    dac_bits: list[int] | None = None
    """Searched DAC bits; None keeps the hardware's."""
    adc_bits: list[int] | None = None
    """Searched ADC bits (global or per slot); None keeps the hardware's."""
    adc_per_layer: bool = False
    """ADC bits searched per slot (`slot{i}.adc_bits` -> adc.per_layer) instead of globally."""
    cell_bits: list[int] | None = None
    """Searched bits per memory cell; None keeps the hardware's."""
    crossbars_per_pe: list[int] | None = None
    """Searched arrays per processing element."""
    pes_per_tile: list[int] | None = None
    """Searched processing elements per tile."""
    duplication: list[str] | None = None
    """Searched layer duplication policies (none, balance)."""

    @field_validator("blocks")
    @classmethod
    def _blocks(cls, v):
        bad = [b for b in v if b not in BLOCK_KINDS]
        if bad or not v or len(set(v)) != len(v):
            raise ValueError(f"blocks must be distinct members of {BLOCK_KINDS}, got {v}")
        if v == ["skip"]:
            raise ValueError("blocks cannot be only skip")
        return v

    @field_validator(
        "widths",
        "wbits",
        "abits",
        "crossbar",
        "dac_bits",
        "adc_bits",
        "cell_bits",
        "crossbars_per_pe",
        "pes_per_tile",
        "duplication",
    )
    @classmethod
    def _nonempty(cls, v):
        if v is not None and (len(v) == 0 or len(set(v)) != len(v)):
            raise ValueError(f"choices must be a non-empty list of distinct values, got {v}")
        return v


def load_spec(path: str | Path) -> CrossLayerSpec:
    path = Path(path)
    return validated(CrossLayerSpec, read_yaml_mapping(path, "a space YAML file"), str(path))


def _max_pools(input_size: int) -> int:
    """Most floor-halvings that leave the map >= 2."""
    p, h = 0, input_size
    while h // 2 >= 2:
        h //= 2
        p += 1
    return p


class CrossLayerSpace(Space):
    def __init__(self, spec: CrossLayerSpec | dict, input_size: int | None = None):
        if isinstance(spec, dict):
            spec = validated(CrossLayerSpec, spec, "space spec")
        self.spec = spec
        size = input_size if input_size is not None else spec.input_size
        if size is None or size < 2:
            raise CrossnasError(f"space {spec.name}: input_size must be >= 2, got {size}")
        self.input_size = int(size)
        self.max_pools = _max_pools(self.input_size)
        self.head_hidden = tuple(spec.head_hidden)
        self.head_bits = spec.head_bits
        genes: list[Gene] = []
        self._slot_fields = ["block", "width", "wbits", "abits"] + (
            ["adc_bits"] if spec.adc_per_layer and spec.adc_bits else []
        )
        for i in range(spec.n_slots):
            genes += [
                Gene(f"slot{i}.block", tuple(spec.blocks)),
                Gene(f"slot{i}.width", tuple(spec.widths)),
                Gene(f"slot{i}.wbits", tuple(spec.wbits)),
                Gene(f"slot{i}.abits", tuple(spec.abits)),
            ]
            if "adc_bits" in self._slot_fields:
                genes.append(Gene(f"slot{i}.adc_bits", tuple(spec.adc_bits)))
        self._per_slot = len(self._slot_fields)
        self._hw: list[tuple[str, int, tuple[str, ...]]] = []  # (field, gene index, overlay keys)
        for fld, (label, keys) in HW_GENES.items():
            ch = getattr(spec, fld)
            if ch is None or (fld == "adc_bits" and spec.adc_per_layer):
                continue
            self._hw.append((fld, len(genes), keys))
            genes.append(Gene(label, tuple(ch)))
        self._genes = genes
        self._idx = {g.label: k for k, g in enumerate(genes)}
        self._pool_idx = spec.blocks.index("vgg_pool") if "vgg_pool" in spec.blocks else -1
        self._skip_idx = spec.blocks.index("skip") if "skip" in spec.blocks else -1
        self._n_net = spec.n_slots * self._per_slot

    @property
    def genes(self) -> list[Gene]:
        return self._genes

    # spec shortcuts read by the supernet (`SupernetSpec.from_space`)
    @property
    def n_slots(self) -> int:
        return self.spec.n_slots

    @property
    def block_kinds(self) -> tuple[str, ...]:
        return tuple(self.spec.blocks)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.spec.widths)

    @property
    def wbits(self) -> tuple[int, ...]:
        return tuple(self.spec.wbits)

    @property
    def abits(self) -> tuple[int, ...]:
        return tuple(self.spec.abits)

    # --- validity & canonical ---------------------------------------------------------------------
    def _slots(self, g: np.ndarray) -> np.ndarray:
        return g[: self._n_net].reshape(self.spec.n_slots, self._per_slot)

    def is_valid(self, genome: np.ndarray) -> bool:
        g = np.asarray(genome)
        if g.shape != (self.n_genes,) or (g < 0).any() or (g >= self.sizes).any():
            return False
        s = self._slots(g)
        if s[0, 0] == self._skip_idx:
            return False
        if int((s[:, 0] == self._pool_idx).sum()) > self.max_pools:
            return False
        if "hw.cell_bits" in self._idx:
            cb = self.spec.cell_bits[int(g[self._idx["hw.cell_bits"]])]
            active = s[:, 0] != self._skip_idx
            if any(self.spec.wbits[int(w)] < cb for w in s[active, 2]):
                return False
        return True

    def canonical(self, genome: np.ndarray) -> np.ndarray:
        g = np.array(genome, dtype=np.int64, copy=True)
        s = self._slots(g)  # view
        skip = s[:, 0] == self._skip_idx
        s[:] = np.concatenate([s[~skip], s[skip]])  # stable: the non-skip blocks keep their order
        s[int((~skip).sum()):, 1:] = 0
        return g

    # --- meaning ----------------------------------------------------------------------------------
    def network_arch(self, genome: np.ndarray) -> NetworkArch:
        s = self._slots(np.asarray(genome))
        sp = self.spec
        blocks = []
        for row in s:
            kind = sp.blocks[int(row[0])]
            if kind == "skip":
                blocks.append(BlockArch("skip", 0, sp.wbits[0], sp.abits[0]))
            else:
                blocks.append(
                    BlockArch(
                        kind,
                        int(sp.widths[int(row[1])]),
                        int(sp.wbits[int(row[2])]),
                        int(sp.abits[int(row[3])]),
                    )
                )
        return NetworkArch(blocks=tuple(blocks), head_bits=int(self.head_bits))

    def hardware_overlay(self, genome: np.ndarray) -> dict[str, Any]:
        g = np.asarray(genome)
        out: dict[str, Any] = {}
        for fld, k, keys in self._hw:
            v = getattr(self.spec, fld)[int(g[k])]
            for key in keys:
                out[key] = v
        if "adc_bits" in self._slot_fields:
            s = self._slots(g)
            out["adc.per_layer"] = {
                f"blocks.{i}.*": int(self.spec.adc_bits[int(row[4])])
                for i, row in enumerate(s)
                if int(row[0]) != self._skip_idx
            }
        return out

    def to_arch(self, genome: np.ndarray) -> CrossLayerArch:
        return CrossLayerArch(network=self.network_arch(genome), hardware=self.hardware_overlay(genome))

    # --- counting ---------------------------------------------------------------------------------
    def _count(self, with_hw: bool, bits: bool = True) -> int:
        sp = self.spec
        nw, na = len(sp.widths), (len(sp.abits) if bits else 1)
        nadc = len(sp.adc_bits) if (with_hw and "adc_bits" in self._slot_fields) else 1
        other = 1
        cells: list[int | None] = [None]
        for fld, _, _ in self._hw:
            if fld == "cell_bits":
                # networks alone: valid for some cell size, i.e. the smallest one (validity is monotone)
                cells = list(sp.cell_bits) if with_hw else [min(sp.cell_bits)]
            elif with_hw:
                other *= len(getattr(sp, fld))
        total = 0
        for c in cells:
            nwb = sum(1 for w in sp.wbits if c is None or w >= c) if bits else 1
            active = nw * nwb * na * nadc  # distinct gene settings of one active slot
            # canonical networks are sequences of 1..n_slots active blocks (skips padded at the end):
            # dp[p] = number of active-block sequences of the current length with p pools
            kinds = [k for k in sp.blocks if k != "skip"]
            lengths = range(1, sp.n_slots + 1) if "skip" in sp.blocks else [sp.n_slots]
            dp = [0] * (self.max_pools + 1)
            dp[0] = 1
            for length in range(1, sp.n_slots + 1):
                new = [0] * len(dp)
                for p, n in enumerate(dp):
                    for kind in kinds:
                        q = p + (kind == "vgg_pool")
                        if n and q < len(dp):
                            new[q] += n * active
                dp = new
                if length in lengths:
                    total += sum(dp)
        return total * other

    def count_networks(self, bits: bool = True) -> int:
        """Distinct canonical network genomes (slot block/width/wbits/abits) valid with some hardware choice.

        With `bits=False` only block kinds and widths count (the topology space, without quantization).
        """
        return self._count(with_hw=False, bits=bits)

    def count_configs(self) -> int:
        """Distinct valid canonical full genomes (network x hardware)."""
        return self._count(with_hw=True)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "input_size": self.input_size,
            "max_pools": self.max_pools,
            "head_hidden": list(self.head_hidden),
            "head_bits": self.head_bits,
            "genes": [(g.label, list(g.choices)) for g in self.genes],
            "topologies": self.count_networks(bits=False),
            "networks": self.count_networks(),
            "configs": self.count_configs(),
        }
