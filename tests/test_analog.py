import math

import pytest
import torch
from torch import nn

from crossnas.analog import PIMConv2d, PIMLinear, evaluate_pim, fold_batchnorm, set_chip, set_mode, to_pim
from crossnas.errors import CrossnasError
from crossnas.hardware.config import HardwareConfig

torch.set_num_threads(1)


def hw(**kw) -> HardwareConfig:
    h = HardwareConfig()
    return h.with_overrides(kw) if kw else h


def lossless(**kw):
    base = {"adc.bits": 16, "device.bits_per_cell": 2, "dac.bits": 1, "crossbar.rows": 32,
            "quant.weight_bits": 8, "quant.act_bits": 6}
    base.update(kw)
    return hw(**base)


def _pair(layer, h, signed=False, wb=6, ab=5, rng=2.0):
    cls = PIMConv2d if isinstance(layer, nn.Conv2d) else PIMLinear
    return cls(layer.double(), "l", h, wb, ab, signed, rng, seed=1)


def _digital(p, x):
    p.mode = "digital"
    y = p(x)
    p.mode = "analog"
    return y


LAYERS = [
    lambda: nn.Conv2d(3, 5, 3, stride=2, padding=1),
    lambda: nn.Conv2d(7, 4, 3, stride=1, padding=2, bias=False),
    lambda: nn.Conv2d(2, 3, 1, stride=1),
    lambda: nn.Linear(70, 9),
]


@pytest.mark.parametrize("mk", LAYERS)
@pytest.mark.parametrize("scheme,sub", [("differential", "analog"), ("differential", "digital"),
                                        ("offset", "analog")])
@pytest.mark.parametrize("packing", ["im2col", "kernel_aligned"])
@pytest.mark.parametrize("placement", ["packed", "per_crossbar"])
@pytest.mark.parametrize("signed", [False, True])
def test_lossless_exact_equals_digital(mk, scheme, sub, packing, placement, signed):
    torch.manual_seed(0)
    h = lossless(**{"crossbar.signed": scheme, "crossbar.differential_subtract": sub,
                    "crossbar.row_packing": packing, "crossbar.slice_placement": placement})
    p = _pair(mk(), h, signed=signed)
    p.force_sliced = True
    shape = (3, p.layer.in_channels, 9, 8) if isinstance(p.layer, nn.Conv2d) else (4, 70)
    x = torch.randn(shape, dtype=torch.float64)
    if not signed:
        x = x.abs()
    assert p.T > 1 or isinstance(p.layer, nn.Conv2d)
    assert torch.equal(p(x), _digital(p, x))
    p.force_sliced = False  # fast path gives the same numbers
    assert torch.equal(p(x), _digital(p, x))


def _reference(p, xq):
    """Loop-by-loop reference: tile by tile, array by array, slice by slice, chunk by chunk."""
    pl = p.plan
    O = p.wq.shape[0]
    tiles = []
    step, qm = p._adc_step()
    signed_adc = p._adc_signed()
    for t, (a0, a1) in enumerate(pl.bounds):
        out = torch.zeros(xq.shape[0], O, dtype=torch.float64)  # integer ADC codes of this tile
        for c in range(p.C):
            if pl.act_signed and c == p.C - 1:
                xc, cw = (xq[:, a0:a1] < 0).double(), -(2.0 ** (pl.abits - 1))
            else:
                low = xq[:, a0:a1] + (xq[:, a0:a1] < 0).double() * 2 ** (pl.abits - 1) if pl.act_signed \
                    else xq[:, a0:a1]
                xc = torch.floor(low / 2 ** (pl.dac * c)) % (2**pl.dac)
                cw = 2.0 ** (pl.dac * c)
            for s in range(p.S):
                sums = [xc @ p.levels[a, s, :, a0:a1].t() for a in range(p.A)]
                if signed_adc:
                    sums = [sums[0] - sums[1]]
                    sg = [1.0]
                else:
                    sg = [1.0, -1.0][: p.A]
                for v, g in zip(sums, sg):
                    lo = -qm if signed_adc else 0
                    q = torch.clamp(torch.round(v / step[t]), lo, qm)
                    out += g * cw * 2.0 ** (pl.cell * s) * q
        tiles.append(out * step[t])
    out = torch.stack(tiles).sum(0)
    if pl.scheme == "offset":
        out -= 2.0 ** (pl.wbits - 1) * xq.sum(1, keepdim=True)
    return out


