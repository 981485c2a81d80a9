"""Data movement: layers packed onto tiles in execution order; what crosses the interconnect, counted once.

Matrix layers take consecutive crossbars in execution order (tile = crossbar index // crossbars per tile).
Element-wise, pooling and add layers run in the digital units of the tile that holds the preceding matrix
layer's last crossbars. A layer's input activation crosses the interconnect when its producer's tile is not
one of the consumer's tiles (the share of the consumer's tiles that are remote, one hop each), and a layer
spread over k tiles gathers (k - 1) / k of its outputs. The network input comes from off the tiles (it
always crosses). Every activation is moved once, by its consumer; a skip connection's second operand is not
counted (it is an approximation for residual networks).
"""

from __future__ import annotations

import numpy as np


def tile_ranges(xbars, mat, xpt):
    """(first, last) tile index of every layer, (N, L): execution-order packing, digital layers in place."""
    used = np.where(mat, xbars, 0)
    end = np.cumsum(used, axis=1)
    start = end - used
    first = start // xpt
    last = np.maximum(end - 1, start) // xpt
    # digital layers sit on the last tile of the matrix layer before them (tile 0 before any)
    idx = np.arange(mat.shape[1])[None, :]
    src = np.maximum.accumulate(np.where(mat, idx, -1), axis=1)
    if src.shape[0] == 1:  # one network for the whole batch: index columns directly
        prev_last = last[:, np.maximum(src[0], 0)] * (src >= 0)
    else:
        prev_last = np.where(src >= 0, np.take_along_axis(last, np.maximum(src, 0), axis=1), 0)
    return np.where(mat, first, prev_last), np.where(mat, last, prev_last)


def noc_bits(in_bits, out_bits, first, last, mat):
    """Bits each layer moves over the interconnect (N, L): remote share of its input + output gather."""
    producer = np.empty_like(last)
    producer[:, 0] = -1  # the network input comes from off the tiles
    producer[:, 1:] = last[:, :-1]
    span = last - first + 1
    local = (producer >= first) & (producer <= last)
    return np.where(mat, (in_bits * (span - local) + out_bits * (span - 1)) / span, 0.0)
