"""quantize_model, baseline width scaling, design save/load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crossnas.errors import CrossnasError
from crossnas.models import get_model
from crossnas.quant import QuantConv2d, QuantLinear, quantize_model

torch.set_num_threads(1)


def _calibrate(model: nn.Module, x: torch.Tensor) -> nn.Module:
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def test_quantize_model_matches_hand_made_quant_layers():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 5, 3, stride=2, padding=1, dilation=1, groups=1)
    fc = nn.Linear(5 * 4 * 4, 3)
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc)
    hand_c = QuantConv2d(2, 5, 3, stride=2, padding=1, weight_bits=4, act_bits=3, act_signed=True)
    hand_f = QuantLinear(80, 3, weight_bits=4, act_bits=3)
    hand_c.load_state_dict(conv.state_dict(), strict=False)
    hand_f.load_state_dict(fc.state_dict(), strict=False)
    hand = nn.Sequential(hand_c, nn.ReLU(), nn.Flatten(), hand_f)
    q = quantize_model(model, 4, 3)
    assert isinstance(q[0], QuantConv2d) and isinstance(q[3], QuantLinear)
    assert q[0].act_signed and not q[3].act_signed
    assert (q[0].stride, q[0].padding) == ((2, 2), (1, 1))
    x = torch.randn(8, 2, 8, 8)
    _calibrate(q, x)
    _calibrate(hand, x)
    torch.testing.assert_close(q(x), hand(x), rtol=0, atol=0)
    # quantization is real: a float copy differs
    ref = nn.Sequential(nn.Conv2d(2, 5, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(80, 3))
    ref.load_state_dict({k: v for k, v in q.state_dict().items() if "act_range" not in k})
    assert not torch.allclose(ref(x), q(x))


def test_quantize_model_per_layer_bits_and_errors():
    m = quantize_model(get_model("lenet", 1, 10, 12, width_mult=0.5), {
        "0": (8, 8), "3": (4, 4), "7": (6, 5), "9": (6, 5), "11": (8, 8)})
    assert [(mm.weight_bits, mm.act_bits) for mm in m.modules() if isinstance(mm, QuantLinear | QuantConv2d)
            ] == [(8, 8), (4, 4), (6, 5), (6, 5), (8, 8)]
    with pytest.raises(CrossnasError, match="missing"):
        quantize_model(get_model("lenet", 1, 10, 12), {"0": (8, 8)})
    with pytest.raises(CrossnasError, match="weight_bits"):
        quantize_model(get_model("lenet", 1, 10, 12), 1, 8)
    with pytest.raises(CrossnasError, match="first layer"):
        quantize_model(get_model("lenet", 1, 10, 12), 8, 1)


def test_width_mult_scales_baselines():
    def widths(m):
        return [mm.out_channels if isinstance(mm, nn.Conv2d) else mm.out_features
                for mm in m.modules() if isinstance(mm, nn.Conv2d | nn.Linear)]

    assert widths(get_model("vgg8", 3, 10, 32)) == [128, 128, 256, 256, 512, 512, 1024, 10]
    assert widths(get_model("vgg8", 3, 10, 32, width_mult=0.25)) == [32, 32, 64, 64, 128, 128, 256, 10]
    assert widths(get_model("lenet", 1, 10, 28, width_mult=0.5)) == [3, 8, 60, 42, 10]
    assert widths(get_model("lenet", 1, 10, 28, width_mult=0.01)) == [1, 1, 1, 1, 10]
    with pytest.raises(CrossnasError, match="width_mult"):
        get_model("resnet18-cifar", 3, 10, 32, width_mult=0.5)
