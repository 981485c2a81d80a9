"""Per-tile ADC ranges, the kernel choice, and the read effects (IR drop, read noise, ADC offset/INL)."""

import pytest
import torch
from torch import nn

from crossnas.analog import PIMLinear, evaluate_pim, set_chip, to_pim
from crossnas.analog.kernels import probe, resolve_kernel
from crossnas.errors import CrossnasError
from crossnas.hardware.config import HardwareConfig, load_hardware

torch.set_num_threads(1)


def hw(**kw) -> HardwareConfig:
    base = {"device.bits_per_cell": 2, "dac.bits": 1, "quant.weight_bits": 8, "quant.act_bits": 6,
            "crossbar.row_packing": "im2col", "device.r_off_ohm": None}
    base.update(kw)
    return HardwareConfig().with_overrides(base)


def _layer(K=256, O=32, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(K, O).double()


def _x(K=256, n=16, seed=1):
    return torch.rand(n, K, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


READ = ["ir_drop", "read_noise", "adc_offset", "adc_inl"]


def _err(h, K=256, seed=0) -> float:
    """Mean |output with the read effects - output without them| of one linear layer on fixed inputs."""
    x = _x(K)
    p = PIMLinear(_layer(K), "l", h, 8, 6, False, 1.0, seed=seed)
    q = PIMLinear(_layer(K), "l", h.with_overrides({"device.effects_off": READ}), 8, 6, False, 1.0, seed=seed)
    q.force_sliced = True
    return float((p(x) - q(x)).abs().mean())


# ------------------------------------------------------------------------------------------------ ADC range
def test_tile_range_keeps_short_last_tile_alive():
    """288 rows on 256-row arrays: the 32-row tile gets its own range instead of one 8x too wide."""
    lay = _layer(288, 16)
    calib = [torch.rand(64, 288, generator=torch.Generator().manual_seed(2), dtype=torch.float64)]
    x = _x(288, 64, seed=3)
    frac = {}
    for scope in ("layer", "tile"):
        h = hw(**{"adc.bits": 3, "crossbar.rows": 256, "adc.range_scope": scope})
        pm = to_pim(nn.Sequential(lay), h, calib_loader=calib, device="cpu")
        core = pm[0].cores[0]
        p = core.plan
        (a0, a1) = p.bounds[1]
        planes = p.planes(pm[0].quant_input(x)).permute(1, 0, 2)[a0:a1].reshape(a1 - a0, -1)
        ps = core.tiles[1].double() @ planes.double()
        codes = torch.round(ps / core.step()[1])
        frac[scope] = float(((codes == 0) & (ps != 0)).sum() / (ps != 0).sum())
        if scope == "tile":
            assert core.fs_cal[1] < core.fs_cal[0] / 2
        else:
            assert core.fs_cal[0] == core.fs_cal[1]
    assert frac["layer"] > 0.9 and frac["tile"] < 0.6, frac  # a 3-bit signed ADC: codes -3..3


# ------------------------------------------------------------------------------------------------ kernels
def test_probe_is_cached_and_picks_a_kernel():
    a = probe()
    assert probe() is a and a["choice"] in ("int8", "float32")
    assert a["choice"] == min(a["seconds"], key=a["seconds"].get)
    assert resolve_kernel("auto", torch.device("cpu")) == a["choice"]
    with pytest.raises(CrossnasError, match="analog.kernel"):
        resolve_kernel("int4", torch.device("cpu"))


# ------------------------------------------------------------------------------------------------ effects
def test_effects_off_is_bit_exact_with_realistic_preset():
    h = load_hardware("rram-realistic", {"adc.bits": 16, "quant.weight_bits": 8, "quant.act_bits": 6,
                                         "device.effects_off": ["ir_drop", "read_noise", "adc_offset",
                                                                "adc_inl", "variation"]})
    p = PIMLinear(_layer(), "l", h, 8, 6, False, 1.0)
    p.force_sliced = True
    x = _x()
    y = p(x)
    p.mode = "digital"
    assert not p.device_effects and torch.equal(y, p(x))


@pytest.mark.parametrize("key,values,extra", [
    ("crossbar.wire_r_ohm", [0.1, 0.4, 1.6], {"device.ir_drop": True}),
    ("device.r_on_ohm", [200e3, 50e3, 12e3], {"device.ir_drop": True, "crossbar.wire_r_ohm": 0.5}),
    ("device.read_noise", [0.01, 0.05, 0.2], {}),
    ("device.read_noise_floor", [0.2, 1.0, 4.0], {}),
    ("adc.offset_lsb", [0.2, 0.6, 2.0], {}),
    ("adc.inl_lsb", [0.2, 0.6, 2.0], {}),
])
def test_error_grows_with_effect_parameter(key, values, extra):
    errs = [_err(hw(**{"adc.bits": 6, "adc.range": "full_scale", "crossbar.rows": 256, key: v, **extra}))
            for v in values]
    assert 0 < errs[0] < errs[1] < errs[2], errs


def test_ir_drop_error_grows_with_array_size():
    errs = [_err(hw(**{"adc.bits": 16, "crossbar.rows": r, "crossbar.cols": r, "device.ir_drop": True,
                       "crossbar.wire_r_ohm": 0.5})) for r in (32, 64, 128, 256)]
    assert errs[0] < errs[1] < errs[2] < errs[3], errs


def test_read_noise_seeded_per_chip_layer_and_batch():
    h = hw(**{"adc.bits": 16, "device.read_noise": 0.05})
    p = PIMLinear(_layer(), "l", h, 8, 6, False, 1.0, seed=7)
    x = _x()
    y1, y2 = p(x), p(x)
    assert not torch.equal(y1, y2)  # a fresh draw every batch
    p.set_chip(7)
    assert torch.equal(p(x), y1) and torch.equal(p(x), y2)  # a rerun is identical
    p.set_chip(8)
    assert not torch.equal(p(x), y1)  # chips differ


def test_fast_fidelity_models_each_effect():
    """fast: the same mean shift (ADC offset/INL, IR drop) and about the same spread (read noise)."""
    x = _x(256, 64)
    for over in ({"adc.offset_lsb": 1.0}, {"adc.inl_lsb": 2.0}, {"device.ir_drop": True,
                                                               "crossbar.wire_r_ohm": 2.0},
                 {"device.read_noise": 0.1}):
        h = hw(**{"adc.bits": 6, "crossbar.rows": 128, **over})
        calib = [_x(256, 64, seed=5)]
        net = nn.Sequential(_layer())
        ex, fa = (to_pim(net, h, calib_loader=calib, device="cpu", fidelity=f) for f in ("exact", "fast"))
        ex[0].mode = "digital"
        d = ex[0](x)
        ex[0].mode = "analog"
        e_ex, e_fa = ex[0](x) - d, fa[0](x) - d
        if "device.read_noise" in over:
            r = float(e_fa.std() / e_ex.std())
            assert 0.6 < r < 1.6, (over, r)
        else:
            c = torch.corrcoef(torch.stack([e_ex.mean(0), e_fa.mean(0)]))[0, 1]
            assert c > 0.8, (over, float(c))


@pytest.mark.parametrize("over,msg", [
    ({"device.read_noise": -0.1}, "device.read_noise"),
    ({"device.read_noise": float("inf")}, "device.read_noise"),
    ({"crossbar.wire_r_ohm": -1.0}, "crossbar.wire_r_ohm"),
    ({"adc.offset_lsb": float("nan")}, "adc.offset_lsb"),
    ({"adc.inl_lsb": -1}, "adc.inl_lsb"),
    ({"device.effects_off": ["ir_dorp"]}, r"device.effects_off: .*unknown effect 'ir_dorp'"),
])
def test_bad_effect_settings_name_the_field(over, msg):
    with pytest.raises(CrossnasError, match=msg):
        load_hardware("rram-realistic", over)


def test_cli_bad_effect_exits_2(capsys):
    from crossnas.cli import main

    rc = main(["simulate", "--model", "x", "--weights", "w", "--hardware", "rram-realistic",
               "--set", "device.read_noise=-1", "--data", "digits"])
    err = capsys.readouterr().err
    assert rc == 2 and "device.read_noise" in err and len(err.strip().splitlines()) == 1


def test_realistic_preset_runs_exact_and_fast():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 64, 3))
    data = [(torch.rand(8, 1, 8, 8), torch.randint(0, 3, (8,)))]
    h = load_hardware("rram-realistic", {"quant.weight_bits": 8, "quant.act_bits": 8})
    for fid in ("exact", "fast"):
        r = evaluate_pim(net, data, h, calib_loader=data, chips=2, fidelity=fid, device="cpu")
        assert 0 <= r.accuracy_pim <= 1
    pm = to_pim(net, h, calib_loader=data, device="cpu")
    y = pm(data[0][0])
    set_chip(pm, 0)
    assert torch.equal(pm(data[0][0]), y)
