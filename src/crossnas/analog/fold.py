"""Before mapping: BatchNorm folded into the preceding convolution, and the layers that cannot be mapped.

What maps onto crossbars is decided by `crossnas.cost.mapping_rules.mappable` (Conv1d, Conv2d incl. grouped
and depthwise, Linear), the one predicate the cost model uses too.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _NormBase

from crossnas.cost.mapping_rules import mappable

_CONV = (nn.Conv1d, nn.Conv2d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _fold_pair(conv: nn.Module, bn: nn.Module) -> None:
    with torch.no_grad():
        std = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.affine else torch.ones_like(std)
        beta = bn.bias if bn.affine else torch.zeros_like(std)
        f = gamma / std
        conv.weight.mul_(f.reshape(-1, *[1] * (conv.weight.dim() - 1)).to(conv.weight.dtype))
        b0 = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        nb = beta + (b0 - bn.running_mean) * f
        if conv.bias is None:
            conv.bias = nn.Parameter(nb.to(conv.weight.dtype))
        else:
            conv.bias.copy_(nb)


def _pairs_ok(conv, bn) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)) or (
        isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d))


def _fx_pairs(model: nn.Module) -> list[tuple[str, str]] | None:
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception:  # noqa: BLE001 - untraceable models fall back to the module walk
        return None
    mods = dict(model.named_modules())
    pairs = []
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(mods.get(node.target), _BN):
            src = node.args[0] if node.args else None
            if (isinstance(src, torch.fx.Node) and src.op == "call_module"
                    and _pairs_ok(mods.get(src.target), mods.get(node.target)) and len(src.users) == 1):
                pairs.append((src.target, node.target))
    return pairs


def _walk_pairs(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for pname, parent in model.named_modules():
        pre = f"{pname}." if pname else ""
        kids = list(parent.named_children())
        used = set()
        for (n1, m1), (n2, m2) in zip(kids, kids[1:]):
            if _pairs_ok(m1, m2):
                pairs.append((pre + n1, pre + n2))
                used.add(n2)
        names = dict(kids)
        for n, m in kids:  # conv1 -> bn1 style names, registered out of order
            if isinstance(m, _CONV) and n.startswith("conv"):
                bn = "bn" + n[4:]
                if bn not in used and _pairs_ok(m, names.get(bn)):
                    pairs.append((pre + n, pre + bn))
                    used.add(bn)
    return pairs


# modules with parameters that are digital periphery on a PIM chip (not matrix-vector products)
_DIGITAL_OK = (_NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.PReLU)


def unmappable_layers(model: nn.Module) -> list[tuple[str, str]]:
    """(name, reason) of every module owning weights that is neither `mappable` (Conv1d, Conv2d, Linear)
    nor a normalisation (Conv3d, ConvTranspose, RNNs, attention, embeddings, bilinear, ...)."""
    out: list[tuple[str, str]] = []
    for n, mod in model.named_modules():
        if any(n.startswith(b + ".") for b, _ in out):
            continue  # inside a module already listed
        if mappable(mod) or isinstance(mod, _DIGITAL_OK):
            continue
        if any(True for _ in mod.parameters(recurse=False)):
            why = "owns parameters used outside" if n == "" else "is not"
            out.append((n or "(model)", f"{type(mod).__name__} {why} a Conv1d, Conv2d or Linear layer"))
    return out


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm1d/2d that directly follows a Conv1d/Conv2d into it (in place); the BN becomes
    Identity.

    Pairs are found by torch.fx tracing (BN whose input is a conv output used only by it); untraceable
    models fall back to consecutive children of one parent (Sequential, shortcut.0 -> shortcut.1) and
    convN -> bnN names.
    """
    pairs = _fx_pairs(model)
    if pairs is None:
        pairs = _walk_pairs(model)
    for conv_name, bn_name in pairs:
        _fold_pair(model.get_submodule(conv_name), model.get_submodule(bn_name))
        parent_name, _, child = bn_name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, nn.Identity())
    return model
