"""Defences for remote input: payload limits, YAML/JSON shape checks, rate limits, local-only settings.

Everything here runs before a payload reaches the YAML loader, the JSON parser or the config applier,
so a hostile or broken message costs bounded time and memory and is refused with a precise reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge_agent.remote.errors import LocalOnlyRefused, PayloadRefused, RateLimited

if TYPE_CHECKING:
    import yaml

# Settings a remote config may never change: they decide who may push and whether PLC writes happen.
# Each with the value a config that leaves it out gets (so spelling out the default is no change).
LOCAL_ONLY_PATHS: dict[tuple[str, ...], Any] = {
    ("remote", "require_signature"): False,
    ("remote", "public_key_file"): None,
}
# Keys that enable writes to a PLC; a remote config may switch them off, never on.
WRITE_ENABLE_KEYS = frozenset({"writable", "allow_writes", "writes_enabled"})
# Explicit YAML tags a config may use: YAML 1.1 core scalars and collections, nothing that builds objects.
ALLOWED_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null",
                                                                    "map", "seq", "timestamp"))


def _fast_safe_loader() -> Any:
    """libyaml's parser when built (~10x faster than the pure-Python one; the same events and marks).

    PyYAML loads on the first remote payload, not with the agent: a gateway that is never configured
    remotely does not keep it in memory.
    """
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class PayloadLimits:
    """Bounds on one remote payload: bytes, nesting depth (YAML and JSON), and YAML node count."""

    max_bytes: int = 256 * 1024
    max_depth: int = 32
    max_nodes: int = 200_000


def decode_utf8(payload: bytes, limits: PayloadLimits, what: str = "payload") -> str:
    """Return ``payload`` as text after checking its size and that it is UTF-8 without NUL characters."""
    if len(payload) > limits.max_bytes:
        raise PayloadRefused(f"{what} is {len(payload)} bytes, the limit is {limits.max_bytes} bytes; "
                             "send a smaller document (or a merge patch of the changes)", code="too_large")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadRefused(f"{what} is not UTF-8 text (invalid byte at offset {exc.start})") from None
    if "\x00" in text:
        raise PayloadRefused(f"{what} contains a NUL character at offset {text.index(chr(0))}; send text")
    return text


def check_yaml_safety(text: str, limits: PayloadLimits, source: str = "<remote>") -> None:
    """Refuse YAML that uses anchors/aliases (billion-laughs), custom tags, or nests deeper than allowed.

    Walks the parser's event stream (no objects are built), so a hostile document costs time linear in
    its size. Error messages carry ``source:LINE``.
    """
    import yaml

    from edge_agent.config.yaml_source import is_parser_depth_limit

    depth = 0
    nodes = 0
    try:
        for event in yaml.parse(text, Loader=_fast_safe_loader()):
            line = event.start_mark.line + 1 if event.start_mark is not None else 0
            if isinstance(event, yaml.AliasEvent):
                raise PayloadRefused(f"{source}:{line}: YAML alias *{event.anchor} is not accepted in remote "
                                     "configs (aliases allow 'billion laughs' bombs); write the value out")
            if isinstance(event, yaml.NodeEvent):
                nodes += 1
                if event.anchor is not None:
                    raise PayloadRefused(f"{source}:{line}: YAML anchor &{event.anchor} is not accepted in "
                                         "remote configs; write the values out instead of anchoring them")
                tag = getattr(event, "tag", None)
                if tag is not None and tag != "!" and tag not in ALLOWED_TAGS:
                    raise PayloadRefused(f"{source}:{line}: YAML tag {tag} is not accepted; remove it")
                if nodes > limits.max_nodes:
                    raise PayloadRefused(f"{source}: more than {limits.max_nodes} YAML nodes; "
                                         "send a smaller document")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > limits.max_depth:
                    raise PayloadRefused(f"{source}:{line}: nesting deeper than {limits.max_depth} levels; "
                                         "a config never needs that much")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError as exc:
        if is_parser_depth_limit(exc):
            assert isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None
            raise PayloadRefused(f"{source}:{exc.problem_mark.line + 1}: nesting deeper than {limits.max_depth} "
                                 "levels; a config never needs that much") from None
        raise _yaml_refusal(exc, source) from None


def _yaml_refusal(exc: yaml.YAMLError, source: str) -> PayloadRefused:
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        return PayloadRefused(f"{where}: not valid YAML: {exc.problem}")
    return PayloadRefused(f"{source}: not valid YAML: {exc}")


def load_yaml_mapping(text: str, limits: PayloadLimits, source: str = "<remote>") -> dict[str, Any]:
    """Check ``text`` with :func:`check_yaml_safety`, then load it; it must be a mapping (a config)."""
    import yaml

    check_yaml_safety(text, limits, source)
    try:
        data = yaml.load(text, Loader=_fast_safe_loader())  # safe: the safe loader, libyaml-backed when built
    except yaml.YAMLError as exc:
        raise _yaml_refusal(exc, source) from None
    except (ValueError, KeyError, AttributeError, TypeError, OverflowError) as exc:
        # PyYAML's constructors raise plain errors for values like 2020-13-45 or `!!int x`.
        raise PayloadRefused(f"{source}: a value cannot be read ({type(exc).__name__}: {exc}); "
                             "quote it if it is meant as text") from None
    if not isinstance(data, dict):
        raise PayloadRefused(f"{source}: a config must be a YAML mapping (agent:, mqtt:, devices: …), "
                             f"got {type(data).__name__}")
    return data


def json_nesting_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting in JSON ``text``, ignoring brackets inside strings (linear time)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json_object(text: str, limits: PayloadLimits, what: str = "payload") -> dict[str, Any]:
    """Parse ``text`` as a JSON object after a depth check (Python's parser recurses per level)."""
    deepest = json_nesting_depth(text)
    if deepest > limits.max_depth:
        raise PayloadRefused(f"{what} nests {deepest} levels deep, the limit is {limits.max_depth}")
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as exc:
        raise PayloadRefused(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise PayloadRefused(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# --- rate limits -------------------------------------------------------------------------------------


class TokenBucket:
    """Classic token bucket: ``burst`` tokens, refilled at ``rate_per_s``; one token per request."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError(f"{rate_per_s=} must be > 0 and {burst=} at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()

    def try_take(self) -> float:
        """Take a token and return 0.0, or return the seconds until one is available (nothing taken)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_per_s


#: Most buckets a RateLimiter keeps; later keys share one (the callers' keys are a fixed set anyway).
MAX_RATE_KEYS = 1000


class RateLimiter:
    """One :class:`TokenBucket` per key (command name, ``config``), created on first use."""

    def __init__(self, rate_per_min: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate_per_s = rate_per_min / 60.0
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        TokenBucket(self._rate_per_s, burst, clock)  # validate the arguments now, not on first request

    def check(self, key: str) -> None:
        """Raise :class:`RateLimited` when ``key`` has used up its budget, saying when to retry."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_RATE_KEYS:  # bounded, and never by forgetting what was spent
                key = "<other>"
                bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self._rate_per_s, self._burst, self._clock)
        wait_s = bucket.try_take()
        if wait_s > 0:
            raise RateLimited(f"too many {key!r} requests (limit {self._rate_per_s * 60:g}/min, burst "
                              f"{self._burst}); retry in {wait_s:.1f} s")


# --- local-only settings ------------------------------------------------------------------------------


def check_local_only(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """Refuse a remote config that changes a local-only setting; the message lists every violation.

    Local-only: the paths in :data:`LOCAL_ONLY_PATHS` (signature requirement and key), and any object
    carrying a write-enable key (``writable: true``): such an object must be unchanged from the running
    config, so a remote push can neither enable PLC writes nor redirect an existing writable point.
    """
    problems: list[str] = []
    for path, default in LOCAL_ONLY_PATHS.items():
        before, after = _get_path(old, path, default), _get_path(new, path, default)
        if before != after:
            problems.append(f"{'.'.join(path)}: changed from {before!r} to {after!r}; this setting is "
                            "local-only, edit the config file on the gateway")
    old_objects = dict(_keyed_objects(old, ""))
    new_objects = dict(_keyed_objects(new, ""))
    for where, obj in new_objects.items():
        enabled = sorted(k for k in WRITE_ENABLE_KEYS if obj.get(k))
        if not enabled:
            continue
        if old_objects.get(where) != obj:
            verb = "enables" if not any(old_objects.get(where, {}).get(k) for k in enabled) else "changes"
            problems.append(f"{where}: remote config {verb} a writable point ({enabled[0]}: true); "
                            "PLC writes are local-only, edit the config file on the gateway")
            continue
        # The point is unchanged, but what encloses it (its device's host, port, unit id...) says where the
        # writes go: that must not change either.
        for outer in (p for p in new_objects if p != "<root>" and where.startswith((p + ".", p + "["))):
            moved = sorted(k for k in set(_scalars(new_objects[outer])) | set(_scalars(old_objects.get(outer, {})))
                           if _scalars(new_objects[outer]).get(k) != _scalars(old_objects.get(outer, {})).get(k))
            if moved:
                problems.append(f"{outer}: remote config changes {', '.join(moved)} of a device with a writable "
                                f"point ({where}); PLC writes are local-only, edit the config file on the gateway")
    if problems:
        raise LocalOnlyRefused("; ".join(problems))


def _scalars(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``obj`` that are plain values (not nested objects or lists)."""
    return {k: v for k, v in obj.items() if not isinstance(v, dict | list)}


def _get_path(data: Mapping[str, Any], path: tuple[str, ...], default: Any) -> Any:
    node: Any = data
    for key in path:
        if not isinstance(node, Mapping) or node.get(key) is None:
            return default
        node = node[key]
    return node


def _keyed_objects(node: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every mapping in ``node`` with a stable path: list items are named by ``name`` (or ``point``)."""
    if isinstance(node, dict):
        yield where or "<root>", node
        for key, value in node.items():
            yield from _keyed_objects(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            label: Any = index
            if isinstance(item, dict):
                label = item.get("name", item.get("point", index))
            yield from _keyed_objects(item, f"{where}[{label}]")
