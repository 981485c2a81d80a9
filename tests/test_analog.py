import copy
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


def _pair(layer, h, signed=False, wb=6, ab=5, rng=2.0, kernel=None):
    cls = PIMLinear if isinstance(layer, nn.Linear) else PIMConv2d
    return cls(layer.double(), "l", h, wb, ab, signed, rng, seed=1, kernel=kernel)


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
    total = None
    step, qm = p._adc_step()
    adt = p._adc_dtype()  # the ADC divides in float32 when partial sums are integers < 2^24
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
                    q = torch.clamp(torch.round(v.to(adt) / step.to(adt)[t]), lo, qm).double()
                    out += g * cw * 2.0 ** (pl.cell * s) * q
        total = out * step[t] if total is None else total + out * step[t]  # tiles in order
    out = total
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


CONVS = [
    lambda: nn.Conv2d(3, 5, 3, stride=2, padding=1),
    lambda: nn.Conv2d(4, 3, (3, 2), stride=(1, 2), padding=(2, 0), dilation=(2, 1), bias=False),
    lambda: nn.Conv2d(6, 4, 1),
]


@pytest.mark.parametrize("mk", CONVS)
@pytest.mark.parametrize("scheme,sub", [("differential", "analog"), ("differential", "digital"),
                                        ("offset", "analog")])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("block", [1, 100, 2**18])
@pytest.mark.parametrize("kernel", ["int8", "float32"])
def test_lossy_conv_forward_matches_reference(mk, scheme, sub, signed, block, kernel, monkeypatch):
    """The conv path (chunk planes im2col'd per memory block) equals the loop reference on unfold."""
    import crossnas.analog.kernels as kernels

    monkeypatch.setattr(kernels, "PS_BLOCK", block)  # 1: one image row per block; 100: several rows
    torch.manual_seed(3)
    h = lossless(**{"adc.bits": 4, "crossbar.rows": 11, "dac.bits": 2, "crossbar.signed": scheme,
                    "crossbar.differential_subtract": sub, "crossbar.row_packing": "im2col"})
    p = _pair(mk(), h, signed=signed, kernel=kernel)
    assert (p.w_tiles[0].dtype == torch.int8) == (kernel == "int8")
    x = torch.randn(3, p.layer.in_channels, 9, 7, dtype=torch.float64)
    x = x if signed else x.abs()
    lay = p.layer
    cols = torch.nn.functional.unfold(p.quant_input(x), lay.kernel_size, dilation=lay.dilation,
                                      padding=lay.padding, stride=lay.stride)
    N, K, L = cols.shape
    ref = _reference(p, cols.transpose(1, 2).reshape(-1, K))
    y = p(x)
    ref = ref.reshape(N, y.shape[2], y.shape[3], -1).permute(0, 3, 1, 2)
    assert torch.equal(y, p._finish(ref, x.dtype, (1, -1, 1, 1)))
    assert not torch.equal(y, _digital(p, x))


F32, F64, I8 = torch.float32, torch.float64, torch.int8


