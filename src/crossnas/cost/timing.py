"""Read and conversion times of one array step: bit-line RC from the wire fields, DAC and ADC times.

One array step = drive a row group (DAC), let the bit lines settle to the ADC's resolution, then convert the
column groups one after another (columns sharing an ADC are serialised; sample-and-hold keeps the read).
Sources next to the constants in crossnas.hardware.tables and crossnas.hardware.adc_law.
"""

from __future__ import annotations

import math

import numpy as np

from crossnas.hardware import tables as T


def read_time_s(t_sense, rows, cols, wire_r, wire_c, r_on, adc_bits):
    """Sense time + word-line Elmore delay + bit-line settling to 1/2 LSB of `adc_bits` (arrays broadcast).

    Bit line: `rows` segments charged through one LRS cell (the slowest, least-significant transition):
    tau = (R_on + R_line / 2) C_line, settled in (b + 1) ln2 tau."""
    c_bl, r_bl = rows * wire_c, rows * wire_r
    tau_bl = (r_on + 0.5 * r_bl) * c_bl
    t_wl = T.WORDLINE_ELMORE * (cols * wire_r) * (cols * wire_c)
    return t_sense + t_wl + (np.asarray(adc_bits, dtype=float) + 1.0) * math.log(2.0) * tau_bl
