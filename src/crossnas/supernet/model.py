"""Quantization-aware single-path one-shot supernet with channel-sliced weight sharing.

Each (slot, block kind) owns max-width convolutions; a width-k path uses the first k output channels
and the first c input channels (c = previous active block's width). Batch norm is per width choice.
`Supernet.extract(arch)` builds a standalone module of plain quantized layers that, in eval mode,
computes exactly what `Supernet.forward(x, arch)` computes.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from crossnas.errors import CrossnasError
from crossnas.quant import QuantConv2d, QuantLinear, fake_quant, weight_range
from crossnas.space.arch import BLOCK_KINDS, BlockArch, NetworkArch

CONVS = ("conv1", "conv2", "shortcut")


@dataclass(frozen=True)
class SupernetSpec:
    """What the supernet must hold: slots, block kinds, width/bit choices and the classifier head."""

    n_slots: int
    block_kinds: tuple[str, ...] = BLOCK_KINDS
    widths: tuple[int, ...] = (16, 32, 64)
    head_hidden: tuple[int, ...] = (200, 50)
    head_bits: int = 9
    wbits: tuple[int, ...] = (8,)
    abits: tuple[int, ...] = (8,)
    dropout: float = 0.1

    def __post_init__(self):
        if self.n_slots < 1:
            raise CrossnasError(f"supernet.n_slots: expected >= 1, got {self.n_slots}")
        bad = [k for k in self.block_kinds if k not in BLOCK_KINDS]
        if bad or not self.widths:
            raise CrossnasError(f"supernet spec: unknown block kinds {bad} or empty widths")

    @classmethod
    def from_space(cls, space: Any) -> SupernetSpec:
        """Read a search space's attributes defensively (several spellings, sensible defaults)."""

        def pick(names, default):
            for src in (space, getattr(space, "spec", None)):
                for n in names:
                    v = getattr(src, n, None) if src is not None else None
                    if v is not None and not callable(v):
                        return v
            return default

        n_slots = pick(("n_slots", "slots"), None)
        if n_slots is None:
            raise CrossnasError(f"space {type(space).__name__} has no n_slots attribute")
        return cls(
            n_slots=int(n_slots),
            block_kinds=tuple(pick(("block_kinds", "block_choices", "blocks"), BLOCK_KINDS)),
            widths=tuple(int(w) for w in pick(("widths", "width_choices"), (16, 32, 64))),
            head_hidden=tuple(int(h) for h in pick(("head_hidden",), (200, 50))),
            head_bits=int(pick(("head_bits",), 9)),
            wbits=tuple(int(b) for b in pick(("wbits", "wbits_choices", "weight_bits"), (8,))),
            abits=tuple(int(b) for b in pick(("abits", "abits_choices", "act_bits"), (8,))),
        )


def _qconv(cin: int, cout: int, k: int) -> QuantConv2d:
    return QuantConv2d(cin, cout, k, padding=k // 2, bias=False)


class _SlotBlock(nn.Module):
    """Max-width weights of one (slot, kind); BN per output width choice."""

    def __init__(self, kind: str, cin_max: int, widths: tuple[int, ...]):
        super().__init__()
        self.kind = kind
        wmax = max(widths)
        self.conv1 = _qconv(cin_max, wmax, 3)
        self.bn1 = nn.ModuleDict({str(w): nn.BatchNorm2d(w) for w in widths})
        self.conv2 = _qconv(wmax, wmax, 3)
        self.bn2 = nn.ModuleDict({str(w): nn.BatchNorm2d(w) for w in widths})
        if kind == "residual":
            self.shortcut = _qconv(cin_max, wmax, 1)
            self.bn_sc = nn.ModuleDict({str(w): nn.BatchNorm2d(w) for w in widths})


class ResidualBlock(nn.Module):
    """conv-bn-relu-conv-bn plus a 1x1 conv-bn projection shortcut, then ReLU (fx-traceable)."""

    def __init__(self, conv1, bn1, conv2, bn2, sc_conv, sc_bn):
        super().__init__()
        self.conv1, self.bn1, self.relu1 = conv1, bn1, nn.ReLU()
        self.conv2, self.bn2 = conv2, bn2
        self.shortcut = nn.Sequential(sc_conv, sc_bn)
        self.relu2 = nn.ReLU()

    def body(self, x):
        return self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))

    def forward(self, x):
        out = self.body(x) + self.shortcut(x)
        return self.relu2(out)


