"""Compiled inputs of the cost model: `LayerTable` (a network as arrays) and `HardwareArrays` (N configs)."""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import numpy as np

from crossnas.errors import CrossnasError
from crossnas.hardware import tables as T
from crossnas.hardware.adc_law import LAW_KINDS
from crossnas.hardware.config import HardwareConfig
from crossnas.network import MATRIX_KINDS, LayerSpec

_KIND = {"conv": 0, "linear": 1, "pool": 2, "act": 3, "add": 4}


@dataclass
class LayerTable:
    """A network as arrays (L,). weight/act bits of -1 take the hardware default."""

    names: list[str]
    kind: np.ndarray
    rows_needed: np.ndarray
    kernel_area: np.ndarray
    out_channels: np.ndarray
    outputs: np.ndarray
    in_elements: np.ndarray
    out_elements: np.ndarray
    digital_ops: np.ndarray
    macs: np.ndarray
    weight_bits: np.ndarray
    act_bits: np.ndarray
    act_signed: np.ndarray
    _adc_cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def is_matrix(self) -> np.ndarray:
        return self.kind <= 1

    @classmethod
    def from_layers(cls, layers: list[LayerSpec]) -> LayerTable:
        if not layers:
            raise CrossnasError("network has no layers to map")
        i = lambda f: np.array([f(s) for s in layers], dtype=np.int64)  # noqa: E731
        kinds = []
        for s in layers:
            if s.kind not in _KIND:
                raise CrossnasError(f"{s.name}: unknown layer kind {s.kind!r}")
            kinds.append(_KIND[s.kind])

        def dig(s: LayerSpec) -> int:
            if s.kind == "pool":
                return s.out_elements * s.kernel[0] * s.kernel[1]
            if s.kind in ("act", "add"):
                return s.out_elements
            return 0

        def in_el(s: LayerSpec) -> int:
            return s.in_channels * s.in_hw[0] * s.in_hw[1]

        return cls(
            names=[s.name for s in layers], kind=np.array(kinds, dtype=np.int64),
            rows_needed=i(lambda s: s.rows_needed if s.kind in MATRIX_KINDS else 0),
            kernel_area=i(lambda s: s.kernel[0] * s.kernel[1] if s.kind == "conv" else 1),
            out_channels=i(lambda s: s.out_channels // (s.groups if s.kind == "conv" else 1)),
            outputs=i(lambda s: s.outputs * (s.groups if s.kind == "conv" else 1)),
            in_elements=i(in_el), out_elements=i(lambda s: s.out_elements), digital_ops=i(dig),
            macs=i(lambda s: s.macs),
            weight_bits=i(lambda s: -1 if s.weight_bits is None else s.weight_bits),
            act_bits=i(lambda s: -1 if s.act_bits is None else s.act_bits),
            act_signed=np.array([s.act_signed for s in layers], dtype=bool),
        )

    def adc_bits(self, hw: HardwareConfig) -> np.ndarray:
        if not hw.adc.per_layer:
            return np.full(len(self), hw.adc.bits, dtype=np.int64)
        key = tuple(sorted(hw.adc.per_layer.items())) + (hw.adc.bits,)
        if key not in self._adc_cache:
            from fnmatch import fnmatchcase

            mats = [n for n, m in zip(self.names, self.is_matrix) if m]
            for pattern in hw.adc.per_layer:
                if not any(fnmatchcase(n, pattern) for n in mats):
                    shown = ", ".join(mats[:6]) + (", ..." if len(mats) > 6 else "")
                    raise CrossnasError(f"adc.per_layer[{pattern!r}]: names no matrix layer of this network "
                                        f"(matrix layers: {shown})")
            self._adc_cache[key] = np.array([hw.adc_bits_for(n) for n in self.names], dtype=np.int64)
        return self._adc_cache[key]


_HW_FIELDS = {
    "cell_bits": lambda h: h.device.bits_per_cell, "r_on": lambda h: h.device.r_on_ohm,
    "r_off": lambda h: math.inf if h.device.r_off_ohm is None else h.device.r_off_ohm,
    "v_read": lambda h: h.device.read_voltage_v, "t_read": lambda h: h.device.read_latency_ns * 1e-9,
    "cell_area": lambda h: h.device.cell_area_um2, "node": lambda h: h.device.technology_nm,
    "rows": lambda h: h.crossbar.rows, "cols": lambda h: h.crossbar.cols,
    "differential": lambda h: h.crossbar.signed == "differential",
    "analog_sub": lambda h: h.crossbar.differential_subtract == "analog",
    "kernel_aligned": lambda h: h.crossbar.row_packing == "kernel_aligned",
    "per_crossbar": lambda h: h.crossbar.slice_placement == "per_crossbar",
    "dac_bits": lambda h: h.dac.bits, "rows_per_dac": lambda h: h.dac.rows_per_dac,
    "wire_r": lambda h: h.crossbar.wire_r_ohm, "wire_c": lambda h: h.crossbar.wire_c_f,
    "adc_bits": lambda h: h.adc.bits, "cols_per_adc": lambda h: h.adc.cols_per_adc,
    "per_layer": lambda h: bool(h.adc.per_layer),
    "adc_ref_bits": lambda h: h.adc.bits if h.adc.reference_bits is None else h.adc.reference_bits,
    "law_kind": lambda h: LAW_KINDS.index(h.adc.law.kind), "law_corner": lambda h: h.adc.law.corner_bits,
    "law_thermal": lambda h: h.adc.law.thermal_bits, "law_area_corner": lambda h: h.adc.law.area_corner_bits,
    "adc_rate": lambda h: h.adc.sample_rate_hz,
    "adc_power": lambda h: np.nan if h.adc.power_w is None else h.adc.power_w,
    "adc_area": lambda h: np.nan if h.adc.area_um2 is None else h.adc.area_um2,
    "adc_table": lambda h: T.ADC_TABLES.index(h.adc.energy_table),
    "weight_bits": lambda h: h.quant.weight_bits, "act_bits": lambda h: h.quant.act_bits,
    "xbars_per_tile": lambda h: h.system.crossbars_per_pe * h.system.pes_per_tile,
    "xbars_per_pe": lambda h: h.system.crossbars_per_pe,
    "tiles_fixed": lambda h: 0 if h.system.tiles == "auto" else h.system.tiles,
    "clock": lambda h: h.system.clock_hz, "buffer_kb": lambda h: h.system.buffer_kb,
    "inter_bps": lambda h: h.system.inter_tile_gbps * 1e9,
    "intra_bps": lambda h: h.system.intra_tile_gbps * 1e9,
    "balance": lambda h: h.system.duplication == "balance", "max_dup": lambda h: h.system.max_duplication,
}


@dataclass
class HardwareArrays:
    """Hardware configs as arrays (N,), built once per batch."""

    data: dict[str, np.ndarray]
    configs: list[HardwareConfig]

    def __len__(self) -> int:
        return len(self.configs)

    def __getattr__(self, k):
        try:
            return self.__dict__["data"][k]
        except KeyError:
            raise AttributeError(k) from None

    @classmethod
    def from_configs(cls, hws: list[HardwareConfig] | HardwareConfig) -> HardwareArrays:
        if isinstance(hws, HardwareConfig):
            hws = [hws]
        rows = [[f(h) for f in _HW_FIELDS.values()] for h in hws]
        cols = list(zip(*rows))
        data = {k: np.asarray(c) for k, c in zip(_HW_FIELDS, cols)}
        return cls(data, list(hws))


_TABLE_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def table_for(model, input_shape: tuple[int, ...]) -> LayerTable:
    """The LayerTable of `model` on `input_shape`, traced once and cached per model object and shape.

    The cache holds the model weakly; re-trace (or build a new model) after changing its structure."""
    from crossnas.network import extract_layers

    per_model = _TABLE_CACHE.setdefault(model, {})
    key = tuple(int(x) for x in input_shape)
    if key not in per_model:
        per_model[key] = LayerTable.from_layers(extract_layers(model, key))
    return per_model[key]
