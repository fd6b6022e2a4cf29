"""Parse config YAML safely, keeping the line of every node so errors can point at it.

Safety: aliases are refused (no "billion laughs"), nesting depth is capped and the caller caps the input
size; only plain YAML types are constructed (safe loader). Scalars follow YAML 1.2's core schema, as most
current tools do: only ``true``/``false`` are booleans (``yes``, ``on``, ``N`` stay text), ``010`` is ten,
not octal eight, ``1e3`` is a number and dates stay text. Duplicate keys in a mapping are errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_DEPTH = 32

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_DROPPED_TAGS = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:value",
}


class _Yaml12Loader(_Loader):  # type: ignore[misc,valid-type]
    """Safe loader with YAML 1.2 core-schema scalars."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class YamlSourceError(Exception):
    """The text is not acceptable YAML; ``errors`` holds ``(line or None, message)`` pairs."""

    def __init__(self, errors: list[tuple[int | None, str]]) -> None:
        super().__init__("; ".join(msg for _, msg in errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed document: the plain Python data and the node tree it came from (for line numbers)."""

    data: Any
    root: Node | None


def _line(mark: Any) -> int | None:
    return int(mark.line) + 1 if mark is not None else None


def _syntax_error(exc: yaml.YAMLError) -> YamlSourceError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if "tab" in problem or "'\\t'" in problem:
            problem += " (YAML indents with spaces, not tabs)"
        if "another document" in problem:
            problem += " (a config file holds one YAML document; remove the '---' separator)"
        if mark is not None:
            problem += f" (column {mark.column + 1})"
        return YamlSourceError([(_line(mark), f"YAML syntax error: {problem}")])
    return YamlSourceError([(None, f"YAML syntax error: {exc}")])


def _screen_events(text: str) -> None:
    """Refuse aliases and excessive nesting before anything is built (cheap: one pass over parse events)."""
    loader = _Yaml12Loader(text)
    try:
        depth = 0
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, AliasEvent):
                raise YamlSourceError(
                    [
                        (
                            _line(event.start_mark),
                            f"YAML aliases (*{event.anchor}) are not allowed; write the value out",
                        )
                    ]
                )
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise YamlSourceError(
                        [(_line(event.start_mark), f"nesting deeper than {MAX_DEPTH} levels")]
                    )
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _duplicate_keys(root: Node) -> list[tuple[int | None, str]]:
    errors: list[tuple[int | None, str]] = []
    stack: list[Node] = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            first_line: dict[tuple[str, str], int | None] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode):
                    ident = (key.tag, key.value)
                    if ident in first_line:
                        errors.append(
                            (
                                _line(key.start_mark),
                                f"duplicate key '{key.value}' (first given on line {first_line[ident]})",
                            )
                        )
                    else:
                        first_line[ident] = _line(key.start_mark)
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    errors.sort(key=lambda e: e[0] or 0)
    return errors


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document safely; raise :class:`YamlSourceError` with every problem found."""
    try:
        _screen_events(text)
        loader = _Yaml12Loader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                return YamlDocument(None, None)
            duplicates = _duplicate_keys(root)
            if duplicates:
                raise YamlSourceError(duplicates)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. an integer with 5000 digits
        raise YamlSourceError([(None, f"YAML value error: {exc}")]) from None
    return YamlDocument(data, root)


def node_line(root: Node | None, loc: tuple[str | int, ...]) -> int | None:
    """Line (1-based) of the deepest node of ``loc`` present in the tree; keys report their own line."""
    if root is None:
        return None
    node: Node = root
    line = _line(root.start_mark)
    for part in loc:
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.value == str(part):
                    line, node = _line(key.start_mark), value
                    break
            else:
                return line
        elif isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = _line(node.start_mark)
        else:
            return line
    return line
