"""Device effects, one boundary: what is drawn once per chip (CellEffect) and what happens at every read of
a tile (ReadEffect), each registered by name (crossnas.analog.names). Physics here is float64 conductance
arithmetic; dtypes and GEMM routes are the kernels' business.

Conductances are normalised to g_max = 1/r_on: a cell at level l of L = 2^cell - 1 has
g = g_min + l/L (1 - g_min), g_min = r_on/r_off. A reference column removes g_min * sum(inputs) exactly, so
the kernels see the effective level (g - g_min)/(1 - g_min) * L.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from crossnas.analog.names import CELL_EFFECTS, READ_EFFECTS
from crossnas.analog.plan import LayerPlan
from crossnas.hardware.config import HardwareConfig

PCM_T0_S = 20.0  # Nandakumar et al. 2019 / aihwkit PCMLikeNoiseModel
PCM_GMAX_US = 25.0


def g_min(hw: HardwareConfig) -> float:
    d = hw.device
    return 0.0 if d.r_off_ohm is None else d.r_on_ohm / d.r_off_ohm


# ------------------------------------------------------------------------------------------------ per chip
class CellEffect:
    """Drawn once per chip and cell: maps conductances g (float64, g_max units) to perturbed ones."""

    name = ""

    def active(self, hw: HardwareConfig) -> bool:
        raise NotImplementedError

    def apply(self, g: torch.Tensor, hw: HardwareConfig, gen: torch.Generator, gmin: float) -> torch.Tensor:
        raise NotImplementedError


def _randn(g, gen):
    return torch.randn(g.shape, generator=gen, dtype=torch.float64).to(g.device)


class PCMNoise(CellEffect):
    """PCM programming noise, sigma = (0.26348 + 1.9650 g - 1.1731 g^2)/25 in g_max units
    (Nandakumar et al. 2019, g_max = 25 uS)."""

    name = "pcm_noise"

    def active(self, hw):
        return hw.device.pcm_noise

    def apply(self, g, hw, gen, gmin):
        sig = (0.26348 + 1.9650 * g - 1.1731 * g**2) / PCM_GMAX_US
        return (g + sig * _randn(g, gen)).clamp_min(0.0)


class Variation(CellEffect):
    """Programming variation g(1 + sigma z) or g exp(sigma z) (median-preserving); not with PCM noise."""

    name = "variation"

    def active(self, hw):
        return hw.device.variation > 0 and not hw.device.pcm_noise

    def apply(self, g, hw, gen, gmin):
        d, z = hw.device, _randn(g, gen)
        g = g * (1 + d.variation * z) if d.variation_model == "gaussian" else g * torch.exp(d.variation * z)
        return g.clamp_min(0.0)


class Drift(CellEffect):
    """PCM drift g (t/t0)^-nu, nu ~ N(mu(g), sigma(g)) with aihwkit's clamped formulas, t0 = 20 s."""

    name = "drift"

    def active(self, hw):
        return hw.device.drift_time_s is not None

    def apply(self, g, hw, gen, gmin):
        gr = g.clamp_min(1e-6)
        mu = (-0.0155 * torch.log(gr) + 0.0244).clamp(0.049, 0.1)
        sd = (-0.0125 * torch.log(gr) - 0.0059).clamp(0.008, 0.045)
        nu = mu + sd * _randn(g, gen)
        return g * (max(hw.device.drift_time_s, PCM_T0_S) / PCM_T0_S) ** (-nu)


class StuckAt(CellEffect):
    """Stuck-off cells -> g_min, stuck-on -> g_max (applied last)."""

    name = "stuck_at"

    def active(self, hw):
        return hw.device.stuck_off_rate > 0 or hw.device.stuck_on_rate > 0

    def apply(self, g, hw, gen, gmin):
        d = hw.device
        u = torch.rand(g.shape, generator=gen, dtype=torch.float64).to(g.device)
        g = torch.where(u < d.stuck_off_rate, torch.full_like(g, gmin), g)
        on = (u >= d.stuck_off_rate) & (u < d.stuck_off_rate + d.stuck_on_rate)
        return torch.where(on, torch.ones_like(g), g)


CELL_REGISTRY: dict[str, CellEffect] = {e.name: e for e in (PCMNoise(), Variation(), Drift(), StuckAt())}


