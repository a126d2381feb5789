"""The one way this layer reads YAML: safe types, no aliases, no repeated keys.

The safe loader never builds Python objects, but it still expands aliases: a few
hundred bytes of nested ``&a``/``*a`` references ("billion laughs") become a value
whose every use costs gigabytes and minutes. Export documents and settings never
need aliases, so a document with one is refused before anything is built from it.
A key repeated in one mapping is refused too, naming its line: YAML would keep the
last one silently.
"""

from __future__ import annotations

from typing import IO, Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from .codec import JSON_MAX_DEPTH
from .exceptions import ValidationError
from .types import SAFE_YAML_LOADER


def load_yaml(source: str | bytes | IO[str], *, what: str) -> Any:
    """The document in ``source`` as plain data; ``ValidationError`` starting with ``what``."""
    loader = SAFE_YAML_LOADER(source)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_tree(node, what)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ValidationError(f"{what}: malformed YAML{_where(error)}: {_problem(error)}") from None
    except RecursionError:  # PyYAML composes nested nodes recursively
        raise ValidationError(
            f"{what}: YAML nested too deeply (JSON columns take at most {JSON_MAX_DEPTH} levels)"
        ) from None
    finally:
        loader.dispose()


def _check_tree(root: Node, what: str) -> None:
    """Refuse a node reached twice (an alias) and a mapping key given twice."""
    seen: set[int] = set()
    pending = [root]
    while pending:
        node = pending.pop()
        if id(node) in seen:
            raise ValidationError(
                f"{what}: YAML aliases (*name) are not accepted, found one at line "
                f"{node.start_mark.line + 1}"
            )
        seen.add(id(node))
        if isinstance(node, MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                if not isinstance(key, MappingNode | SequenceNode):
                    name = (key.tag, key.value)
                    if name in keys:
                        raise ValidationError(
                            f"{what}: key {str(key.value)[:64]!r} appears twice in one mapping "
                            f"(again at line {key.start_mark.line + 1})"
                        )
                    keys.add(name)
                pending.append(key)
                pending.append(value)
        elif isinstance(node, SequenceNode):
            pending.extend(node.value)


def _where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    return f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""


def _problem(error: yaml.YAMLError) -> str:
    return str(getattr(error, "problem", None) or "not valid YAML")
