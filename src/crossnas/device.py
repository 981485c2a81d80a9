"""Device resolution shared by training and benchmarks: "auto" | "cpu" | "cuda"."""

from __future__ import annotations

import torch

from crossnas.errors import CrossnasError


def resolve_device(name: str = "auto") -> torch.device:
    """cuda when available for "auto"; "cuda" without a GPU is an error, not a silent fallback."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CrossnasError(f"device: {name!r} requested but CUDA is not available (use 'cpu' or 'auto')")
        return torch.device(name)
    raise CrossnasError(f"device: expected 'auto', 'cpu' or 'cuda', got {name!r}")
