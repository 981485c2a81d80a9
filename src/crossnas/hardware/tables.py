"""Component tables for the PIM cost model; every constant names its source next to it.

Units: energy in joules, area in um^2, power in watts, time in seconds. Technology scaling (stated rule):
digital/periphery energies scale linearly with the node (E ~ C V^2 with C ~ node at fixed V); areas
scale with node^2. Murmann ADC energy scales with (node / 32)^1.9, which fits the survey's own 32 nm vs
65 nm points (4 b: 0.74 -> 2.8 pJ; 8 b: 1.37 -> 5.2 pJ). ADC tables other than Murmann are used as given.
"""

from __future__ import annotations

import numpy as np

# --- ADC ------------------------------------------------------------------------------------------
# Murmann ADC survey fit (CiMLoop, arXiv 2404.06553; hwcomponents-adc), 32 nm, 1 GS/s: energy per conversion.
MURMANN_BITS = np.array([4.0, 6.0, 8.0, 10.0])
MURMANN_ENERGY_J = np.array([0.74e-12, 0.85e-12, 1.37e-12, 11.2e-12])  # CiMLoop Murmann fit, 32 nm
MURMANN_AREA_BITS = np.array([4.0, 8.0, 10.0])
MURMANN_AREA_UM2 = np.array([4964.0, 5972.0, 11180.0])  # CiMLoop Murmann fit, 32 nm
MURMANN_NODE_NM = 32.0  # CiMLoop Murmann fit node
MURMANN_NODE_EXP = 1.9  # crossnas fit of the survey's 32 vs 65 nm points (see module docstring)
# Rule below 4 bits (the fit requires n_bits >= 4): clamp to the 4-bit value. Above 10 bits: extrapolate
# log-linearly from the 8->10 bit segment (x ~3.2 per bit).

# ISAAC (Shafiee et al., ISCA 2016): 8-bit SAR, 2 mW at 1.28 GS/s -> 1.56 pJ, 1,200 um2. Other bits:
# crossnas rule, energy and area halve per bit removed (flash/SAR ~2x per bit, as NeuroSim's table shows).
ISAAC_ADC_ENERGY_8B_J = 2e-3 / 1.28e9  # ISAAC Table 6
ISAAC_ADC_AREA_8B_UM2 = 1200.0  # ISAAC Table 6

# DNN+NeuroSim V1.3 sense-amp ADC, 32 nm, 128x128 array: 4..8 bits.
NEUROSIM_BITS = np.array([4.0, 5.0, 6.0, 7.0, 8.0])
NEUROSIM_ENERGY_J = np.array([0.049e-12, 0.100e-12, 0.203e-12, 0.409e-12, 0.821e-12])  # NeuroSim V1.3
NEUROSIM_AREA_BITS = np.array([4.0, 8.0])
NEUROSIM_AREA_UM2 = np.array([369.0, 9669.0])  # NeuroSim V1.3; log-interpolated between
# Outside 4..8 bits: 2x per bit (the table's own trend).

# MNSIM-2.0 ADC.py presets: (bits, power W, rate S/s, area um2); energy per sample = power / rate.
MNSIM_ADC = [
    (10, 6.92e-3, 1.5e9, 1600.0),  # MNSIM-2.0 ADC.py preset 1
    (8, 2e-3, 1.28e9, 1200.0),  # preset 2 (ISAAC)
    (8, 4e-3, 1.1e9, 1650.0),  # preset 3
    (6, 1.26e-3, 1e9, 580.0),  # preset 4
    (8, 4e-3, 1.1e9, 1650.0),  # preset 5
    (6, 1.26e-3, 1e9, 1650.0),  # preset 6
    (4, 0.70e-3, 1e9, 500.0),  # preset 7
    (1, 1.63e-6, 1e9, 1.0),  # preset 8
]
# Lookup rule for the mnsim table: the cheapest preset with at least the requested bits (energy per
# sample); bits between presets take that preset; 2..3 bits take the 4-bit preset.
_MN = sorted({(b, p / r, a) for b, p, r, a in MNSIM_ADC})
MNSIM_ADC_BITS = np.array([b for b, _, _ in _MN], dtype=float)
MNSIM_ADC_ENERGY_J = np.array([e for _, e, _ in _MN])
MNSIM_ADC_AREA_UM2 = np.array([a for _, _, a in _MN])