@pytest.mark.parametrize("over,kw,dtypes", [
    # (GEMM operands, ADC arithmetic, shift-and-add) dtypes each case must select
    ({"dac.bits": 8, "crossbar.rows": 40}, {"wb": 9, "ab": 8}, (F32, F32, F32)),  # chunks > 127
    ({"dac.bits": 8, "device.bits_per_cell": 8, "crossbar.rows": 300}, {"wb": 9, "ab": 8},
     (F64, F64, F32)),  # partial sums >= 2^24
    ({"dac.bits": 3, "crossbar.rows": 64}, {"wb": 6, "ab": 11}, (I8, F32, F32)),  # int32 input planes
    ({"adc.bits": 16, "crossbar.rows": 11000}, {"wb": 8, "ab": 10}, (I8, F32, F64)),  # code sums >= 2^24
])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("kernel", ["int8", "float32"])
def test_lossy_precision_paths_match_reference(over, kw, dtypes, signed, kernel):
    torch.manual_seed(4)
    h = lossless(**{"adc.bits": 6, "quant.weight_bits": 9, **over})
    K = min(over["crossbar.rows"] + 37, 11050)
    p = PIMLinear(nn.Linear(K, 3).double(), "l", h, kw["wb"], kw["ab"], signed, 2.0, seed=1, kernel=kernel)
    x = torch.randn(4, K, dtype=torch.float64)
    xq = p.quant_input(x if signed else x.abs())
    want = tuple(F32 if (d is I8 and kernel == "float32") else d for d in dtypes)
    assert (p.w_tiles[0].dtype, p._adc_dtype(), p._sum_dtype(p._adc_step()[1])) == want
    got = p._int_matmul(xq)
    assert torch.equal(got, _reference(p, xq))
    assert not torch.equal(got, xq @ p.wq.t())


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
    with pytest.raises(CrossnasError, match="l: dac.bits=0"):
        PIMLinear(lay, "l", h.model_copy(update={"dac": h.dac.model_copy(update={"bits": 0})}), 8, 8, False,
                  1)
    with pytest.raises(CrossnasError, match="l: adc.bits=0"):
        PIMLinear(lay, "l", h.model_copy(update={"adc": h.adc.model_copy(update={"bits": 0})}), 8, 8, False,
                  1)
    with pytest.raises(CrossnasError, match=r"l: device.bits_per_cell=4 is larger than this layer's weight"):
        PIMLinear(lay, "l", hw(**{"device.bits_per_cell": 4}), 3, 8, False, 1)
    dv = h.device.model_copy(update={"variation": -0.1})
    with pytest.raises(CrossnasError, match="l: device.variation=-0.1"):
        PIMLinear(lay, "l", h.model_copy(update={"device": dv}), 8, 8, False,
                  1)
    g = nn.Sequential(nn.Conv3d(4, 4, 3))
    with pytest.raises(CrossnasError, match=r"0 \(Conv3d is not a Conv1d, Conv2d or Linear layer\)"):
        to_pim(g, h, calib_loader=[torch.randn(1, 4, 5, 5, 5)], device="cpu")
    with pytest.warns(UserWarning, match="kept digital"):
        pm = to_pim(g, h, calib_loader=[torch.randn(1, 4, 5, 5, 5)], device="cpu", allow_digital=True)
    assert isinstance(pm[0], nn.Conv3d) and pm.pim_digital_layers == ["0"]


@pytest.mark.parametrize("over,msg", [
    ({"adc.bits": 0}, "adc.bits"), ({"dac.bits": 0}, "dac.bits"), ({"device.variation": -0.1},
                                                                    "device.variation"),
    ({"adc.per_layer": {"fc*": 0}}, r"per_layer\['fc\*'\]"),
    ({"device.bits_per_cell": 4, "quant.weight_bits": 3}, "bits_per_cell"),
])
def test_bad_hardware_settings_name_the_setting(over, msg):
    with pytest.raises(CrossnasError, match=msg):
        hw(**over)


def test_bad_settings_through_to_pim_name_the_layer():
    n, cal = _net(), _loader()
    h = hw(**{"device.bits_per_cell": 4, "quant.weight_bits": 8})
    with pytest.raises(CrossnasError, match=r"fc: device.bits_per_cell=4 is larger than this layer's weight"):
        to_pim(n, h, calib_loader=cal, bits={"fc": (3, 6)}, device="cpu")
    with pytest.raises(CrossnasError, match=r"conv1: activation bits=0"):
        to_pim(n, h, calib_loader=cal, bits={"conv1": (8, 0)}, device="cpu")
    with pytest.raises(CrossnasError, match=r"bits: no mappable Conv2d/Linear layer named \['fc2'\]"):
        to_pim(n, h, calib_loader=cal, bits={"fc2": (8, 8)}, device="cpu")
    bad = HardwareConfig().model_copy(update={"adc": HardwareConfig().adc.model_copy(update={"bits": 0})})
    with pytest.raises(CrossnasError, match="conv1: adc.bits=0"):
        to_pim(n, bad, calib_loader=cal, device="cpu")
    with pytest.raises(CrossnasError, match="shortcut.0: adc.bits=0"):  # per-layer override, named layer
        to_pim(n, hw(**{"adc.per_layer": {"conv1": 6}}).model_copy(
            update={"adc": HardwareConfig().adc.model_copy(update={"per_layer": {"shortcut.*": 0}})}),
            calib_loader=cal, device="cpu")


class _Attn(nn.Module):
    def __init__(self):
        super().__init__()
        self.att = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1, 8)
        return self.fc(self.att(x, x, x)[0].mean(1))


