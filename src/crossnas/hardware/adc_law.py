"""How an ADC's energy, area and conversion time change with its resolution (`adc.law`).

A preset's (or a user's) `adc.power_w`, `adc.area_um2` and `adc.sample_rate_hz` hold at `adc.reference_bits`;
every other resolution (global, per layer, or from a search gene) scales from there by these laws:

- energy per conversion. `walden`: E ~ 2^max(b, corner_bits): flat below the corner (technology-limited:
  comparator and logic energy that does not shrink with fewer bits), then constant Walden figure of merit
  P / (fs 2^ENOB) above it, i.e. 2x per bit (Walden, IEEE JSAC 17(4) 1999). `murmann` adds the thermal-noise
  region of the Murmann ADC survey (B. Murmann, "ADC Performance Survey 1997-2024"; "The race for the extra
  decibel", IEEE SSC Magazine 2015): above `thermal_bits` the Schreier figure of merit is constant, 4x per
  bit.
  Defaults corner 7, thermal 9 reproduce the survey fit crossnas already uses (CiMLoop, arXiv 2404.06553,
  32 nm: 0.74 / 0.85 / 1.37 / 11.2 pJ at 4 / 6 / 8 / 10 bits, i.e. x1.15, x1.85, x15 over 4 bits; the law
  gives x1, x2, x16).
- area: A ~ 1 + 2^(b - area_corner_bits): a fixed comparator + SAR logic part plus a binary-weighted capacitor
  DAC of 2^b unit capacitors (Saberi et al., IEEE TCAS-I 58(8) 2011, as used to scale ISAAC's 8-bit SAR in
  hwcomponents-library: 361 / 1,200 / 3,002 um2 at 4 / 8 / 10 bits; corner 6.45 gives x3.3 for 4 -> 8 bits).
- conversion time: a SAR ADC decides one bit per comparator cycle plus sampling and reset, t ~ (b + 2), as in
  MNSIM-2.0's ADC.py (latency = (bits + 2) / rate); `sample_rate_hz` is the rate at `reference_bits`.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

LAW_KINDS = ("walden", "murmann")
SAR_OVERHEAD_CYCLES = 2.0  # sampling + reset cycles of a SAR conversion (MNSIM-2.0 ADC.py: bits + 2)


class ADCLaw(BaseModel):
    """Resolution scaling of an ADC given at `adc.reference_bits` (see crossnas.hardware.adc_law)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_attribute_docstrings=True)

    kind: Literal["walden", "murmann"] = "murmann"
    """walden: flat below corner_bits, 2x energy per bit above; murmann: 4x per bit above thermal_bits too."""
    corner_bits: float = Field(7.0, ge=1, le=16)
    """Resolution below which energy per conversion is flat (technology-limited)."""
    thermal_bits: float = Field(9.0, ge=1, le=16)
    """murmann: resolution above which thermal noise sets the energy (4x per bit)."""
    area_corner_bits: float = Field(6.45, ge=1, le=16)
    """Resolution at which the capacitor array equals the fixed comparator/logic area."""

    @model_validator(mode="after")
    def _order(self):
        if self.kind == "murmann" and self.thermal_bits < self.corner_bits:
            raise ValueError(f"thermal_bits ({self.thermal_bits}) must be >= corner_bits "
                             f"({self.corner_bits})")
        return self


def energy_factor(bits, kind, corner, thermal):
    """Relative energy per conversion at `bits` (arrays broadcast; kind 0 walden, 1 murmann)."""
    b = np.asarray(bits, dtype=float)
    e = np.exp2(np.maximum(b, corner))
    return e * np.where(np.asarray(kind) == 1, np.exp2(np.maximum(b - thermal, 0.0)), 1.0)


def area_factor(bits, area_corner):
    return 1.0 + np.exp2(np.asarray(bits, dtype=float) - area_corner)


def time_factor(bits):
    return np.asarray(bits, dtype=float) + SAR_OVERHEAD_CYCLES
