"""Public entry points: `evaluate_cost` (one network, full report) and `evaluate_batch` (N candidates)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crossnas.cost.compile import HardwareArrays, LayerTable
from crossnas.cost.model import COMPONENTS, TOTAL_KEYS, compute
from crossnas.hardware.config import HardwareConfig
from crossnas.network import LayerSpec


@dataclass
class CostReport:
    """Totals (keys TOTAL_KEYS); one dict per layer with the same keys, mapping and `energy_breakdown`."""

    totals: dict[str, float]
    layers: list[dict] = field(default_factory=list)
    hardware: str = ""
    packing: str = ""

    def to_dict(self) -> dict:
        return {"hardware": self.hardware, "packing": self.packing, "totals": dict(self.totals),
                "layers": [dict(x) for x in self.layers]}


def _as_table(layers) -> LayerTable:
    return layers if isinstance(layers, LayerTable) else LayerTable.from_layers(list(layers))


def evaluate_cost(layers: list[LayerSpec] | LayerTable, hw: HardwareConfig) -> CostReport:
    table = _as_table(layers)
    out = compute([table], HardwareArrays.from_configs(hw), per_layer=True)
    t = {k: float(v[0]) for k, v in out["totals"].items()}
    for k in ("crossbars", "tiles"):
        t[k] = int(t[k])
    ly = out["layers"]
    kinds = {0: "conv", 1: "linear", 2: "pool", 3: "act", 4: "add"}
    rows = []
    for j, name in enumerate(table.names):
        breakdown = {c: float(ly["energy"][c][0, j]) for c in COMPONENTS}
        lat = float(ly["latency_s"][0, j])
        energy = sum(breakdown.values())
        macs = int(ly["macs"][0, j])
        rows.append({
            "name": name, "kind": kinds[int(table.kind[j])],
            "latency_s": lat, "latency_sequential_s": lat, "energy_j": energy,
            "area_mm2": float(ly["area_mm2"][0, j]), "edp_js": energy * lat,
            "crossbars": int(ly["crossbars"][0, j]), "tiles": float(ly["tiles"][0, j]),
            "tops_per_w": 2.0 * macs / energy / 1e12 if energy > 0 else 0.0,
            "macs": macs, "slices": int(ly["slices"][0, j]) if ly["is_matrix"][0, j] else 0,
            "chunks": int(ly["chunks"][0, j]) if ly["is_matrix"][0, j] else 0,
            "row_tiles": int(ly["row_tiles"][0, j]), "col_tiles": int(ly["col_tiles"][0, j]),
            "rows_per_tile": int(ly["rows_per_tile"][0, j]), "duplication": int(ly["duplication"][0, j]),
            "pes": int(ly["pes"][0, j]), "utilisation": float(ly["utilisation"][0, j]),
            "cycles_per_output": int(ly["cycles_per_output"][0, j]), "adc_bits": int(ly["adc_bits"][0, j]),
            "energy_breakdown": breakdown,
        })
    return CostReport(t, rows, hardware=hw.name, packing=hw.crossbar.row_packing)


def evaluate_batch(layer_tables, hws) -> dict[str, np.ndarray]:
    """Score N (network, hardware) pairs: `layer_tables` one table/list of LayerSpec (shared) or N of them;
    `hws` a HardwareArrays, one config or a list of N configs. Returns {TOTAL_KEYS: (N,) arrays}."""
    hwa = hws if isinstance(hws, HardwareArrays) else HardwareArrays.from_configs(hws)
    if isinstance(layer_tables, LayerTable) or (
            isinstance(layer_tables, list) and layer_tables and isinstance(layer_tables[0], LayerSpec)):
        tables = [_as_table(layer_tables)]
    else:
        tables = [_as_table(t) for t in layer_tables]
    if len(tables) > 1 and len(hwa) == 1:
        hwa = HardwareArrays.from_configs(hwa.configs * len(tables))
    totals = compute(tables, hwa)["totals"]
    return {k: np.asarray(totals[k]) for k in TOTAL_KEYS}
