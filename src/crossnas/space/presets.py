"""Named cross-layer space presets (YAML files next to this module)."""

from __future__ import annotations

from pathlib import Path

from crossnas.errors import CrossnasError
from crossnas.space.crosslayer import CrossLayerSpace, CrossLayerSpec, load_spec

SPACE_PRESET_DIR = Path(__file__).parent / "presets"


def list_space_presets() -> list[str]:
    return sorted(p.stem for p in SPACE_PRESET_DIR.glob("*.yaml"))


def get_space_spec(name: str) -> CrossLayerSpec:
    path = SPACE_PRESET_DIR / f"{name}.yaml"
    if not path.exists():
        raise CrossnasError(f"space preset {name!r} unknown; known: {', '.join(list_space_presets())}")
    return load_spec(path)


def get_space_preset(name: str, input_size: int | None = None) -> CrossLayerSpace:
    return CrossLayerSpace(get_space_spec(name), input_size=input_size)


def load_space(path: str | Path, input_size: int | None = None) -> CrossLayerSpace:
    return CrossLayerSpace(load_spec(path), input_size=input_size)
