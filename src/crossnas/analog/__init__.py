"""Analog PIM inference simulator (docs/analog.md).

Parts: fold (BN folding, unmappable layers), plan (LayerPlan: every derived number), effects (device
physics by name), adc (quantiser, calibration, fast-fidelity noise), kernels (exact routes and dtypes),
core (one weight matrix on its crossbars), layers (PIMConv2d, PIMLinear), convert (to_pim, evaluate_pim).
Imported lazily so that config validation does not load torch.
"""

_EXPORTS = {"PIMConv2d": "layers", "PIMLinear": "layers", "PIMResult": "convert", "evaluate_pim": "convert",
            "fold_batchnorm": "fold", "pim_layers": "convert", "set_chip": "convert", "set_mode": "convert",
            "to_pim": "convert", "set_kernel": "kernels"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f"crossnas.analog.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'crossnas.analog' has no attribute {name!r}")
