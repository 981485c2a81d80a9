"""LayerPlan: every derived number of one weight matrix on crossbars, and its integer encodings.

Slices, input chunks, rows per tile and tile bounds come from crossnas.cost.mapping_rules (the cost model's
rules); nothing is re-derived. The plan is the only place the exact kernels read settings from.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from crossnas.cost.mapping_rules import input_chunks, row_tile_bounds, rows_per_tile, weight_slices
from crossnas.errors import CrossnasError
from crossnas.hardware.config import HardwareConfig

F32_EXACT = 2**24  # integers below this add exactly in float32


@dataclass(frozen=True)
class LayerPlan:
    name: str
    wbits: int
    abits: int
    act_signed: bool
    cell: int
    dac: int
    adc_bits: int
    scheme: str  # differential | offset
    subtract: str  # analog | digital
    rows: int  # rows per tile
    bounds: tuple  # [start, stop) rows of each tile
    O: int  # output columns (of one group)
    K: int  # unrolled rows (of one group)
    cols_per_adc: int = 1

    @property
    def S(self) -> int:
        return int(weight_slices(self.wbits, self.cell, self.scheme))

    @property
    def C(self) -> int:
        return int(input_chunks(self.abits, self.dac, self.act_signed))

    @property
    def T(self) -> int:
        return len(self.bounds)

    @property
    def A(self) -> int:  # arrays per slice
        return 2 if self.scheme == "differential" else 1

    @property
    def adc_signed(self) -> bool:
        return self.scheme == "differential" and self.subtract == "analog"

    @property
    def AC(self) -> int:  # converted arrays per (slice, column)
        return 1 if self.adc_signed else self.A

    @property
    def qmax(self) -> int:
        """Largest ADC code (signed ADCs are symmetric)."""
        return max(2 ** (self.adc_bits - 1) - 1, 1) if self.adc_signed else 2**self.adc_bits - 1

    @property
    def tile_rows(self) -> list[int]:
        return [b - a for a, b in self.bounds]

    def fs_full(self) -> torch.Tensor:
        """Full-scale partial sum per tile (rows actually used in the tile)."""
        rows = torch.tensor(self.tile_rows, dtype=torch.float64)
        return rows * (2**self.dac - 1) * (2**self.cell - 1)

    @property
    def lossless(self) -> bool:
        """The ADC resolves every integer partial sum (any range policy: the step clamps at one unit)."""
        return self.qmax >= max(self.tile_rows) * (2**self.dac - 1) * (2**self.cell - 1)

    # ---- shift-and-add coefficients
    def chunk_weights(self) -> torch.Tensor:
        """Weight of each DAC chunk (C,): 2^(dac*c); a signed input's sign chunk -2^(ab-1)."""
        n_mag = self.C - 1 if self.act_signed else self.C
        cw = [2.0 ** (self.dac * c) for c in range(n_mag)]
        if self.act_signed:
            cw.append(-(2.0 ** (self.abits - 1)))
        return torch.tensor(cw, dtype=torch.float64)

    def array_signs(self) -> torch.Tensor:
        return torch.tensor([1.0, -1.0] if self.A == 2 else [1.0], dtype=torch.float64)

    def slice_weights(self) -> torch.Tensor:
        return 2.0 ** (torch.arange(self.S, dtype=torch.float64) * self.cell)

    def col_weights(self) -> torch.Tensor:
        """Shift-and-add weight of each converted (array, slice) (AC*S,)."""
        sgn = self.array_signs()[: self.AC].reshape(-1, 1)
        return (sgn * self.slice_weights().reshape(1, -1)).reshape(-1)

    # ---- encodings
    def weight_levels(self, wq: torch.Tensor) -> torch.Tensor:
        """(O, K) signed weight integers -> (A, S, O, K) cell levels (float64 integers)."""
        if self.scheme == "differential":
            mags = torch.stack([wq.clamp_min(0), (-wq).clamp_min(0)])
        else:
            mags = (wq + 2 ** (self.wbits - 1)).unsqueeze(0)
        mags = mags.to(torch.int64)
        sh = torch.arange(self.S, device=wq.device) * self.cell
        return ((mags.unsqueeze(1) >> sh.reshape(1, -1, 1, 1)) & (2**self.cell - 1)).double()

    def planes(self, xq: torch.Tensor) -> torch.Tensor:
        """Integer inputs (any shape) -> (*shape, C) uint8 DAC chunk values in 0..2^dac-1.

        Unsigned: chunk c = bits [dac*c, dac*(c+1)). Signed: the low ab-1 bits of the two's complement
        code in ceil((ab-1)/dac) chunks, then a 0/1 sign chunk (weight -2^(ab-1))."""
        if self.abits <= 8:
            xi = xq.to(torch.int8 if self.act_signed else torch.uint8)  # exact: codes fit in 8 bits
        else:
            xi = xq.to(torch.int32)
        n_mag = self.C - 1 if self.act_signed else self.C
        low = xi & (2 ** (self.abits - 1) - 1) if self.act_signed else xi
        sh = torch.arange(n_mag, device=xq.device, dtype=xi.dtype) * self.dac
        planes = ((low.unsqueeze(-1) >> sh) & (2**self.dac - 1)).to(torch.uint8)
        if self.act_signed:
            planes = torch.cat([planes, (xi < 0).unsqueeze(-1).to(torch.uint8)], -1)
        return planes