# ------------------------------------------------------------------------------------------------ per read
@dataclass
class ChipReads:
    """The per-chip state of the read effects, applied by the kernels to float partial sums of tile t:
    `analog` before the ADC (in unit partial sums), `adc` to the ADC input in LSB (before rounding)."""

    noise_rel: float = 0.0
    noise_floor: float = 0.0
    adc_offset: torch.Tensor | None = None  # (T, AC*S*O) LSB, per ADC instance
    adc_inl: torch.Tensor | None = None  # (T, AC*S*O) peak INL in LSB, per ADC instance
    qmax: int = 1
    signed: bool = False
    gen: torch.Generator | None = None  # per (chip seed, layer, batch index): set by the layer per forward

    def to(self, device) -> ChipReads:
        for k in ("adc_offset", "adc_inl"):
            if getattr(self, k) is not None:
                setattr(self, k, getattr(self, k).to(device))
        return self

    @property
    def noisy(self) -> bool:
        return self.noise_rel > 0 or self.noise_floor > 0

    def analog(self, ps: torch.Tensor, t: int) -> torch.Tensor:
        if not self.noisy:
            return ps
        z = torch.randn(ps.shape, generator=self.gen, dtype=ps.dtype, device=ps.device)
        sig = (ps * self.noise_rel).square_().add_(self.noise_floor**2).sqrt_()
        return ps.addcmul_(z, sig)

    def bow(self, u: torch.Tensor) -> torch.Tensor:
        """INL shape in [0, 1] over the ADC input range: 4v(1-v) unsigned, 1-v^2 signed (v = u/qmax)."""
        v = (u / self.qmax).clamp(-1.0 if self.signed else 0.0, 1.0)
        return 1 - v * v if self.signed else 4 * v * (1 - v)

    def adc(self, u: torch.Tensor, t: int) -> torch.Tensor:
        """u: (AC*S*O, n) ADC inputs in LSB."""
        if self.adc_inl is not None:
            u = u.add_(self.bow(u).mul_(self.adc_inl[t].to(u.dtype).reshape(-1, 1)))
        if self.adc_offset is not None:
            u = u.add_(self.adc_offset[t].to(u.dtype).reshape(-1, 1))
        return u


class ReadEffect:
    """What happens at each read of a tile. `levels` folds a linear-circuit effect into the tile's
    effective levels (the crossbar is linear in its input voltages); `draw` fills the chip's ChipReads."""

    name = ""

    def active(self, hw: HardwareConfig) -> bool:
        raise NotImplementedError

    def levels(self, lv: torch.Tensor, plan: LayerPlan, hw: HardwareConfig) -> torch.Tensor:
        return lv

    def draw(self, reads: ChipReads, plan: LayerPlan, hw: HardwareConfig, gen: torch.Generator) -> None:
        return None


class IRDrop(ReadEffect):
    """Wire resistance r = crossbar.wire_r_ohm per cell segment on word and bit lines, to first order.

    The crossbar with wire resistance is a linear circuit in the row voltages (undriven rows at 0 V), so IR
    drop is an effective conductance matrix. First-order solution of its nodal equations (the circuit that
    PytorX's IrSolver solves iteratively, He et al., DAC 2019): with ideal currents I_i = x_i g_i, the bit
    line's segment below row k carries sum_{i<=k} I_i to the sense end after the last row, so cell i's bit-
    line node sits at v_i = r sum_{k>=i} sum_{i'<=k} I_i'; the word line, driven before column 0, drops
    u_ij = r x_i sum_j' g_ij' (min(j, j') + 1). The lost current g_ij (v_ij + u_ij) is linear in x, giving
    g'_ij = g_ij (1 - (r/r_on) (h_ij + w_ij)) with h_ij = sum_i' g_i'j (R - max(i, i')) over the tile's R rows
    and w_ij = sum_j' g_ij' (min(j, j') + 1) over the array's columns (g in g_max units). The error grows
    ~ R^2 with rows, with the column's total conductance, and with r/r_on (lower R_on: larger). Columns:
    the O outputs of one (array, slice) in order, split every crossbar.cols. Clamped at g' >= 0 (first
    order overestimates large drops); the reference column is taken as ideal."""

    name = "ir_drop"

    def active(self, hw):
        return hw.device.ir_drop and hw.crossbar.wire_r_ohm > 0

    def levels(self, lv, plan, hw):
        L = 2**plan.cell - 1
        gmin = g_min(hw)
        rn = hw.crossbar.wire_r_ohm / hw.device.r_on_ohm
        g = gmin + lv / L * (1 - gmin)  # (A, S, O, K)
        out = torch.empty_like(g)
        cols = hw.crossbar.cols
        for a0, a1 in plan.bounds:
            gt = g[..., a0:a1]  # (A, S, O, R): rows along the last axis
            R = a1 - a0
            i = torch.arange(R, dtype=torch.float64, device=g.device)
            d = gt * (R - i)
            suffix = d.flip(-1).cumsum(-1).flip(-1) - d  # sum_{i' > i} g_i' (R - i')
            h = (R - i) * gt.cumsum(-1) + suffix
            w = torch.empty_like(gt)
            for c0 in range(0, plan.O, cols):  # word lines span one array's columns
                gc = gt[:, :, c0:c0 + cols]
                j = torch.arange(gc.shape[2], dtype=torch.float64, device=g.device).reshape(-1, 1)
                e = gc * (j + 1)
                below = e.cumsum(2)  # sum_{j' <= j} g_j' (j' + 1)
                above = gc.flip(2).cumsum(2).flip(2) - gc  # sum_{j' > j} g_j'
                w[:, :, c0:c0 + cols] = below + (j + 1) * above
            out[..., a0:a1] = (gt * (1 - rn * (h + w))).clamp_min(0.0)
        return (out - gmin) / (1 - gmin) * L