class Head(nn.Module):
    """head.pool (adaptive avg 2x2) -> flatten -> fc1, ReLU, dropout, ... -> final fc."""

    def __init__(self, layers: OrderedDict):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.layers = list(layers.keys())
        for name, mod in layers.items():
            self.add_module(name, mod)

    def forward(self, x):
        x = torch.flatten(self.pool(x), 1)
        for name in self.layers:
            x = getattr(self, name)(x)
        return x


class SubNet(nn.Module):
    """An extracted subnet: `blocks.{i}` per slot (Identity for skips) and `head`."""

    def __init__(self, blocks: list[nn.Module], head: Head, arch: NetworkArch):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.arch_dict = arch.to_dict()

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)


class Supernet(nn.Module):
    """Single-path one-shot supernet; `forward(x, arch)` runs one path with fake quantization."""

    def __init__(self, spec_or_space: Any, in_channels: int, num_classes: int, input_size: int,
                 sample_arch: Callable[[np.random.Generator], NetworkArch] | None = None,
                 noise_sigma: float = 0.0):
        super().__init__()
        if isinstance(spec_or_space, SupernetSpec):
            spec = spec_or_space
        else:
            spec = SupernetSpec.from_space(spec_or_space)
            if sample_arch is None:
                sample_arch = _space_sampler(spec_or_space)
        self.spec = spec
        self.in_channels, self.num_classes = int(in_channels), int(num_classes)
        self.input_size = int(input_size)
        self.noise_sigma = float(noise_sigma)
        self._sample_arch = sample_arch
        self.max_width = max(spec.widths)
        cin_max = max(self.in_channels, self.max_width)
        self.slots = nn.ModuleList(
            nn.ModuleDict({k: _SlotBlock(k, cin_max, spec.widths) for k in spec.block_kinds if k != "skip"})
            for _ in range(spec.n_slots))
        dims = [4 * self.max_width, *spec.head_hidden, self.num_classes]
        self.fcs = nn.ModuleList(QuantLinear(a, b, weight_bits=spec.head_bits, act_bits=spec.head_bits)
                                 for a, b in zip(dims[:-1], dims[1:]))

    @classmethod
    def from_space(cls, space: Any, in_channels: int, num_classes: int, input_size: int, **kw) -> Supernet:
        return cls(space, in_channels, num_classes, input_size, **kw)

    # --- sampling ---------------------------------------------------------------------------------
    def sample_arch(self, rng: np.random.Generator) -> NetworkArch:
        if self._sample_arch is not None:
            arch = self._sample_arch(rng)
            self.check_arch(arch)
            return arch
        s = self.spec
        for _ in range(10_000):
            blocks = tuple(BlockArch(kind=str(rng.choice(s.block_kinds)), width=int(rng.choice(s.widths)),
                                     wbits=int(rng.choice(s.wbits)), abits=int(rng.choice(s.abits)))
                           for _ in range(s.n_slots))
            arch = NetworkArch(blocks=blocks, head_bits=s.head_bits)
            if self._valid(arch):
                return arch.canonical()  # drawn as the space draws, then canonical (skips last)
        raise CrossnasError("supernet: could not sample a valid architecture (pool constraint too tight?)")

    def extreme_arch(self, which: str) -> NetworkArch:
        """The largest or the smallest path (the sandwich rule trains both every step)."""
        from types import SimpleNamespace

        from crossnas.space.crosslayer import _max_pools
        from crossnas.space.extremes import largest_network, smallest_network

        s = self.spec
        view = SimpleNamespace(n_slots=s.n_slots, block_kinds=s.block_kinds, widths=s.widths, wbits=s.wbits,
                               abits=s.abits, head_bits=s.head_bits, max_pools=_max_pools(self.input_size))
        return (largest_network if which == "largest" else smallest_network)(view)

    def _valid(self, arch: NetworkArch) -> bool:
        return (len(arch.blocks) == self.spec.n_slots and arch.blocks[0].kind != "skip"
                and self.input_size / 2**arch.n_pools >= 2)

    def check_arch(self, arch: NetworkArch) -> None:
        if len(arch.blocks) != self.spec.n_slots:
            raise CrossnasError(f"arch has {len(arch.blocks)} slots, supernet has {self.spec.n_slots}")
        for i, b in arch.active:
            if b.kind not in self.spec.block_kinds or b.width not in self.spec.widths:
                raise CrossnasError(f"slot {i}: {b} is outside the supernet (kinds {self.spec.block_kinds}, "
                                    f"widths {self.spec.widths})")
        if not arch.active:
            raise CrossnasError("arch has no active block")

    # --- forward ----------------------------------------------------------------------------------
    def _noisy(self, w: torch.Tensor) -> torch.Tensor:
        if self.training and self.noise_sigma > 0:
            return w * (1 + self.noise_sigma * torch.randn_like(w))
        return w

    def _conv(self, mod: QuantConv2d, x, cout: int, wbits: int, abits: int, signed: bool):
        mod.weight_bits, mod.act_bits, mod.act_signed = wbits, abits, signed
        xq = mod.quant_input(x)
        w = self._noisy(mod.weight[:cout, : x.shape[1]])
        return F.conv2d(xq, fake_quant(w, wbits, weight_range(w), True), None, mod.stride, mod.padding)

    def _linear(self, mod: QuantLinear, x, bits: int):
        mod.weight_bits = mod.act_bits = bits
        mod.act_signed = False
        xq = mod.quant_input(x)
        w = self._noisy(mod.weight[:, : x.shape[1]])
        return F.linear(xq, fake_quant(w, bits, weight_range(w), True), mod.bias)

    def forward(self, x: torch.Tensor, arch: NetworkArch) -> torch.Tensor:
        first = True
        for i, b in arch.active:
            blk = self.slots[i][b.kind]
            key = str(b.width)
            h = F.relu(blk.bn1[key](self._conv(blk.conv1, x, b.width, b.wbits, b.abits, first)))
            h = blk.bn2[key](self._conv(blk.conv2, h, b.width, b.wbits, b.abits, False))
            if b.kind == "residual":
                h = h + blk.bn_sc[key](self._conv(blk.shortcut, x, b.width, b.wbits, b.abits, first))
            x = F.relu(h)
            if b.kind == "vgg_pool":
                x = F.max_pool2d(x, 2)
            first = False
        x = torch.flatten(F.adaptive_avg_pool2d(x, 2), 1)
        n = len(self.fcs)
        for j, fc in enumerate(self.fcs):
            x = self._linear(fc, x, arch.head_bits)
            if j < n - 1:
                x = F.dropout(F.relu(x), self.spec.dropout, self.training)
        return x

    def path_bns(self, arch: NetworkArch) -> list[nn.BatchNorm2d]:
        out = []
        for i, b in arch.active:
            blk = self.slots[i][b.kind]
            out += [blk.bn1[str(b.width)], blk.bn2[str(b.width)]]
            if b.kind == "residual":
                out.append(blk.bn_sc[str(b.width)])
        return out

    # --- extraction -------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: NetworkArch) -> SubNet:
        """Standalone module with sliced copies of the path's weights, BN stats and act ranges."""
        self.check_arch(arch)
        sub = build_subnet(arch, self.in_channels, self.num_classes, self.input_size,
                           head_hidden=self.spec.head_hidden, dropout=self.spec.dropout)
        cin = self.in_channels
        for i, b in arch.active:
            blk, key, dst = self.slots[i][b.kind], str(b.width), sub.blocks[i]
            _copy_conv(blk.conv1, dst.conv1, cin, b.width)
            _copy_conv(blk.conv2, dst.conv2, b.width, b.width)
            _copy_bn(blk.bn1[key], dst.bn1)
            _copy_bn(blk.bn2[key], dst.bn2)
            if b.kind == "residual":
                _copy_conv(blk.shortcut, dst.shortcut[0], cin, b.width)
                _copy_bn(blk.bn_sc[key], dst.shortcut[1])
            cin = b.width
        for j, fc in enumerate(self.fcs):
            new = getattr(sub.head, f"fc{j + 1}")
            new.weight.copy_(fc.weight[:, : new.in_features])
            new.bias.copy_(fc.bias)
            new.act_range.copy_(fc.act_range)
            new.momentum = fc.momentum
        p = next(self.parameters())
        return sub.to(device=p.device, dtype=p.dtype).train(self.training)