ADC_TABLES = ("murmann", "isaac", "neurosim", "mnsim")


def _loginterp(x, xp, fp):
    x = np.asarray(x, dtype=float)
    lo_slope = np.log(fp[1] / fp[0]) / (xp[1] - xp[0])
    hi_slope = np.log(fp[-1] / fp[-2]) / (xp[-1] - xp[-2])
    y = np.exp(np.interp(x, xp, np.log(fp)))
    y = np.where(x > xp[-1], fp[-1] * np.exp(hi_slope * (x - xp[-1])), y)
    return np.where(x < xp[0], fp[0] * np.exp(lo_slope * (x - xp[0])), y)


def adc_energy_j(table: str, bits, node_nm=32.0):
    """Energy per conversion of one ADC at `bits` (non-decreasing in bits for every table)."""
    b = np.asarray(bits, dtype=float)
    if table == "murmann":
        e = _loginterp(np.maximum(b, 4.0), MURMANN_BITS, MURMANN_ENERGY_J)
        return e * (np.asarray(node_nm, dtype=float) / MURMANN_NODE_NM) ** MURMANN_NODE_EXP
    if table == "isaac":
        return ISAAC_ADC_ENERGY_8B_J * 2.0 ** (b - 8.0)
    if table == "neurosim":
        return _loginterp(b, NEUROSIM_BITS, NEUROSIM_ENERGY_J)
    if table == "mnsim":
        return _mnsim_pick(b, MNSIM_ADC_ENERGY_J)
    raise ValueError(f"adc.energy_table: expected one of {ADC_TABLES}, got {table!r}")


def adc_area_um2(table: str, bits, node_nm=32.0):
    b = np.asarray(bits, dtype=float)
    if table == "murmann":
        a = _loginterp(np.maximum(b, 4.0), MURMANN_AREA_BITS, MURMANN_AREA_UM2)
        return a * (np.asarray(node_nm, dtype=float) / MURMANN_NODE_NM) ** 2
    if table == "isaac":
        return ISAAC_ADC_AREA_8B_UM2 * 2.0 ** (b - 8.0)
    if table == "neurosim":
        return _loginterp(b, NEUROSIM_AREA_BITS, NEUROSIM_AREA_UM2)
    if table == "mnsim":
        return _mnsim_pick(b, MNSIM_ADC_AREA_UM2)
    raise ValueError(f"adc.energy_table: expected one of {ADC_TABLES}, got {table!r}")


def _mnsim_pick(b, values):
    # cheapest-energy preset with >= bits; per distinct bit width keep the cheapest entry
    bits_u = np.unique(MNSIM_ADC_BITS)
    best_e = np.array([MNSIM_ADC_ENERGY_J[MNSIM_ADC_BITS == x].min() for x in bits_u])
    best_v = np.array([values[MNSIM_ADC_BITS == x][np.argmin(MNSIM_ADC_ENERGY_J[MNSIM_ADC_BITS == x])]
                       for x in bits_u])
    del best_e
    idx = np.clip(np.searchsorted(bits_u, b, side="left"), 0, len(bits_u) - 1)
    over = b > bits_u[-1]
    v = best_v[idx]
    return np.where(over, best_v[-1] * 2.0 ** (b - bits_u[-1]), v)


# --- DAC and row drive ----------------------------------------------------------------------------
DAC_1B_POWER_W = 3.9e-6  # ISAAC 1-bit DAC (MNSIM-2.0 DAC.py), at 1 GS/s; doubles per extra bit
DAC_1B_AREA_UM2 = 0.166  # ISAAC 1-bit DAC; doubles per extra bit
DAC_RATE_HZ = 1e9  # ISAAC DAC rate
DAC_NODE_NM = 32.0  # ISAAC node
# A b-bit DAC settles to within 1/2 LSB in (b + 1) ln2 time constants (Razavi, Principles of Data Conversion
# System Design, 1995, ch. 2): conversion time ~ (b + 1), normalised to ISAAC's 1-bit DAC at 1 GS/s.


def dac_time_s(bits):
    return (np.asarray(bits, dtype=float) + 1.0) / 2.0 / DAC_RATE_HZ


def dac_power_w(bits):
    return DAC_1B_POWER_W * 2.0 ** (np.asarray(bits, dtype=float) - 1)


def dac_energy_j(bits):
    return dac_power_w(bits) / DAC_RATE_HZ