class ReadNoise(ReadEffect):
    """Per-read, per-column Gaussian on the analog sum: sigma = sqrt((read_noise ps)^2 + read_noise_floor^2)
    in unit partial sums, drawn fresh every forward from a generator seeded per (chip, layer, batch)."""

    name = "read_noise"

    def active(self, hw):
        return hw.device.read_noise > 0 or hw.device.read_noise_floor > 0

    def draw(self, reads, plan, hw, gen):
        reads.noise_rel, reads.noise_floor = hw.device.read_noise, hw.device.read_noise_floor


def _per_adc(plan: LayerPlan, sigma: float, gen: torch.Generator) -> torch.Tensor:
    """One N(0, sigma) value per ADC instance ((tile, converted array-slice, cols_per_adc columns)),
    expanded to (T, AC*S*O)."""
    n = -(-plan.O // plan.cols_per_adc)
    v = torch.randn((plan.T, plan.AC * plan.S, n), generator=gen, dtype=torch.float64) * sigma
    return v.repeat_interleave(plan.cols_per_adc, -1)[..., : plan.O].reshape(plan.T, -1)


class ADCOffset(ReadEffect):
    """Input offset of each ADC, N(0, adc.offset_lsb) LSB, drawn once per chip."""

    name = "adc_offset"

    def active(self, hw):
        return hw.adc.offset_lsb > 0

    def draw(self, reads, plan, hw, gen):
        reads.adc_offset = _per_adc(plan, hw.adc.offset_lsb, gen)


class ADCINL(ReadEffect):
    """Integral non-linearity of each ADC: a parabolic bow (zero at both ends of the range, peak at mid
    scale) of amplitude N(0, adc.inl_lsb) LSB, drawn once per chip."""

    name = "adc_inl"

    def active(self, hw):
        return hw.adc.inl_lsb > 0

    def draw(self, reads, plan, hw, gen):
        reads.adc_inl = _per_adc(plan, hw.adc.inl_lsb, gen)


READ_REGISTRY: dict[str, ReadEffect] = {e.name: e for e in (IRDrop(), ReadNoise(), ADCOffset(), ADCINL())}
assert tuple(CELL_REGISTRY) == CELL_EFFECTS and tuple(READ_REGISTRY) == READ_EFFECTS


def active_cell_effects(hw: HardwareConfig) -> list[CellEffect]:
    return [e for n, e in CELL_REGISTRY.items() if n not in hw.device.effects_off and e.active(hw)]


def active_read_effects(hw: HardwareConfig) -> list[ReadEffect]:
    return [e for n, e in READ_REGISTRY.items() if n not in hw.device.effects_off and e.active(hw)]


def perturb_levels(lv: torch.Tensor, hw: HardwareConfig, cell: int, seed: int,
                   effects: list[CellEffect]) -> torch.Tensor:
    """This chip's effective levels after the cell effects, in registry order from one generator."""
    L = 2**cell - 1
    gmin = g_min(hw)
    g = gmin + lv / L * (1 - gmin)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    for e in effects:
        g = e.apply(g, hw, gen, gmin)
    return (g - gmin) / (1 - gmin) * L


def chip_reads(plan: LayerPlan, hw: HardwareConfig, seed: int, effects: list[ReadEffect]) -> ChipReads:
    reads = ChipReads(qmax=plan.qmax, signed=plan.adc_signed)
    gen = torch.Generator(device="cpu")
    gen.manual_seed((int(seed) * 2_654_435_761 + 97) % (2**62))  # a stream apart from the cell draws
    for e in effects:
        e.draw(reads, plan, hw, gen)
    return reads


def read_seed(layer_seed: int, batch: int) -> int:
    """Seed of a layer's read noise at its `batch`-th forward since the chip was drawn."""
    return (int(layer_seed) * 1_000_033 + int(batch) * 7_919 + 17) % (2**62)
