"""How one matrix layer is cut onto crossbars: the rules shared by the cost model and the analog simulator.

All functions take NumPy arrays (or scalars) and broadcast, so the cost model scores many candidates
at once and the simulator asks the same questions for one layer. Conventions (docs/conventions.md):
- weights have `weight_bits` including the sign; a differential pair stores the magnitude
  (weight_bits - 1 bits) in a positive and a negative array; offset encoding stores weight_bits bits
  in one array (two's-complement shifted by 2^(b-1));
- slices = ceil(stored bits / cell bits): more cell bits never add crossbars;
- signed activations stream the sign as its own chunk after ceil((act_bits - 1) / dac_bits) magnitude
  chunks; unsigned activations take ceil(act_bits / dac_bits) chunks;
- im2col rows: K = C/g * kh * kw unrolled rows split every `rows`; kernel-aligned: each array holds
  whole kernels of floor(rows / (kh*kw)) input channels (MNSIM-2.0), so a tile spans
  floor(rows / kk) * kk rows.
"""

from __future__ import annotations

import numpy as np

from crossnas.errors import CrossnasError


def stored_weight_bits(weight_bits, signed_scheme: str):
    wb = np.asarray(weight_bits)
    return wb - 1 if signed_scheme == "differential" else wb


def weight_slices(weight_bits, cell_bits, signed_scheme: str):
    """Cell slices per weight (per array of a differential pair)."""
    return -(-stored_weight_bits(weight_bits, signed_scheme) // np.asarray(cell_bits))


def input_chunks(act_bits, dac_bits, act_signed):
    """Input cycles per activation: DAC-bit chunks of the magnitude, plus one sign chunk when signed."""
    ab, db, sg = np.asarray(act_bits), np.asarray(dac_bits), np.asarray(act_signed, dtype=bool)
    return np.where(sg, -(-(ab - 1) // db) + 1, -(-ab // db))


def rows_per_tile(rows, kernel_area, packing: str, *, layer: str = "layer"):
    """Unrolled rows one array takes of a layer (kernel-aligned keeps whole kernels)."""
    rows, kk = np.asarray(rows), np.asarray(kernel_area)
    if packing == "im2col":
        return np.broadcast_to(rows, np.broadcast(rows, kk).shape).copy()
    if packing != "kernel_aligned":
        raise CrossnasError(f"crossbar.row_packing: expected im2col or kernel_aligned, got {packing!r}")
    per = (rows // kk) * kk
    if np.any(per == 0):
        raise CrossnasError(
            f"{layer}: crossbar.rows={int(np.min(rows))} is smaller than one {int(np.max(kk))}-cell kernel "
            "under kernel_aligned packing (use more rows or row_packing=im2col)")
    return per


def row_tiles(rows_needed, rows_per_tile_):
    return -(-np.asarray(rows_needed) // np.asarray(rows_per_tile_))


def row_tile_bounds(rows_needed: int, rows_per_tile_: int) -> list[tuple[int, int]]:
    """[start, stop) row ranges of each tile in im2col order (channel-major, as weight.reshape(O, -1))."""
    n = int(row_tiles(rows_needed, rows_per_tile_))
    return [(t * int(rows_per_tile_), min(rows_needed, (t + 1) * int(rows_per_tile_))) for t in range(n)]


def mappable(module) -> bool:
    """Whether a module is a matrix layer on crossbars, for the cost model and the simulator alike.

    Conv1d, Conv2d (grouped and depthwise ones as one set of tiles per group) and Linear map; everything
    else runs in digital periphery or, when neither side knows it, is listed as not costed, never skipped.
    """
    from torch import nn

    return isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear))