def build_subnet(arch: NetworkArch, in_channels: int, num_classes: int, input_size: int | None = None, *,
                 head_hidden: tuple[int, ...] = (200, 50), dropout: float = 0.1) -> SubNet:
    """A freshly initialised SubNet for `arch`, with the module structure, state_dict keys and per-layer
    bits that `Supernet.extract(arch)` gives (a supernet with these head sizes and dropout), so a saved
    subnet's weights load without the supernet. `input_size`, when given, is checked against the pools.
    """
    if not arch.active:
        raise CrossnasError("arch has no active block")
    if input_size is not None and input_size / 2**arch.n_pools < 1:
        raise CrossnasError(f"arch has {arch.n_pools} pools: too many for input size {input_size}")
    blocks: list[nn.Module] = []
    cin, first = int(in_channels), True
    for b in arch.blocks:
        if b.kind == "skip":
            blocks.append(nn.Identity())
            continue
        conv1 = _new_conv(cin, b.width, 3, b, first)
        conv2 = _new_conv(b.width, b.width, 3, b, False)
        bn1, bn2 = nn.BatchNorm2d(b.width), nn.BatchNorm2d(b.width)
        if b.kind == "residual":
            blocks.append(ResidualBlock(conv1, bn1, conv2, bn2, _new_conv(cin, b.width, 1, b, first),
                                        nn.BatchNorm2d(b.width)))
        else:
            mods = OrderedDict(conv1=conv1, bn1=bn1, relu1=nn.ReLU(), conv2=conv2, bn2=bn2, relu2=nn.ReLU())
            if b.kind == "vgg_pool":
                mods["pool"] = nn.MaxPool2d(2)
            blocks.append(nn.Sequential(mods))
        cin, first = b.width, False
    layers: OrderedDict = OrderedDict()
    dims = [4 * cin, *(int(h) for h in head_hidden), int(num_classes)]
    n = len(dims) - 1
    for j in range(n):
        layers[f"fc{j + 1}"] = QuantLinear(dims[j], dims[j + 1], weight_bits=arch.head_bits,
                                           act_bits=arch.head_bits, act_signed=False)
        if j < n - 1:
            layers[f"relu{j + 1}"] = nn.ReLU()
            layers[f"drop{j + 1}"] = nn.Dropout(dropout)
    return SubNet(blocks, Head(layers), arch)


def _new_conv(cin: int, cout: int, k: int, b: BlockArch, signed: bool) -> QuantConv2d:
    return QuantConv2d(cin, cout, k, padding=k // 2, bias=False, weight_bits=b.wbits, act_bits=b.abits,
                       act_signed=signed)


def _copy_conv(src: QuantConv2d, dst: QuantConv2d, cin: int, cout: int) -> None:
    dst.weight.copy_(src.weight[:cout, :cin])
    dst.act_range.copy_(src.act_range)
    dst.momentum = src.momentum


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d) -> None:
    dst.eps, dst.momentum = src.eps, src.momentum
    dst.load_state_dict(src.state_dict())


def _sample_from_space(space: Any, rng: np.random.Generator) -> NetworkArch:
    g = np.asarray(space.sample(rng, 1))
    return space.network_arch(g[0] if g.ndim > 1 else g)


def _space_sampler(space: Any) -> Callable[[np.random.Generator], NetworkArch] | None:
    # a partial of a module-level function, not a closure, so the supernet pickles (process pool, Ray)
    if not (hasattr(space, "sample") and hasattr(space, "network_arch")):
        return None
    return functools.partial(_sample_from_space, space)
