"""extract_layers on the built-in models."""

from __future__ import annotations

import pytest
import torch

from crossnas.errors import CrossnasError
from crossnas.models import get_model, list_models
from crossnas.network import extract_layers

torch.set_num_threads(1)


def conv_macs(cin, cout, hw, k=3):
    return cin * cout * k * k * hw * hw


def test_registry():
    assert {"vgg8", "lenet", "resnet18-cifar"} <= set(list_models())
    with pytest.raises(CrossnasError):
        get_model("nope")


def test_vgg8_layers_and_macs():
    layers = extract_layers(get_model("vgg8", 3, 10, 32), (3, 32, 32))
    mats = [ly for ly in layers if ly.kind in ("conv", "linear")]
    assert [(ly.in_channels, ly.out_channels) for ly in mats] == [
        (3, 128), (128, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 1024), (1024, 10)]
    assert mats[6].padding == (0, 0) and mats[6].out_hw == (2, 2)
    expected = (conv_macs(3, 128, 32) + conv_macs(128, 128, 32) + conv_macs(128, 256, 16)
                + conv_macs(256, 256, 16) + conv_macs(256, 512, 8) + conv_macs(512, 512, 8)
                + conv_macs(512, 1024, 2) + 1024 * 10)
    assert sum(ly.macs for ly in mats) == expected
    assert sum(ly.kind == "pool" for ly in layers) == 4


def test_vgg8_small_input_drops_pools():
    layers = extract_layers(get_model("vgg8", 1, 10, 8), (1, 8, 8))
    assert min(min(ly.out_hw) for ly in layers if ly.kind == "conv") >= 1
    assert sum(ly.kind == "pool" for ly in layers) < 4


def test_lenet():
    layers = extract_layers(get_model("lenet", 1, 10, 28), (1, 28, 28))
    mats = [ly for ly in layers if ly.kind in ("conv", "linear")]
    assert [ly.macs for ly in mats] == [conv_macs(1, 6, 28, 5), conv_macs(6, 16, 10, 5), 400 * 120, 120 * 84,
                                        84 * 10]


def test_resnet18_cifar():
    layers = extract_layers(get_model("resnet18-cifar", 3, 10, 32), (3, 32, 32))
    convs = [ly for ly in layers if ly.kind == "conv"]
    assert len(convs) == 20  # stem + 16 + 3 shortcut 1x1
    assert sum(ly.kind == "add" for ly in layers) == 8
    assert [ly for ly in layers if ly.kind == "linear"][0].in_channels == 512


def test_factory_path(tmp_path):
    f = tmp_path / "net.py"
    f.write_text("from torch import nn\ndef make(in_channels, num_classes, input_size):\n    return "
                 "nn.Sequential(nn.Conv2d(in_channels, 4, 3), nn.Flatten(), "
                 "nn.Linear(4 * (input_size - 2) ** 2, num_classes))\n"
                 "def old(c, n, s):\n    return make(c, n, s)\n")
    layers = extract_layers(get_model(f"{f}:make", 2, 5, 6), (2, 6, 6))
    assert [ly.kind for ly in layers] == ["conv", "linear"]
    # arguments go by name: a factory whose parameters crossnas cannot name is refused, not guessed
    with pytest.raises(CrossnasError, match="parameter 'c' has no value"):
        get_model(f"{f}:old", 2, 5, 6)


def test_untraceable_model_is_error():
    with pytest.raises(CrossnasError):
        extract_layers(torch.nn.Linear(7, 3), (3, 8, 8))
