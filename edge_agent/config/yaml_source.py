"""Parse config YAML safely into plain data, finding the line of a value again when an error needs it.

Safety: aliases are refused (no "billion laughs"), nesting depth is capped and the caller caps the input
size; only plain YAML types are constructed (safe loader). Scalars follow YAML 1.2's core schema, as most
current tools do: only ``true``/``false`` are booleans (``yes``, ``on``, ``N`` stay text), ``010`` is ten,
not octal eight, ``1e3`` is a number and dates stay text. Duplicate keys in a mapping are errors.

Memory: the data is built straight from the parser's events in one pass, so no node tree (two marks per
scalar, about 3.5 kB per config point) is ever held on the way to a valid config. Line numbers come from
re-parsing the text into nodes, once, when an error asks for its first line. Documents with rare YAML
features (anchors, tagged collections, merge keys, collection keys, several documents) are built through
the node tree as before, so they read exactly as they always did.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
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


def _int_from_text(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    return _int_from_text(str(loader.construct_scalar(node)))


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class YamlSourceError(Exception):
    """The text is not acceptable YAML; ``errors`` holds ``(line or None, message)`` pairs."""

    def __init__(self, errors: list[tuple[int | None, str]]) -> None:
        super().__init__("; ".join(msg for _, msg in errors))
        self.errors = errors


class YamlDocument:
    """A parsed document: its plain Python data, and :meth:`line` to find where a value was written."""

    def __init__(self, data: Any, text: str) -> None:
        self.data = data
        self._text = text
        self._root: Node | None = None
        self._composed = False

    def line(self, loc: tuple[str | int, ...]) -> int | None:
        """Line (1-based) of ``loc`` as :func:`node_line` finds it; the first call re-parses the text."""
        if not self._composed:
            self._root = _compose(self._text)
            self._composed = True
        return node_line(self._root, loc)


def _line(mark: Any) -> int | None:
    return int(mark.line) + 1 if mark is not None else None


def is_parser_depth_limit(exc: yaml.YAMLError) -> bool:
    """Whether ``exc`` is libyaml's own nesting limit (PyYAML >= 6.0.3 bundles a libyaml that stops at a
    depth far above ours and may reach it while scanning ahead, before our event check sees the depth)."""
    return isinstance(exc, yaml.MarkedYAMLError) and "maximum nesting depth" in (exc.problem or "")


def _syntax_error(exc: yaml.YAMLError) -> YamlSourceError:
    if is_parser_depth_limit(exc):
        assert isinstance(exc, yaml.MarkedYAMLError)
        return YamlSourceError([(_line(exc.problem_mark), f"nesting deeper than {MAX_DEPTH} levels")])
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


def _alias_error(event: AliasEvent) -> YamlSourceError:
    return YamlSourceError(
        [(_line(event.start_mark), f"YAML aliases (*{event.anchor}) are not allowed; write the value out")]
    )


def _depth_error(event: CollectionStartEvent) -> YamlSourceError:
    return YamlSourceError([(_line(event.start_mark), f"nesting deeper than {MAX_DEPTH} levels")])


def _screen_events(loader: Any, depth: int = 0) -> None:
    """Refuse aliases and excessive nesting in the events left in ``loader`` (``depth`` collections open)."""
    while (event := loader.get_event()) is not None:
        if isinstance(event, AliasEvent):
            raise _alias_error(event)
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _depth_error(event)
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


# ----------------------------------------------------------------------------------------- from events
def _null_from_text(text: str) -> None:
    return None


def _bool_from_text(text: str) -> bool:
    return text.lower() == "true"  # the resolver only lets true/True/TRUE/false/False/FALSE through


def _float_from_text(text: str) -> float:
    """SafeConstructor.construct_yaml_float for the texts the core-schema resolver accepts."""
    value = text.lower()
    sign = -1 if value[0] == "-" else 1
    if value[0] in "+-":
        value = value[1:]
    if value == ".inf":
        return sign * float(SafeConstructor.inf_value)
    if value == ".nan":
        return float(SafeConstructor.nan_value)
    return sign * float(value)


_IMPLICIT: dict[str, Callable[[str], Any]] = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:null": _null_from_text,
    "tag:yaml.org,2002:bool": _bool_from_text,
    "tag:yaml.org,2002:int": _int_from_text,
    "tag:yaml.org,2002:float": _float_from_text,
}
_EXPLICIT_SCALAR_TAGS = frozenset(_IMPLICIT) | {"tag:yaml.org,2002:binary", "tag:yaml.org,2002:timestamp"}
_PLAIN_TAGS = {
    MappingStartEvent: (None, "!", "tag:yaml.org,2002:map"),
    SequenceStartEvent: (None, "!", "tag:yaml.org,2002:seq"),
}
_NO_KEY = object()
_UNSEEN = object()


class _Exotic(Exception):
    """The document uses a feature left to the node tree: anchors, tagged collections, merge keys, ..."""


class _Mapping:
    """A mapping being built: its dict, the key waiting for its value, and the line of every key."""

    __slots__ = ("data", "key", "key_lines", "pairs")

    def __init__(self) -> None:
        self.data: dict[Any, Any] = {}
        self.key: Any = _NO_KEY
        self.key_lines: dict[tuple[str, str], int | None] = {}
        self.pairs = 0


def _tree_order(stack: list[_Mapping | list[Any]]) -> tuple[int, ...]:
    """Sort key putting the innermost open mapping where the node path's walk reaches it.

    That walk visits a node before its children and a node's children last to first (it pops a stack),
    so duplicate keys reported on one line keep the order they always had.
    """
    return tuple(
        -(len(frame) if isinstance(frame, list) else 2 * frame.pairs + (frame.key is not _NO_KEY))
        for frame in stack[:-1]
    )


def _data_from_events(loader: Any) -> Any:
    """The data of the one document in ``loader``, built in one pass over its parse events.

    Checks happen in the order of the node path: aliases, over-deep nesting and syntax errors are raised
    where they occur; duplicate keys are collected and raised at the end, and only without them a value
    that could not be constructed (e.g. an integer with 5000 digits). Raises :class:`_Exotic`, once the
    rest of the stream is screened, for a document the node path must build.
    """
    resolve = loader.resolve
    stack: list[_Mapping | list[Any]] = []
    root: Any = None
    documents = 0
    duplicates: list[tuple[int | None, tuple[int, ...], str]] = []
    failure: Exception | None = None
    shared: dict[str, dict[str, Any]] = {}  # tag -> text -> value: equal scalars share one object
    while (event := loader.get_event()) is not None:
        kind = type(event)
        if kind is ScalarEvent:
            tag = event.tag
            try:
                if event.anchor is not None:
                    raise _Exotic
                if tag is None or tag == "!":
                    tag = resolve(ScalarNode, event.value, event.implicit)
                    if tag not in _IMPLICIT:  # the merge key '<<' or the '!'/'&'/'*' of tag:yaml.org,2002:yaml
                        raise _Exotic
                    of_tag = shared.setdefault(tag, {})
                    value = of_tag.get(event.value, _UNSEEN)
                    if value is _UNSEEN:  # keys and values like 'type: uint16' repeat in every point
                        value = of_tag[event.value] = _IMPLICIT[tag](event.value)
                elif tag in _EXPLICIT_SCALAR_TAGS:
                    node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
                    value = loader.yaml_constructors[tag](loader, node)
                else:
                    raise _Exotic
            except _Exotic:
                _screen_events(loader, len(stack))
                raise
            except Exception as exc:  # raised at the end, after duplicate keys, as the node path would
                failure = failure or exc
                value = None
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if len(stack) >= MAX_DEPTH:
                raise _depth_error(event)
            key_wanted = bool(stack) and isinstance(stack[-1], _Mapping) and stack[-1].key is _NO_KEY
            if event.anchor is not None or event.tag not in _PLAIN_TAGS[kind] or key_wanted:
                _screen_events(loader, len(stack) + 1)
                raise _Exotic
            stack.append(_Mapping() if kind is MappingStartEvent else [])
            continue
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            done = stack.pop()
            value = done.data if isinstance(done, _Mapping) else done
        elif kind is AliasEvent:
            raise _alias_error(event)
        else:
            if kind is DocumentStartEvent:
                documents += 1
                if documents > 1:  # the node path raises "expected a single document"
                    _screen_events(loader)
                    raise _Exotic
            continue
        if not stack:
            root = value
            continue
        parent = stack[-1]
        if isinstance(parent, list):
            parent.append(value)
        elif parent.key is _NO_KEY:
            ident, line = (tag, event.value), _line(event.start_mark)
            if ident in parent.key_lines:
                first = parent.key_lines[ident]
                message = f"duplicate key '{event.value}' (first given on line {first})"
                duplicates.append((line, _tree_order(stack), message))
            else:
                parent.key_lines[ident] = line
            parent.key = value
        else:
            parent.data[parent.key] = value
            parent.key = _NO_KEY
            parent.pairs += 1
    if duplicates:
        duplicates.sort(key=lambda e: (e[0] or 0, e[1]))
        raise YamlSourceError([(line, message) for line, _, message in duplicates])
    if failure is not None:
        raise failure
    return root


# ----------------------------------------------------------------------------------------- from nodes
def _compose(text: str) -> Node | None:
    loader = _Yaml12Loader(text)
    try:
        root: Node | None = loader.get_single_node()
        return root
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


def _data_from_nodes(text: str) -> Any:
    """The data of ``text`` built through its node tree (screened already), for the rare YAML features."""
    loader = _Yaml12Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        duplicates = _duplicate_keys(root)
        if duplicates:
            raise YamlSourceError(duplicates)
        return loader.construct_document(root)
    finally:
        loader.dispose()


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document safely; raise :class:`YamlSourceError` with every problem found."""
    try:
        loader = _Yaml12Loader(text)
        try:
            data = _data_from_events(loader)
        except _Exotic:
            data = _data_from_nodes(text)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise _syntax_error(exc) from None
    except (ValueError, TypeError, RecursionError) as exc:  # e.g. an integer with 5000 digits
        raise YamlSourceError([(None, f"YAML value error: {exc}")]) from None
    return YamlDocument(data, text)


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
