"""Vectorised PIM cost model: N (network, hardware) candidates scored at once with NumPy.

A network is compiled once into a `LayerTable` (per-layer arrays, cached per network); configs become a
`HardwareArrays` (one array per field, shape (N,)). Batches are (N, L) arrays padded to the longest
network; a single evaluation runs through the same code with N = 1. Conventions: docs/cost-model.md.
"""

from __future__ import annotations

import warnings

import numpy as np

from crossnas.cost import mapping_rules as mr
from crossnas.cost import movement, timing
from crossnas.cost.compile import HardwareArrays, LayerTable
from crossnas.errors import CrossnasError
from crossnas.hardware import adc_law
from crossnas.hardware import tables as T

COMPONENTS = ("array", "dac", "adc", "shift_add", "digital", "buffer", "interconnect", "leakage")
TOTAL_KEYS = ("latency_s", "latency_sequential_s", "energy_j", "area_mm2", "edp_js", "crossbars", "tiles",
              "tops_per_w")


def _stack(tables: list[LayerTable], hw: HardwareArrays) -> dict[str, np.ndarray]:
    """(N, L) arrays; a single shared table broadcasts as (1, L)."""
    n = len(hw)
    if len(tables) == 1:
        t = tables[0]
        out = {k: getattr(t, k)[None, :] for k in ("kind", "rows_needed", "kernel_area", "out_channels",
                                                   "outputs", "in_elements", "out_elements", "digital_ops",
                                                   "macs", "weight_bits", "act_bits", "act_signed")}
        out["valid"] = np.ones((1, len(t)), dtype=bool)
        if hw.data["per_layer"].any():
            out["adc_bits"] = np.stack([t.adc_bits(h) for h in hw.configs])
        else:  # (N, 1): every bit-dependent figure is then computed once per candidate, not per layer
            out["adc_bits"] = hw.adc_bits[:, None]
        return out
    if len(tables) != n:
        raise CrossnasError(f"evaluate_batch: {len(tables)} layer tables for {n} hardware configs")
    lmax = max(len(t) for t in tables)
    out = {}
    for k in ("kind", "rows_needed", "kernel_area", "out_channels", "outputs", "in_elements",
              "out_elements", "digital_ops", "macs", "weight_bits", "act_bits", "act_signed"):
        pad = {"kind": 2, "kernel_area": 1, "act_signed": False}.get(k, 0)
        a = np.full((n, lmax), pad, dtype=getattr(tables[0], k).dtype)
        for j, t in enumerate(tables):
            a[j, :len(t)] = getattr(t, k)
        out[k] = a
    out["valid"] = np.zeros((n, lmax), dtype=bool)
    out["adc_bits"] = np.ones((n, lmax), dtype=np.int64)
    for j, t in enumerate(tables):
        out["valid"][j, :len(t)] = True
        out["adc_bits"][j, :len(t)] = t.adc_bits(hw.configs[j])
    return out


