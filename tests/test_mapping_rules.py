"""The mapping rules shared by the cost model and the simulator, by hand."""

import numpy as np
import pytest

from crossnas.cost.mapping_rules import input_chunks, row_tile_bounds, rows_per_tile, weight_slices
from crossnas.errors import CrossnasError


def test_slices_by_scheme():
    assert weight_slices(9, 1, "differential") == 8  # sign not stored
    assert weight_slices(9, 1, "offset") == 9
    assert weight_slices(8, 2, "offset") == 4
    assert weight_slices(8, 3, "differential") == 3  # ceil(7 / 3)


def test_more_cell_bits_never_more_slices():
    wb = np.arange(2, 17)
    for scheme in ("differential", "offset"):
        s = np.stack([weight_slices(wb, c, scheme) for c in range(1, 9)])
        assert np.all(np.diff(s, axis=0) <= 0)


def test_chunks_sign_is_its_own_chunk():
    assert input_chunks(8, 1, False) == 8
    assert input_chunks(8, 2, False) == 4
    assert input_chunks(9, 1, True) == 9  # 8 magnitude chunks + sign
    assert input_chunks(9, 2, True) == 5
    dac = np.arange(1, 9)
    assert np.all(np.diff(input_chunks(8, dac, False)) <= 0)


def test_row_packing():
    assert rows_per_tile(256, 9, "kernel_aligned") == 252
    assert rows_per_tile(256, 9, "im2col") == 256
    assert row_tile_bounds(600, 252) == [(0, 252), (252, 504), (504, 600)]
    with pytest.raises(CrossnasError, match="smaller than one"):
        rows_per_tile(8, 9, "kernel_aligned")