def dac_area_um2(bits):
    return DAC_1B_AREA_UM2 * 2.0 ** (np.asarray(bits, dtype=float) - 1)


ROW_DRIVER_ENERGY_J = 10.5e-15  # NeuroSim row driver, 32 nm, 10-11 fJ per row activation
ROW_DRIVER_AREA_UM2 = 418.0 / 128  # NeuroSim: 418 um2 for 128 drivers, 32 nm
ROW_DRIVER_NODE_NM = 32.0  # NeuroSim node

# --- Cell read ------------------------------------------------------------------------------------
# Computed per cell read as V^2 * G_mean * t_read * ACTIVITY, G_mean = (1/R_on + 1/R_off) / 2, with
# ACTIVITY = 0.25: NeuroSim's 50% input x 50% weight density convention (NeuroSim V1.3 gives 0.44 fJ
# per cell read at 32 nm for comparison).
CELL_ACTIVITY = 0.25  # NeuroSim density convention (50% inputs x 50% weights)

# --- Digital periphery (Horowitz, ISSCC 2014, 45 nm) ------------------------------------------------
DIGITAL_NODE_NM = 45.0  # Horowitz ISSCC 2014 node
# ISAAC Table 6: 4 shift-and-add units per IMA, 0.2 mW, serving 8 ADCs at 1.2 GS/s -> 0.021 pJ per partial
# sum at 32 nm (derivation as in hwcomponents-library's IsaacShiftAdd); node SHIFT_ADD_NODE_NM.
SHIFT_ADD_ENERGY_J = 0.2e-3 / (8 * 1.2e9)
DIGITAL_OP_ENERGY_J = 0.03e-12  # Horowitz 2014: 8-bit int add 0.03 pJ (activation/pooling compare/add)
SRAM_BIT_ENERGY_J = 10e-12 / 64  # Horowitz 2014: 64-bit read of an 8 KB SRAM 10 pJ
# ISAAC Table 6 router (42 mW shared by 4 tiles, 256-bit flits at the eDRAM bandwidth): 20.74 pJ per 256-bit
# transfer at 32 nm (hwcomponents-library IsaacRouter derivation) -> 0.081 pJ per bit per router hop.
INTERCONNECT_BIT_ENERGY_J = 20.74e-12 / 256
INTERCONNECT_NODE_NM = 32.0  # ISAAC node
# Static power of a tile's SRAM buffer: ITRS 2013 PIDS low-standby-power transistors, Ioff ~ 10 pA/um at
# 45-22 nm, about 2 um of leaking width per 6T cell (with its share of periphery) -> 20 pW per bit at 1 V.
# Ioff per um rises as the node shrinks while the width per cell falls, so the figure is held node-independent
# (a larger node does not leak more). ADCs/DACs are SAR / switched: no static bias counted.
LEAKAGE_W_PER_BIT = 20e-12
DIGITAL_LANES_PER_TILE = 64  # crossnas assumption: parallel digital units (act/pool/add) per tile

# --- Area -----------------------------------------------------------------------------------------
SRAM_UM2_PER_KB = 1600.0  # CACTI-style 45 nm SRAM ~0.1 mm2 per 64 KB (ISAAC Table 6: 64 KB eDRAM 0.083 mm2)
SHIFT_ADD_AREA_UM2 = 60.0  # ISAAC Table 6: shift-and-add 60 um2 per IMA unit (32 nm)
SHIFT_ADD_NODE_NM = 32.0  # ISAAC node

# --- Wires and read timing ------------------------------------------------------------------------
# A line of n cell segments (wire_r_ohm, wire_c_f each) driven through a cell's on-resistance: Elmore delay
# of a distributed RC line with a source resistance, tau = (R_src + R_line / 2) C_line (Rabaey, Digital
# Integrated Circuits, 2nd ed., ch. 4). Settling to 1/2 LSB of a b-bit ADC takes (b + 1) ln2 tau (Razavi
# 1995, ch. 2). The word line is driven by a strong driver: its 50% delay is 0.38 R C (Rabaey ch. 4).
WORDLINE_ELMORE = 0.38


def scale_energy(e, from_nm, to_nm):
    return e * np.asarray(to_nm, dtype=float) / from_nm


def scale_area(a, from_nm, to_nm):
    return a * (np.asarray(to_nm, dtype=float) / from_nm) ** 2