def _cdiv(a, b):
    return -(-a // b)


def compute(tables: list[LayerTable], hw: HardwareArrays, *, per_layer: bool = False) -> dict:
    """Core model. Returns totals as (N,) arrays, plus (N, L) per-layer arrays when `per_layer`."""
    L = _stack(tables, hw)
    c = lambda k: hw.data[k][:, None]  # noqa: E731  (N, 1)
    valid = L["valid"]
    mat = (L["kind"] <= 1) & valid
    wb = np.where(L["weight_bits"] > 0, L["weight_bits"], c("weight_bits"))
    ab = np.where(L["act_bits"] > 0, L["act_bits"], c("act_bits"))
    if np.any(mat & (c("cell_bits") > wb)):
        raise CrossnasError("device.bits_per_cell exceeds a layer's weight bits")
    diff = c("differential")
    slices = np.where(diff, mr.weight_slices(wb, c("cell_bits"), "differential"),
                      mr.weight_slices(wb, c("cell_bits"), "offset"))
    slices = np.maximum(slices, 1)
    chunks = mr.input_chunks(ab, c("dac_bits"), L["act_signed"])
    rows, cols = c("rows"), c("cols")
    shape = (len(hw), valid.shape[1])
    rn = np.broadcast_to(np.maximum(L["rows_needed"], 1), shape)
    kk = np.broadcast_to(L["kernel_area"], rn.shape)
    rpt = np.broadcast_to(mr.rows_per_tile(rows, kk, "im2col"), rn.shape).copy()
    ka = np.broadcast_to(c("kernel_aligned"), rn.shape) & mat
    if ka.any():
        rb = np.broadcast_to(rows, rn.shape)
        rpt[ka] = mr.rows_per_tile(rb[ka], kk[ka], "kernel_aligned")
    rt = mr.row_tiles(rn, rpt)
    pc = c("per_crossbar")
    oc = np.maximum(L["out_channels"], 1)
    ct = np.where(pc, _cdiv(oc, cols), _cdiv(oc * slices, cols))
    logical = rt * ct * np.where(pc, slices, 1)
    pairs = np.where(diff, 2, 1)
    base_xbars = np.where(mat, logical * pairs, 0)
    bits = L["adc_bits"]

    # one array step: drive a row group (DAC), settle the bit lines, convert the column groups in turn
    rows_used = np.minimum(rn, rpt)
    cols_used = np.where(pc, np.minimum(oc, cols), np.minimum(oc * slices, cols))
    dacs = _cdiv(rows, c("rows_per_dac"))
    adcs = _cdiv(cols, c("cols_per_adc"))
    row_groups = _cdiv(rows_used, dacs)
    col_groups = _cdiv(cols_used, adcs)
    cycles = chunks * row_groups * col_groups
    t_read = timing.read_time_s(c("t_read"), rows, cols, c("wire_r"), c("wire_c"), c("r_on"), bits)
    t_adc = _adc_time(hw, bits)
    t_step = T.dac_time_s(c("dac_bits")) + t_read + col_groups * t_adc
    conv_per_col = np.where(diff & c("analog_sub"), 1, pairs)
    partial_sums = rt * slices * conv_per_col * row_groups  # per output element per chunk
    adder_depth = np.ceil(np.log2(np.maximum(partial_sums * chunks, 1))) + 1
    outputs = L["outputs"]
    t_pos = np.where(mat, chunks * row_groups * t_step + adder_depth / c("clock"), 0.0)
    lanes = T.DIGITAL_LANES_PER_TILE
    t_dig = np.where(valid & ~mat, L["digital_ops"] / (c("clock") * lanes), 0.0)

    # duplication (balance): copies of slow matrix layers, up to max_dup, aiming at the median stage time
    stage1 = np.where(mat, outputs * t_pos, 0.0)
    dup = np.ones_like(base_xbars)
    bal = hw.data["balance"]
    if bal.any():
        st = np.where(mat, stage1, np.nan)
        with warnings.catch_warnings():  # a network without matrix layers has no median
            warnings.simplefilter("ignore", RuntimeWarning)
            target = np.nanmedian(st, axis=1, keepdims=True)
        want = np.ceil(np.where(mat, stage1 / np.maximum(target, 1e-30), 1.0)).astype(np.int64)
        want = np.minimum(np.clip(want, 1, c("max_dup")), np.maximum(outputs, 1))
        dup = np.where(bal[:, None] & mat, want, 1)
    xbars = base_xbars * dup

    # data movement, counted once: buffer traffic in the tile, interconnect when tiles differ (movement.py)
    xpt = hw.data["xbars_per_tile"]
    first, last = movement.tile_ranges(xbars, mat, xpt[:, None])
    kind = L["kind"]
    in_bits = L["in_elements"] * ab
    out_bits = L["out_elements"] * ab
    buf_bits = np.where(mat, outputs * rn * ab + out_bits,  # im2col window into the input register + write
                        np.where(kind == 2, in_bits + out_bits,  # pooling reads its input, writes its output
                                 np.where(kind == 4, 2 * out_bits + out_bits, 0)))  # add: 2 reads + write
    buf_bits = np.where(valid, buf_bits, 0)  # element-wise activations are fused into the producer's write
    noc = movement.noc_bits(in_bits, out_bits, first, last, mat)
    t_compute = np.where(mat, _cdiv(outputs, dup) * t_pos, t_dig)
    stage = np.maximum(np.maximum(t_compute, noc / c("inter_bps")), buf_bits / c("intra_bps"))
    lat_seq = stage.sum(1)
    per_out = np.where(mat, t_pos, t_dig / np.maximum(L["out_elements"], 1))
    lat_pipe = np.minimum(stage.max(1) + per_out.sum(1), lat_seq)

    # energy (dynamic; independent of duplication)
    node = c("node")
    g_mean = 0.5 * (1.0 / c("r_on") + 1.0 / c("r_off"))
    e_cell = c("v_read") ** 2 * g_mean * t_read * T.CELL_ACTIVITY
    arrays_per_rowtile = ct * np.where(pc, slices, 1) * pairs
    row_drives = np.where(mat, outputs * chunks * rn * arrays_per_rowtile, 0)
    cells = np.where(mat, outputs * chunks * rn * oc * slices * pairs, 0)
    conversions = np.where(mat, outputs * chunks * rt * row_groups * oc * slices * conv_per_col, 0)
    # a DAC holds its row for the drive + read; the row driver charges the word line once per activation
    e_row = T.dac_power_w(c("dac_bits")) * (T.dac_time_s(c("dac_bits")) + t_read) + T.scale_energy(
        T.ROW_DRIVER_ENERGY_J, T.ROW_DRIVER_NODE_NM, node)
    e_adc = _adc_energy(hw, bits)
    e = {
        "array": cells * e_cell,
        "dac": row_drives * e_row,
        "adc": conversions * e_adc,
        "shift_add": np.where(mat, outputs * oc * partial_sums * chunks, 0)
        * T.scale_energy(T.SHIFT_ADD_ENERGY_J, T.SHIFT_ADD_NODE_NM, node),
        "digital": L["digital_ops"] * T.scale_energy(T.DIGITAL_OP_ENERGY_J, T.DIGITAL_NODE_NM, node),
        "buffer": buf_bits * T.scale_energy(T.SRAM_BIT_ENERGY_J, T.DIGITAL_NODE_NM, node),
        "interconnect": noc * T.scale_energy(T.INTERCONNECT_BIT_ENERGY_J, T.INTERCONNECT_NODE_NM, node),
    }

    # area: each layer's arrays carry ADCs of that layer's bits; unused slots of the last tile the global bits
    used = xbars.sum(1)
    tiles_need = np.maximum(_cdiv(used, xpt), 1)
    fixed = hw.data["tiles_fixed"]
    if np.any((fixed > 0) & (fixed < tiles_need)):
        bad = np.flatnonzero((fixed > 0) & (fixed < tiles_need))
        warnings.warn(f"system.tiles too small for {len(bad)} candidate(s): need {int(tiles_need[bad[0]])}, "
                      f"have {int(fixed[bad[0]])}; the chip is grown to fit for costing", stacklevel=3)
    tiles = np.where(fixed > 0, np.maximum(fixed, tiles_need), tiles_need)
    a_array = c("rows") * c("cols") * c("cell_area")
    n_adc_per_xbar = adcs / np.where(diff & c("analog_sub"), 2, 1)
    a_dac = dacs * T.dac_area_um2(c("dac_bits"))
    a_periph = rows * T.scale_area(T.ROW_DRIVER_AREA_UM2, T.ROW_DRIVER_NODE_NM, node) + \
        T.scale_area(T.SHIFT_ADD_AREA_UM2, T.SHIFT_ADD_NODE_NM, node)
    a_fixed = a_array + a_dac + a_periph  # (N,1) um2 per array slot, without its ADCs
    a_xbar_l = a_fixed + n_adc_per_xbar * _adc_area(hw, bits)  # (N, L)
    a_xbar_g = a_fixed + n_adc_per_xbar * _adc_area(hw, hw.adc_bits[:, None])  # (N, 1)
    a_buffer_tile = c("buffer_kb") * T.scale_area(T.SRAM_UM2_PER_KB, T.DIGITAL_NODE_NM, node)
    spare = tiles * xpt - used
    area_um2 = (xbars * a_xbar_l).sum(1) + spare * a_xbar_g[:, 0] + tiles * a_buffer_tile[:, 0]
    area_mm2 = area_um2 * 1e-6
    leak_w = tiles * hw.data["buffer_kb"] * 8192 * T.LEAKAGE_W_PER_BIT
    e_leak_total = leak_w * lat_pipe
    dyn = sum(e.values())
    energy = dyn.sum(1) + e_leak_total
    macs = L["macs"].sum(1) if L["macs"].shape[0] > 1 else np.full(len(hw), L["macs"].sum())
    totals = {
        "latency_s": lat_pipe, "latency_sequential_s": lat_seq, "energy_j": energy, "area_mm2": area_mm2,
        "edp_js": energy * lat_pipe, "crossbars": used, "tiles": tiles,
        "tops_per_w": 2.0 * macs / energy / 1e12,
    }
    if not per_layer:
        return {"totals": totals}
    e["leakage"] = leak_w[:, None] * stage / np.maximum(lat_seq[:, None], 1e-30) * lat_pipe[:, None]
    tile_share = xbars / xpt[:, None]
    layers = {
        "crossbars": xbars, "slices": slices, "chunks": chunks, "row_tiles": np.where(mat, rt, 0),
        "col_tiles": np.where(mat, ct, 0), "rows_per_tile": np.where(mat, rpt, 0), "duplication": dup,
        "pes": _cdiv(xbars, hw.data["xbars_per_pe"][:, None]), "tiles": tile_share,
        "utilisation": np.where(mat, L["rows_needed"] * oc * slices * pairs / np.maximum(
            base_xbars * rows * cols, 1), 0.0),
        "cycles_per_output": np.where(mat, cycles, 0), "latency_s": stage,
        "energy": e, "area_mm2": (xbars * a_xbar_l + tile_share * a_buffer_tile) * 1e-6,
        "adc_bits": np.where(mat, bits, 0), "valid": valid, "is_matrix": mat,
        "macs": np.broadcast_to(L["macs"], valid.shape),
        "read_time_s": np.where(mat, np.broadcast_to(t_read, shape), 0.0),
        "noc_bits": noc, "first_tile": first, "last_tile": last,
    }
    return {"totals": totals, "layers": layers}


def _law(hw: HardwareArrays):
    d = hw.data
    return d["law_kind"][:, None], d["law_corner"][:, None], d["law_thermal"][:, None]


def _table_values(hw: HardwareArrays, bits, fn):
    """(N, L) values of the configured `energy_table` at `bits`."""
    out = np.empty(bits.shape, dtype=float)
    tab = np.broadcast_to(hw.data["adc_table"][:, None], bits.shape)
    node = np.broadcast_to(hw.data["node"][:, None], bits.shape)
    for i, name in enumerate(T.ADC_TABLES):
        m = tab == i
        if m.any():
            out[m] = fn(name, bits[m], node[m])
    return out


def _adc_energy(hw: HardwareArrays, bits):
    """(N, L) energy per conversion: power / rate at reference bits scaled by `adc.law`, else the table."""
    if np.isnan(hw.data["adc_power"]).all():
        return _table_values(hw, bits, T.adc_energy_j)
    kind, corner, thermal = _law(hw)
    ref = hw.data["adc_ref_bits"][:, None]
    law = adc_law.energy_factor
    scale = law(bits, kind, corner, thermal) / law(ref, kind, corner, thermal)
    explicit = (hw.data["adc_power"] / hw.data["adc_rate"])[:, None] * scale
    if not np.isnan(hw.data["adc_power"]).any():
        return explicit
    return np.where(np.isnan(explicit), _table_values(hw, bits, T.adc_energy_j), explicit)


def _adc_area(hw: HardwareArrays, bits):
    """(N, L) or (N, 1) area of one ADC: area at reference bits scaled by `adc.law`, else the table."""
    ac = hw.data["law_area_corner"][:, None]
    ref = hw.data["adc_ref_bits"][:, None]
    explicit = hw.data["adc_area"][:, None] * adc_law.area_factor(bits, ac) / adc_law.area_factor(ref, ac)
    if not np.isnan(hw.data["adc_area"]).any():
        return explicit
    table = _table_values(hw, np.broadcast_to(bits, explicit.shape), T.adc_area_um2)
    return np.where(np.isnan(explicit), table, explicit)


def _adc_time(hw: HardwareArrays, bits):
    """(N, L) conversion time: 1 / sample rate at reference bits, scaled by the SAR (b + 2) cycles."""
    ref = hw.data["adc_ref_bits"][:, None]
    return adc_law.time_factor(bits) / adc_law.time_factor(ref) / hw.data["adc_rate"][:, None]