def validate(name: str, hw: HardwareConfig, wb: int, ab: int, adc_bits: int, signed: bool) -> None:
    """Impossible settings for layer `name`: CrossnasError naming the layer, the setting and why."""
    d = hw.device
    checks = [(hw.dac.bits < 1, f"dac.bits={hw.dac.bits}: a DAC needs at least 1 bit"),
              (adc_bits < 1, f"adc.bits={adc_bits}: an ADC needs at least 1 bit"),
              (d.bits_per_cell < 1, f"device.bits_per_cell={d.bits_per_cell}: a cell stores at least 1 bit"),
              (d.bits_per_cell > wb, f"device.bits_per_cell={d.bits_per_cell} is larger than this layer's "
                                     f"weight bits ({wb})"),
              (d.variation < 0, f"device.variation={d.variation}: a relative sigma cannot be negative"),
              (wb < 2, f"weight bits={wb}: signed weights need at least 2 bits"),
              (ab < 1, f"activation bits={ab}: need at least 1 bit"),
              (signed and ab < 2, f"act_bits: signed activations need >= 2 bits, got {ab}"),
              (hw.crossbar.rows < 1, f"crossbar.rows={hw.crossbar.rows}: need at least 1 row"),
              (not 0 <= d.stuck_off_rate <= 1, f"device.stuck_off_rate={d.stuck_off_rate}: not in [0, 1]"),
              (not 0 <= d.stuck_on_rate <= 1, f"device.stuck_on_rate={d.stuck_on_rate}: not in [0, 1]"),
              (d.stuck_off_rate + d.stuck_on_rate > 1,
               f"device.stuck_off_rate + stuck_on_rate = {d.stuck_off_rate + d.stuck_on_rate} exceeds 1")]
    for bad, why in checks:
        if bad:
            raise CrossnasError(f"{name}: {why}")


def make_plan(name: str, hw: HardwareConfig, wb: int, ab: int, signed: bool, O: int, K: int,
              kernel_area: int) -> LayerPlan:
    """The plan of one (O, K) weight matrix (a layer, or one group of a grouped conv)."""
    adc_bits = hw.adc_bits_for(name)
    validate(name, hw, wb, ab, adc_bits, signed)
    xb = hw.crossbar
    rpt = int(rows_per_tile(xb.rows, kernel_area, xb.row_packing, layer=name))
    return LayerPlan(name, wb, ab, signed, hw.device.bits_per_cell, hw.dac.bits, adc_bits, xb.signed,
                     xb.differential_subtract, rpt, tuple(row_tile_bounds(K, rpt)), O, K,
                     hw.adc.cols_per_adc)
