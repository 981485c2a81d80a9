"""Reading user YAML files with errors that name the file and what was expected."""

from __future__ import annotations

from pathlib import Path

import yaml

from crossnas.errors import CrossnasError


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """The mapping in `path`; `what` names the expected content for the error message."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (FileNotFoundError, IsADirectoryError):
        raise CrossnasError(f"{path}: file not found (expected {what})") from None
    except yaml.YAMLError as e:
        raise CrossnasError(f"{path}: not valid YAML ({e.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise CrossnasError(f"{path}: expected a mapping ({what})")
    return data
