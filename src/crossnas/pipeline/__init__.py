"""`crossnas run`: the end-to-end pipeline (supernet, search, retrain, final evaluation, report)."""

from __future__ import annotations

from pathlib import Path

from crossnas.errors import CrossnasError

# the config and runner pull in torch: imported on first use so `import crossnas.pipeline` stays cheap
_LAZY = {"RunConfig": "crossnas.pipeline.config", "load_run_config": "crossnas.pipeline.config",
         "RunResult": "crossnas.pipeline.run", "run_pipeline": "crossnas.pipeline.run"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crossnas.pipeline' has no attribute {name!r}")


PRESET_DIR = Path(__file__).parent / "presets"


def list_run_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def resolve_config_path(spec: str | Path) -> Path:
    """A YAML path, or the name of a shipped preset (demo, fashion-mnist, cifar10, cifar10-paper)."""
    path = Path(spec)
    if path.is_file():
        return path
    preset = PRESET_DIR / f"{spec}.yaml"
    if preset.is_file():
        return preset
    known = ", ".join(list_run_presets())
    raise CrossnasError(f"config: {spec} is neither a file nor a run preset ({known})")


__all__ = ["RunConfig", "RunResult", "list_run_presets", "load_run_config", "resolve_config_path",
           "run_pipeline"]