@pytest.mark.parametrize("model,shape,names", [
    (lambda: nn.Sequential(nn.Conv3d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 216, 3)), (2, 1, 8, 8, 8),
     ["0 (Conv3d"]),
    (lambda: nn.Sequential(nn.ConvTranspose2d(1, 2, 3), nn.Flatten(), nn.Linear(200, 3)), (2, 1, 8, 8),
     ["0 (ConvTranspose2d"]),
    (_Attn, (2, 1, 8, 8), ["att (MultiheadAttention"]),  # its out_proj Linear is not wrapped either
])
def test_unmappable_layers_listed(model, shape, names):
    m = model().eval()
    x = torch.randn(shape)
    with pytest.raises(CrossnasError, match="cannot be mapped") as e:
        to_pim(m, hw(), calib_loader=[x], device="cpu")
    for nm in names:
        assert nm in str(e.value)
    with pytest.warns(UserWarning, match="kept digital"):
        pm = to_pim(m, hw(), calib_loader=[x], device="cpu", allow_digital=True)
    assert pm.pim_digital_layers == [nm.split(" ")[0] for nm in names]
    assert torch.allclose(pm(x), m(x), atol=0.3)  # the mapped layers still compute; others stay digital


MAPPED = [  # every module mapping_rules.mappable accepts, as the cost model costs it
    lambda: nn.Conv2d(4, 6, 3, groups=2, padding=1),  # grouped: one set of tiles per group
    lambda: nn.Conv2d(4, 4, 3, groups=4, stride=2),  # depthwise
    lambda: nn.Conv1d(3, 5, 3, padding=2, dilation=2),
    lambda: nn.Conv1d(4, 4, 5, groups=2, padding="same"),
    lambda: nn.Conv2d(2, 3, 3, padding="same", padding_mode="reflect"),
    lambda: nn.Conv2d(2, 3, (3, 2), padding=(1, 2), padding_mode="circular", bias=False),
]


def _quantized_torch_conv(p, x):
    """The same quantized integers through torch's own conv module (padding handled by torch)."""
    lay = copy.deepcopy(p.layer)
    with torch.no_grad():
        lay.weight.copy_(p.wq.reshape(lay.weight.shape))
        lay.bias = None
    return p._finish(lay(p.quant_input(x)), x.dtype, (1, -1) + (1,) * (x.dim() - 2))


@pytest.mark.parametrize("mk", MAPPED)
@pytest.mark.parametrize("scheme", ["differential", "offset"])
def test_grouped_and_1d_convs_map_exactly(mk, scheme):
    torch.manual_seed(5)
    h = lossless(**{"crossbar.signed": scheme, "crossbar.rows": 7, "crossbar.row_packing": "im2col"})
    p = _pair(mk(), h)
    x = torch.rand((2, p.layer.in_channels, 9) + ((8,) if isinstance(p.layer, nn.Conv2d) else ()),
                   dtype=torch.float64)
    assert len(p.cores) == p.layer.groups
    ref = _quantized_torch_conv(p, x)
    p.force_sliced = True  # lossless ADC: the bit-sliced tiles give the digital integers
    assert torch.equal(p(x), ref) and torch.equal(_digital(p, x), ref)
    lossy = lossless(**{"crossbar.signed": scheme, "crossbar.rows": 7, "adc.bits": 3,
                        "crossbar.row_packing": "im2col"})
    lay, G = p.layer, p.layer.groups
    with torch.no_grad():  # every group holds the layer's max |w|: the same weight scale per group
        lay.weight.view(G, -1)[:, 0] = lay.weight.abs().max()
    q = _pair(lay, lossy)
    y = q(x)
    assert not torch.equal(y, _digital(q, x))  # lossy ADC
    Og, Cg = lay.out_channels // G, lay.in_channels // G
    for g in range(G):  # each group's tiles compute exactly what a one-group layer of its weights computes
        one = copy.deepcopy(lay)
        one.groups, one.in_channels, one.out_channels = 1, Cg, Og
        one.weight = nn.Parameter(lay.weight[g * Og:(g + 1) * Og].clone())
        one.bias = nn.Parameter(lay.bias[g * Og:(g + 1) * Og].clone()) if lay.bias is not None else None
        r = _pair(one, lossy)
        assert torch.equal(y[:, g * Og:(g + 1) * Og], r(x[:, g * Cg:(g + 1) * Cg]))


def test_mappable_agrees_with_cost_model():
    from crossnas.cost.mapping_rules import mappable

    m = nn.Sequential(nn.Conv1d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=4), nn.Linear(4, 2), nn.Conv3d(1, 1, 1))
    pm_names = [type(mod).__name__ for mod in m if mappable(mod)]
    assert pm_names == ["Conv1d", "Conv2d", "Linear"]
