"""Search spaces: the base interface, a plain categorical space and the cross-layer space."""

from crossnas.space.arch import BLOCK_KINDS, BlockArch, CrossLayerArch, NetworkArch
from crossnas.space.base import Gene, Space
from crossnas.space.categorical import CategoricalSpace
from crossnas.space.crosslayer import CrossLayerSpace, CrossLayerSpec, load_spec
from crossnas.space.presets import get_space_preset, get_space_spec, list_space_presets, load_space

__all__ = [
    "BLOCK_KINDS",
    "BlockArch",
    "CategoricalSpace",
    "CrossLayerArch",
    "CrossLayerSpace",
    "CrossLayerSpec",
    "Gene",
    "NetworkArch",
    "Space",
    "get_space_preset",
    "get_space_spec",
    "list_space_presets",
    "load_space",
    "load_spec",
]
