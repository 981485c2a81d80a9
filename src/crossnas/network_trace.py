"""One forward pass that sees every op: module hooks for matrix layers, a torch function mode for the rest.

Inside a matrix module (`mapping_rules.mappable`) or a known digital module the inner calls are not looked
at; everywhere else each torch function call is sorted: element-wise activation -> `act`, element-wise
tensor-tensor add/sub/mul -> `add`, pooling or a spatial reduction -> `pool`, shape bookkeeping and inference
no-ops (view, flatten, cat, dropout, batch_norm: folded into the conv) -> free, anything else -> not costed
(listed, never silently dropped). Names are `<innermost module>.<op>` (made unique with `#n`).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from crossnas.cost.mapping_rules import mappable
from crossnas.errors import CrossnasError

ACTIVATIONS = frozenset({
    "abs", "celu", "clamp", "clamp_", "clip", "elu", "elu_", "exp", "gelu", "hardshrink", "hardsigmoid",
    "hardswish", "hardswish_", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "logsigmoid", "mish",
    "prelu", "relu", "relu6", "relu_", "rrelu", "selu", "sigmoid", "sigmoid_", "silu", "silu_",
    "softplus", "softshrink", "softsign", "tanh", "tanh_", "tanhshrink", "threshold"
})
BINARY = frozenset({
    "__add__", "__iadd__", "__imul__", "__isub__", "__itruediv__", "__mul__", "__radd__", "__rmul__",
    "__rsub__", "__sub__", "__truediv__", "add", "add_", "div", "maximum", "minimum", "mul", "mul_",
    "sub", "sub_"
})
POOLS = frozenset({
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d",
    "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices", "amax",
    "avg_pool1d", "avg_pool2d", "lp_pool1d", "lp_pool2d", "max_pool1d", "max_pool1d_with_indices",
    "max_pool2d", "max_pool2d_with_indices", "mean", "sum"
})
FREE = frozenset({
    "__and__", "__bool__", "__contains__", "__eq__", "__format__", "__get__", "__getitem__", "__hash__",
    "__iter__", "__len__", "__ne__", "__neg__", "__or__", "__repr__", "__setitem__",
    "_has_compatible_shallow_copy_type", "alpha_dropout", "as_strided", "batch_norm", "cat", "ceil",
    "chunk", "clone", "concat", "contiguous", "cpu", "cuda", "data_ptr", "detach", "device", "dim",
    "double", "dropout", "dropout1d", "dropout2d", "dtype", "empty", "expand", "expand_as",
    "feature_alpha_dropout", "flatten", "flatten_parameters", "flip", "float", "floor", "get_device",
    "half", "identity", "is_floating_point", "item", "movedim", "narrow", "ndimension", "neg", "nelement",
    "new_empty", "new_ones", "new_zeros", "numel", "ones", "ones_like", "pad", "permute", "repeat",
    "requires_grad_", "reshape", "roll", "round", "sign", "size", "split", "split_with_sizes", "squeeze",
    "stack", "swapaxes", "t", "tile", "to", "tolist", "transpose", "trunc", "type", "unbind", "unflatten",
    "unsqueeze", "view", "zeros", "zeros_like"
})
# Digital modules whose inner calls are one layer (the analog side costs them as such)
_MAX, _AVG = ("pool", "max"), ("pool", "avg")
DIGITAL_MODULES = {
    nn.MaxPool1d: _MAX, nn.MaxPool2d: _MAX, nn.AdaptiveMaxPool1d: _MAX, nn.AdaptiveMaxPool2d: _MAX,
    nn.AvgPool1d: _AVG, nn.AvgPool2d: _AVG, nn.AdaptiveAvgPool1d: _AVG, nn.AdaptiveAvgPool2d: _AVG,
    nn.ReLU: ("act", "relu"), nn.ReLU6: ("act", "relu"),
}
FREE_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Identity,
                nn.Flatten)


def _first_tensor(args):
    for a in args:
        if isinstance(a, torch.Tensor):
            return a
        if isinstance(a, (list, tuple)):
            t = _first_tensor(a)
            if t is not None:
                return t
    return None


class _Mode(TorchFunctionMode):
    def __init__(self, tracer):
        super().__init__()
        self.t = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.t.depth == 0:
            self.t.on_call(func, args, out)
        return out


class _Tracer:
    def __init__(self, make_spec):
        self.make_spec = make_spec
        self.records, self.skipped, self.stack, self.depth = [], [], [], 0
        self.names: dict[str, int] = {}

    def unique(self, name: str) -> str:
        n = self.names.get(name, 0)
        self.names[name] = n + 1
        return name if n == 0 else f"{name}#{n}"

    def on_call(self, func, args, out):
        from crossnas.network import digital_spec

        op = getattr(func, "__name__", str(func))
        if op in FREE or not isinstance(out, torch.Tensor):
            return
        x = _first_tensor(args)
        if x is None:
            return
        where = self.stack[-1] if self.stack else "model"
        if op in ACTIVATIONS or (op in BINARY and not _is_binary(args)):
            name = self.unique(f"{where}.{op.strip('_')}")
            self.records.append(digital_spec(name, "act", op.strip("_"), x, out))
        elif op in BINARY:
            self.records.append(digital_spec(self.unique(f"{where}.{op.strip('_')}"), "add", "add", x, out))
        elif op in POOLS:
            if op in ("mean", "sum", "amax") and out.dim() >= x.dim() and out.numel() == x.numel():
                return
            self.records.append(digital_spec(self.unique(f"{where}.{op}"), "pool", op, x, out))
        else:
            self.skipped.append(f"{where} ({op})")


def _is_binary(args) -> bool:
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    return len(tensors) >= 2 and all(t.dim() > 0 for t in tensors[:2])


def trace(model: nn.Module, input_shape, make_spec):
    """(layer specs, names of what could not be costed) of one forward pass on zeros of `input_shape`."""
    from crossnas.network import digital_spec

    tr = _Tracer(make_spec)
    hooks = []

    def pre(name, mod):
        def fn(m, inputs):
            tr.stack.append(name or "model")
            if mappable(m) or type(m) in DIGITAL_MODULES or isinstance(m, FREE_MODULES):
                tr.depth += 1
        return fn

    def post(name, mod):
        def fn(m, inputs, output):
            tr.stack.pop()
            known = mappable(m) or type(m) in DIGITAL_MODULES or isinstance(m, FREE_MODULES)
            if known:
                tr.depth -= 1
            if tr.depth:
                return
            x = inputs[0] if inputs else None
            if mappable(m):
                tr.records.append(make_spec(name, m, x, output))
            elif type(m) in DIGITAL_MODULES:
                kind, op = DIGITAL_MODULES[type(m)]
                tr.records.append(digital_spec(name, kind, op, x, output))
        return fn

    for name, mod in model.named_modules():
        hooks.append(mod.register_forward_pre_hook(pre(name, mod)))
        hooks.append(mod.register_forward_hook(post(name, mod)))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        dev = param.device if param is not None else torch.device("cpu")
        with torch.no_grad(), _Mode(tr):
            model(torch.zeros((1, *input_shape), device=dev))
    except Exception as e:  # noqa: BLE001 - any failure means the model cannot be traced
        raise CrossnasError(f"model cannot be traced on input {tuple(input_shape)}: {e}") from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return tr.records, tr.skipped