@pytest.mark.parametrize("scheme,sub", [("differential", "analog"), ("differential", "digital"),
                                        ("offset", "analog")])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("adc", [3, 5])
def test_lossy_adc_matches_loop_reference(scheme, sub, signed, adc):
    torch.manual_seed(1)
    h = lossless(**{"adc.bits": adc, "crossbar.signed": scheme, "crossbar.differential_subtract": sub,
                    "dac.bits": 2, "crossbar.row_packing": "im2col"})
    p = _pair(nn.Linear(50, 6), h, signed=signed)
    x = torch.randn(5, 50, dtype=torch.float64)
    xq = p.quant_input(x if signed else x.abs())
    got = p._int_matmul(xq)
    ref = _reference(p, xq)
    assert torch.equal(got, ref)
    assert not torch.equal(got, xq @ p.wq.t())


def test_lossy_adc_conv_matches_reference_via_unfold():
    torch.manual_seed(2)
    h = lossless(**{"adc.bits": 4, "crossbar.rows": 20})
    p = _pair(nn.Conv2d(3, 4, 3, padding=1, stride=2), h)
    x = torch.rand(2, 3, 7, 7, dtype=torch.float64)
    cols = torch.nn.functional.unfold(p.quant_input(x), 3, padding=1, stride=2)
    xq = cols.transpose(1, 2).reshape(-1, 27)
    assert torch.equal(p._int_matmul(xq), _reference(p, xq))


def test_stuck_at_rates_and_reproducibility():
    h = lossless(**{"device.stuck_off_rate": 0.05, "device.stuck_on_rate": 0.02})
    lay = nn.Linear(200, 100).double()
    a = PIMLinear(lay, "l", h, 8, 6, False, 1.0, seed=3)
    b = PIMLinear(lay, "l", h, 8, 6, False, 1.0, seed=3)
    c = PIMLinear(lay, "l", h, 8, 6, False, 1.0, seed=4)
    assert torch.equal(a.levels, b.levels) and not torch.equal(a.levels, c.levels)
    ideal = a._levels_ideal
    n = ideal.numel()
    off = (a.levels == 0) & (ideal != 0)
    on = (a.levels == 3) & (ideal != 3)
    changed = a.levels != ideal
    assert torch.equal(changed, off | on)  # only stuck cells change, to gmin or gmax
    # observable stuck-off among non-zero cells ~ rate * (#nonzero); binomial 5-sigma bounds
    nz = int((ideal != 0).sum())
    exp_off = 0.05 * nz
    assert abs(int(off.sum()) - exp_off) < 5 * math.sqrt(exp_off) + 1
    nmax = n - int((ideal == 3).sum())
    exp_on = 0.02 * nmax
    assert abs(int(on.sum()) - exp_on) < 5 * math.sqrt(exp_on) + 1


@pytest.mark.parametrize("model", ["gaussian", "lognormal"])
def test_variation_per_cell(model):
    h = lossless(**{"device.variation": 0.1, "device.variation_model": model, "device.r_off_ohm": None})
    lay = nn.Linear(64, 32).double()
    a = PIMLinear(lay, "l", h, 8, 6, False, 1.0, seed=5)
    ideal = a._levels_ideal
    assert torch.equal(a.levels[ideal == 0], ideal[ideal == 0])  # infinite ratio: zero cells stay zero
    rel = (a.levels[ideal > 0] / ideal[ideal > 0] - 1)
    assert 0.07 < float(rel.std()) < 0.13
    x = torch.rand(4, 64, dtype=torch.float64)
    set_mode(a, "analog")
    assert not torch.equal(a(x), _digital(a, x))
    a2 = PIMLinear(lay, "l", h, 8, 6, False, 1.0, seed=5)
    assert torch.equal(a(x), a2(x))


