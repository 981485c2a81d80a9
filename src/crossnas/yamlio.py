"""Reading user YAML files with errors that name the file and what was expected.

Aliases are bounded: a file of nested anchors ("billion laughs") is small on disk but expands to
gigabytes once copied, validated or printed, so a document whose expanded size exceeds `MAX_NODES`
nodes is refused before anything is built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from crossnas.errors import CrossnasError, short

MAX_NODES = 100_000  # a hardware or run config has a few hundred


def _expanded_size(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded (aliases share node objects: memoised by id)."""
    memo: dict[int, int] = {}
    order, stack = [], [root]
    while stack:  # post-order without recursion: deep nesting must not blow the stack either
        node = stack.pop()
        if id(node) in memo:
            continue
        memo[id(node)] = -1
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        memo[id(node)] = min(MAX_NODES + 1, 1 + sum(memo[id(c)] for c in _children(node)))
    return memo[id(root)]


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for kv in node.value for n in kv]
    return []


def safe_load(text: str) -> Any:
    """yaml.safe_load with the expanded size bounded; raises yaml.YAMLError or CrossnasError."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node) > MAX_NODES:
            raise CrossnasError(f"expands to more than {MAX_NODES} values through YAML aliases (*name); "
                                "write the values out")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml_mapping(path: str | Path, what: str) -> dict:
    """The mapping in `path`; `what` names the expected content for the error message."""
    path = Path(path)
    try:
        data = safe_load(path.read_bytes().decode("utf-8")) or {}
    except (FileNotFoundError, IsADirectoryError):
        raise CrossnasError(f"{path}: file not found (expected {what})") from None
    except UnicodeDecodeError:
        raise CrossnasError(f"{path}: not UTF-8 text (expected {what}; save it as UTF-8)") from None
    except OSError as e:
        raise CrossnasError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise CrossnasError(f"{path}: not valid YAML ({e.__class__.__name__}{_where(e)})") from None
    except CrossnasError as e:
        raise CrossnasError(f"{path}: {e}") from None
    if not isinstance(data, dict):
        raise CrossnasError(f"{path}: expected a mapping ({what})")
    return data


def parse_value(text: str, field: str) -> Any:
    """A `--set KEY=VALUE` value as YAML (8, 0.1, true, null, [1, 2], {a: 1}); errors name the field."""
    try:
        return safe_load(text)
    except yaml.YAMLError as e:
        raise CrossnasError(f"--set {short(field, 60)}: {short(text, 40)!r} is not a valid YAML value "
                            f"({e.__class__.__name__}{_where(e)}; quote strings, close brackets)") from None
    except CrossnasError as e:
        raise CrossnasError(f"--set {short(field, 60)}: {e}") from None


def _where(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    return f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
