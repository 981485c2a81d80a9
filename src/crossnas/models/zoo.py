"""VGG-8 (MNSIM-2.0's CIFAR-10 network), LeNet-5 and ResNet-18 for CIFAR."""

from __future__ import annotations

from torch import nn


def scaled(channels: int, width_mult: float) -> int:
    """Channels (or hidden features) times `width_mult`, rounded to the nearest integer, at least 1."""
    return max(1, int(round(channels * width_mult)))


def _relu_init(model: nn.Module) -> nn.Module:
    """He-normal weights, zero biases: these plain (BN-free) stacks do not train from PyTorch's default
    init (8-layer VGG-8 stays at chance on digits); He et al. 2015 keep the ReLU signal variance."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return model


def _hw(input_size) -> tuple[int, int]:
    """(H, W) of an int (square) or an (H, W) pair."""
    if isinstance(input_size, tuple | list):
        return int(input_size[0]), int(input_size[1])
    return int(input_size), int(input_size)


def _check_mult(width_mult: float) -> float:
    if not width_mult > 0:
        raise ValueError(f"width_mult must be > 0, got {width_mult}")
    return float(width_mult)


def vgg8(in_channels: int = 3, num_classes: int = 10, input_size: int | tuple[int, int] = 32,
         width_mult: float = 1.0) -> nn.Module:
    """MNSIM-2.0 VGG-8: conv3x3 3-128, 128-128, pool, 128-256, 256-256, pool, 256-512, 512-512, pool,
    512-1024 (no padding), pool, fc 1024*h*w-num_classes; padding 1 elsewhere.

    For inputs smaller than 32x32 a pool that would take the map below 2x2 is dropped (the map is kept),
    except the final pool, which takes 2x2 to 1x1 as in MNSIM-2.0; an unpadded 3x3 on a map below 3x3 gets
    padding 1. At 32x32 the fc input is 1024 features (32->16->8->4, 3x3 unpadded -> 2, pool -> 1).
    `input_size` (H, W) builds the network for a non-square input; pools and padding follow the shorter side.

    `width_mult` scales every conv's output channels (`scaled`: rounded, at least 1); 1.0 is the original.
    """
    _check_mult(width_mult)
    layers: list[nn.Module] = []
    h, w = _hw(input_size)  # non-square inputs: the decisions below follow the shorter side
    c = in_channels
    plan = [128, 128, "M", 256, 256, "M", 512, 512, "M", ("nopad", 1024), "M"]
    for idx, item in enumerate(plan):
        if item == "M":
            last = idx == len(plan) - 1
            if min(h, w) // 2 >= 2 or (last and min(h, w) == 2):
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            continue
        pad = 0 if isinstance(item, tuple) else 1
        out = scaled(item[1] if isinstance(item, tuple) else item, width_mult)
        if pad == 0 and min(h, w) < 3:
            pad = 1  # too small for an unpadded 3x3: keep the map
        layers += [nn.Conv2d(c, out, 3, padding=pad), nn.ReLU()]
        h, w = h - 2 + 2 * pad, w - 2 + 2 * pad
        c = out
    return _relu_init(nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, num_classes)))


def lenet(in_channels: int = 1, num_classes: int = 10, input_size: int | tuple[int, int] = 28,
          width_mult: float = 1.0) -> nn.Module:
    """LeNet-5: conv5x5 (pad 2) 6, pool, conv5x5 16, pool, fc 120, 84, classes (scaled to the input).

    `width_mult` scales the conv channels (6, 16) and the hidden fc sizes (120, 84), each rounded and at
    least 1 (`scaled`); 1.0 is the original.
    """
    _check_mult(width_mult)
    # scaled to the input like vgg8: a pool that would take the map below 2x2 is dropped, and the second
    # conv is padded when an unpadded 5x5 would (the original at 28x28 is unchanged: 28-14-10-5)
    h, w = _hw(input_size)  # non-square inputs: the decisions below follow the shorter side
    pool1 = min(h, w) // 2 >= 2
    h, w = (h // 2, w // 2) if pool1 else (h, w)
    pad2 = 0 if min(h, w) - 4 >= 2 else 2
    h, w = h - 4 + 2 * pad2, w - 4 + 2 * pad2
    pool2 = min(h, w) // 2 >= 2
    h, w = (h // 2, w // 2) if pool2 else (h, w)
    if min(h, w) < 1:
        raise ValueError(f"lenet needs input_size >= 2, got {input_size}")
    c1, c2, f1, f2 = (scaled(c, width_mult) for c in (6, 16, 120, 84))
    layers: list[nn.Module] = [nn.Conv2d(in_channels, c1, 5, padding=2), nn.ReLU()]
    layers += [nn.MaxPool2d(2)] if pool1 else []
    layers += [nn.Conv2d(c1, c2, 5, padding=pad2), nn.ReLU()]
    layers += [nn.MaxPool2d(2)] if pool2 else []
    return _relu_init(nn.Sequential(*layers, nn.Flatten(), nn.Linear(c2 * h * w, f1), nn.ReLU(),
                                    nn.Linear(f1, f2), nn.ReLU(), nn.Linear(f2, num_classes)))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + self.shortcut(x))


class ResNet18Cifar(nn.Module):
    """ResNet-18 for CIFAR: 3x3 stem (no max-pool), 4 stages of 2 basic blocks (64..512), avg-pool, fc."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU())
        blocks, c = [], 64
        for i, w in enumerate((64, 128, 256, 512)):
            for j in range(2):
                blocks.append(_Block(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))


def resnet18_cifar(in_channels: int = 3, num_classes: int = 10, input_size: int | tuple[int, int] = 32
                   ) -> nn.Module:
    return ResNet18Cifar(in_channels, num_classes)