def test_pcm_noise_and_drift_run():
    h = lossless(**{"device.kind": "pcm", "device.pcm_noise": True, "device.drift_time_s": 3600.0})
    p = PIMLinear(nn.Linear(30, 5).double(), "l", h, 8, 6, False, 1.0, seed=0)
    assert torch.isfinite(p(torch.rand(3, 30, dtype=torch.float64))).all()
    assert (p.levels[p._levels_ideal == 3] < 3).float().mean() > 0.5  # drift lowers conductance


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.shortcut = nn.Sequential(nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.shortcut(x))
        return self.fc(x.flatten(1))


def _net():
    torch.manual_seed(0)
    n = Net()
    for bn in (n.bn1, n.shortcut[1]):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-1, 1)
    return n.eval()


def test_bn_folding_equivalence():
    n = _net()
    x = torch.randn(2, 1, 8, 8)
    ref = n(x)
    import copy

    f = fold_batchnorm(copy.deepcopy(n))
    assert isinstance(f.bn1, nn.Identity) and isinstance(f.shortcut[1], nn.Identity)
    assert torch.allclose(f(x), ref, atol=1e-5)


def _loader(n=2):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


def test_to_pim_and_evaluate():
    n = _net()
    h = hw(**{"adc.bits": 16, "device.bits_per_cell": 2, "quant.weight_bits": 8, "quant.act_bits": 8})
    pm = to_pim(n, h, calib_loader=_loader(), bits={"fc": (6, 6)}, device="cpu")
    assert isinstance(pm.conv1, PIMConv2d) and isinstance(pm.fc, PIMLinear)
    assert pm.conv1.plan.act_signed and not pm.fc.plan.act_signed
    assert pm.fc.plan.wbits == 6 and pm.conv1.plan.wbits == 8
    x = _loader()[0][0]
    assert torch.allclose(pm(x), n(x), atol=0.3)
    h2 = h.with_overrides({"adc.bits": 5, "adc.range": "calibrated", "device.variation": 0.05})
    r = evaluate_pim(n, _loader(), h2, calib_loader=_loader(), chips=3, device="cpu")
    assert len(r.per_chip) == 3 and 0 <= r.accuracy_pim <= 1
    rf = evaluate_pim(n, _loader(), h2, calib_loader=_loader(), chips=2, fidelity="fast", device="cpu")
    assert rf.accuracy_digital == r.accuracy_digital
    pm2 = to_pim(n, h2, calib_loader=_loader(), device="cpu")
    assert pm2.conv1.fs_cal.item() > 0
    y1 = pm2(x)
    set_chip(pm2, 99)
    assert not torch.equal(y1, pm2(x))


def test_bad_settings_raise():
    lay = nn.Linear(4, 2).double()
    h = HardwareConfig()
    with pytest.raises(CrossnasError, match="l: dac.bits"):
        PIMLinear(lay, "l", h.model_copy(update={"dac": h.dac.model_copy(update={"bits": 0})}), 8, 8, False,
                  1)
    with pytest.raises(CrossnasError, match="adc.bits"):
        PIMLinear(lay, "l", h.model_copy(update={"adc": h.adc.model_copy(update={"bits": 0})}), 8, 8, False,
                  1)
    with pytest.raises(CrossnasError, match="bits_per_cell"):
        PIMLinear(lay, "l", hw(**{"device.bits_per_cell": 4}), 3, 8, False, 1)
    dv = h.device.model_copy(update={"variation": -0.1})
    with pytest.raises(CrossnasError, match="variation"):
        PIMLinear(lay, "l", h.model_copy(update={"device": dv}), 8, 8, False,
                  1)
    g = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(CrossnasError, match="0"):
        to_pim(g, h, calib_loader=[torch.randn(1, 4, 5, 5)], device="cpu")
    pm = to_pim(g, h, calib_loader=[torch.randn(1, 4, 5, 5)], device="cpu", allow_digital=True)
    assert isinstance(pm[0], nn.Conv2d)
