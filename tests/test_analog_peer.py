"""Side by side with IBM's aihwkit-lightning 2.1.0 (optional extra `peer`): a small trained CNN converted
with matched settings in both tools gives the same predictions and logits (docs/analog.md, "Peer")."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("aihwkit_lightning")

from aihwkit_lightning.nn.conversion import convert_to_analog  # noqa: E402
from aihwkit_lightning.simulator.configs import TorchInferenceRPUConfig  # noqa: E402

from crossnas.analog import pim_layers, to_pim  # noqa: E402
from crossnas.data import load_dataset  # noqa: E402
from crossnas.hardware.config import HardwareConfig  # noqa: E402

ROWS = 128  # the fc layer's 256 rows split in two equal tiles in both tools (aihwkit splits evenly)
AB = 8  # activation bits; unsigned inputs (ReLU, clamped images)


def _trained_cnn():
    splits = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 4 * 4, 10))
    xs = torch.stack([splits.train[i][0] for i in range(len(splits.train))]).clamp_min(0)
    ys = torch.tensor([splits.train[i][1] for i in range(len(splits.train))])
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for _ in range(6):
        for i in range(0, len(xs), 64):
            opt.zero_grad()
            F.cross_entropy(net(xs[i:i + 64]), ys[i:i + 64]).backward()
            opt.step()
    xt = torch.stack([splits.test[i][0] for i in range(len(splits.test))]).clamp_min(0)
    return net.eval(), xs[:128], xt


def _equalize_column_max(net):
    """aihwkit's ADC bound is per (tile, column): bound = out_bound * input_range * max|w| of that column
    in that tile; ours is per tile. Give every (column, tile) the layer's max |w| (one weight each) so that
    both are the same number."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                w = m.weight.view(m.weight.shape[0], -1)
                top = w.abs().max()
                for a0 in range(0, w.shape[1], ROWS):
                    blk = w[:, a0:a0 + ROWS]
                    i = blk.abs().argmax(1)
                    s = torch.sign(blk[torch.arange(len(i)), i])
                    blk[torch.arange(len(i)), i] = torch.where(s == 0, 1.0, s) * top
    return net


@pytest.mark.parametrize("adc_bits", [6, 4])
def test_matches_aihwkit_lightning(adc_bits):
    torch.set_num_threads(1)
    net, calib, xt = _trained_cnn()
    net = _equalize_column_max(net)
    # matched: one 7-bit cell per weight magnitude (differential pair, analog subtraction: one signed
    # conversion per column), DAC width = input bits (one input chunk), im2col rows, one calibrated ADC
    # range per layer, ideal devices
    hw = HardwareConfig().with_overrides({
        "device.bits_per_cell": 7, "device.r_off_ohm": None, "quant.weight_bits": 8, "quant.act_bits": AB,
        "dac.bits": AB, "adc.bits": adc_bits, "crossbar.rows": ROWS, "crossbar.row_packing": "im2col",
        "adc.range": "calibrated", "adc.range_scope": "layer"})
    pm = to_pim(net, hw, calib_loader=[calib], device="cpu")
    layers = [m for _, m in pim_layers(pm)]
    amax = 2**AB - 1
    cfg = TorchInferenceRPUConfig()
    cfg.forward.inp_res = 2 * amax  # their symmetric grid over [-r, r]: step r / amax, as our unsigned one
    cfg.forward.out_res = 2**adc_bits - 2  # codes -(2^(b-1)-1)..2^(b-1)-1, as our signed ADC
    cfg.pre_post.input_range.enable = True
    cfg.mapping.max_input_size = ROWS
    ref = copy.deepcopy(net)
    with torch.no_grad():  # the same quantized weights in both
        for m, p in zip([m for m in ref.modules() if isinstance(m, (nn.Conv2d, nn.Linear))], layers):
            m.weight.copy_((p.wq * p.w_scale).float().reshape(m.weight.shape))
    an = convert_to_analog(ref, cfg).eval()
    analog = [m for m in an.modules() if hasattr(m, "input_range") and hasattr(m, "rpu_config")]
    assert len(analog) == len(layers)
    for m, p in zip(analog, layers):
        c = p.cores[0]
        assert bool((c.fs_cal == c.fs_cal[0]).all()) and c.plan.S == 1 and c.plan.C == 1
        m.rpu_config = copy.deepcopy(cfg)
        wq_max = float(p.wq.abs().max())
        m.rpu_config.forward.out_bound = float(c.fs_cal[0]) / (amax * wq_max)  # the same ADC range
        with torch.no_grad():
            m.input_range.fill_(float(p.act_range))
    with torch.no_grad():
        ours, theirs = pm(xt), an(xt)
    assert torch.equal(ours.argmax(1), theirs.argmax(1))
    diff = float((ours - theirs).abs().max())
    assert diff < 1e-4
    pm_digital = copy.deepcopy(pm)
    for _, m in pim_layers(pm_digital):
        m.mode = "digital"
    assert not torch.equal(ours, pm_digital(xt))  # the ADC is lossy at these bits: the test can fail
