"""crossnas: joint search of network, quantization and analog PIM hardware."""

# Heavy modules (torch) load on first use, so `import crossnas` stays cheap.
_LAZY = {"load_design": "crossnas.design", "save_design": "crossnas.design", "Design": "crossnas.design",
         "export_onnx": "crossnas.export"}

__all__ = sorted(_LAZY)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crossnas")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+source"


__version__ = _version()


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crossnas' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
