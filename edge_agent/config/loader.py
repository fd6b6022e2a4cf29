"""Load a config from YAML (file or text) or from decoded JSON, reporting every error at once.

Each error is one line, ``FILE:LINE: field.path[0].name: what is wrong (and how to fix it)``; from JSON data
there are no line numbers (``SOURCE: path: message``). All of them arrive together in one
:class:`~edge_agent.errors.ConfigError`.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Union

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edge_agent.config._base import ISSUES_ERROR_TYPE, Loc, format_loc
from edge_agent.config.models import DEVICE_MODELS, UNION_TAGS, AgentConfig
from edge_agent.config.references import reference_issues
from edge_agent.config.rules import RULE_MODELS, rule_kind
from edge_agent.config.text import (
    DEFAULT_MAX_BYTES,
    config_sections,
    kind_of,
    line_prefix,
    parse_config_document,
)
from edge_agent.errors import ConfigError

SECTIONS = config_sections()

Locator = Callable[[Loc], int | None]


# ----------------------------------------------------------------------------------------- entry points
def load_config(path: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES) -> AgentConfig:
    """Read, parse and validate the YAML config at ``path``; raise ConfigError listing every problem.

    Files larger than ``max_bytes`` are refused before parsing.
    """
    source = str(path)
    try:
        with open(path, "rb") as file:
            raw = file.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read the config file: {exc.strerror or exc}"]) from exc
    if len(raw) > max_bytes:
        raise ConfigError([f"{source}: the config file is larger than the limit of {max_bytes} bytes"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{source}: the config file is not UTF-8 text (bad byte at offset {exc.start})"]
        ) from None
    return load_config_text(text, source, max_bytes=max_bytes)


def load_config_text(
    text: str, source: str = "<string>", *, max_bytes: int = DEFAULT_MAX_BYTES
) -> AgentConfig:
    """Parse and validate YAML ``text``; raise ConfigError naming ``source`` and the line of each problem."""
    document = parse_config_document(text, source, max_bytes)
    return _validate(document.data, source, document.line)


def load_config_data(obj: object, source: str = "<data>") -> AgentConfig:
    """Validate already-decoded data (JSON); errors carry field paths but no line numbers."""
    if not isinstance(obj, Mapping):
        raise ConfigError(
            [
                f"{source}: the top level must be an object of sections ({', '.join(SECTIONS)}), "
                f"not {kind_of(obj)}"
            ]
        )
    return _validate(dict(obj), source, None)


# ----------------------------------------------------------------------------------------- validation
def _validate(data: dict[str, Any], source: str, locate: Locator | None) -> AgentConfig:
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = _problems(exc, data)
    else:
        problems = _driver_problems(config) + _rule_problems(config)
        if not problems:
            return config
    lines: list[tuple[int, int | None, str]] = []
    for order, (loc, msg) in enumerate(problems):
        line = locate(loc) if locate is not None else None
        path = format_loc(loc)
        text = f"{path}: {msg}" if path else msg
        lines.append((order, line, line_prefix(source, line) + text))
    lines.sort(key=lambda item: (item[1] if item[1] is not None else 0, item[0]))
    raise ConfigError([text for _, _, text in lines]) from None


def _driver_problems(config: AgentConfig) -> list[tuple[Loc, str]]:
    """What the Modbus driver would refuse in a config the models accept (a bool register point without a
    bit, a point wider than the device's max_registers...): found here, with file and line, so that
    ``edge-agent check`` says it instead of ``edge-agent run`` failing at start-up."""
    from edge_agent.config.modbus import ModbusDeviceBase
    from edge_agent.driver_factory import modbus_device_spec, modbus_point_spec

    problems: list[tuple[Loc, str]] = []
    for i, device in enumerate(config.devices):
        if not isinstance(device, ModbusDeviceBase):
            continue
        bad_point = False
        for j, point in enumerate(device.points):
            try:
                modbus_point_spec(device, point)
            except ValueError as exc:
                problems.append((("devices", i, "points", j), str(exc)))
                bad_point = True
        if not bad_point:
            try:
                modbus_device_spec(device)
            except ValueError as exc:
                problems.append((("devices", i), str(exc)))
    return problems


def _rule_problems(config: AgentConfig) -> list[tuple[Loc, str]]:
    """What the alarm diagnostics would refuse in rules the models accept (limits closer than twice the
    deadband, a rate deadband not below the rate limits, a trend window the predictor cannot cut...): the
    rules are built here as the agent builds them at start-up, so ``check`` refuses what ``run`` would."""
    from edge_agent.rule_builder import build_rules

    problems: list[tuple[int, str]] = []
    build_rules(config, {}, problems)
    return [(("rules", index), message) for index, message in problems]


def _problems(exc: ValidationError, data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Human ``(loc, message)`` pairs for a validation failure, plus cross-section problems."""
    problems: list[tuple[Loc, str]] = []
    checked_references = False
    for error in exc.errors():
        if error["type"] == ISSUES_ERROR_TYPE:
            checked_references |= error["loc"] == ()
            for sub_loc, msg in error.get("ctx", {}).get("issues", []):
                problems.append((_clean_loc(data, error["loc"] + tuple(sub_loc)), msg))
        else:
            problems.append(_humanize(error, _clean_loc(data, error["loc"]), data))
    if not checked_references:  # structure errors stopped the model before its cross-section checks
        problems.extend(reference_issues(data))
    return list(dict.fromkeys(problems))  # a problem seen by a device and by the raw-data checks counts once


def _clean_loc(data: object, loc: tuple[str | int, ...]) -> Loc:
    """Drop the union tags pydantic inserts (``devices.0.modbus_tcp.host`` -> ``devices[0].host``)."""
    clean: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        after_index = i > 0 and isinstance(loc[i - 1], int)  # tags follow the list index of a union item
        if after_index and part in UNION_TAGS and (not isinstance(node, Mapping) or part in _tags_of(node)):
            continue
        if part == "[key]":
            continue
        clean.append(part)
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(clean)


def _tags_of(item: Mapping[str, Any]) -> tuple[object, object]:
    """The union tags an item of ``devices`` or ``rules`` selects: its protocol and its rule kind."""
    return item.get("protocol"), rule_kind(dict(item))


# ----------------------------------------------------------------------------------------- messages
_MESSAGES: dict[str, str] = {
    "int_type": "expected a whole number, got {input}",
    "int_parsing": "expected a whole number, got {input}",
    "int_from_float": "expected a whole number, got {input}",
    "float_type": "expected a number, got {input}",
    "float_parsing": "expected a number, got {input}",
    "bool_type": "expected true or false, got {input}",
    "bool_parsing": "expected true or false, got {input}",
    "string_type": "expected text, got {input} (quote it if it should be text)",
    "list_type": "expected a list, got {input}",
    "dict_type": "expected a mapping (key: value), got {input}",
    "model_type": "expected a mapping (key: value), got {input}",
    "model_attributes_type": "expected a mapping (key: value), got {input}",
    "path_type": "expected a file path, got {input}",
    "greater_than": "must be greater than {gt}, got {input}",
    "greater_than_equal": "must be at least {ge}, got {input}",
    "less_than": "must be less than {lt}, got {input}",
    "less_than_equal": "must be at most {le}, got {input}",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "takes at most {max_length} item(s)",
    "string_too_short": "must not be empty",
    "string_too_long": "is too long (at most {max_length} characters)",
    "string_pattern_mismatch": "{input} does not match the pattern {pattern}",
    "finite_number": "must be a finite number, got {input}",
}


def _humanize(error: ErrorDetails, loc: Loc, data: dict[str, Any]) -> tuple[Loc, str]:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    field = next((str(p) for p in reversed(loc) if isinstance(p, str)), "value")
    if "severity" in loc:
        field = "severity"
    elif "component_levels" in loc[-2:-1]:
        field = f"log level of {loc[-1]}"
    elif loc and isinstance(loc[-1], int) and field.endswith("s"):
        field = field[:-1]  # an item of a list: statistics[1] -> statistic
    if kind == "extra_forbidden":
        return loc, _unknown_key(loc, data)
    if kind == "missing":
        return loc[:-1], f"missing required field '{loc[-1]}'" if loc else "missing required field"
    if kind == "literal_error":
        allowed = _allowed_literals(loc, data) or re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return loc, _unknown_value(field, value, allowed)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag_field = "protocol" if loc[:1] == ("devices",) else "kind"
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", ""))) or list(DEVICE_MODELS)
        if kind == "union_tag_not_found":
            return loc, f"missing required field '{tag_field}' (one of: {', '.join(allowed)})"
        return (*loc, tag_field), _unknown_value(tag_field, ctx.get("tag"), allowed)
    if kind in _MESSAGES:
        try:
            return loc, _MESSAGES[kind].format(
                input=_show(value), **{k: _show_ctx(v) for k, v in ctx.items()}
            )
        except (KeyError, IndexError):  # a pydantic version with other context keys: use its own text
            pass
    message = str(error["msg"])
    return loc, message.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _unknown_key(loc: Loc, data: dict[str, Any]) -> str:
    key = str(loc[-1]) if loc else "?"
    model = _model_at(loc[:-1], data)
    if model is None:
        return f"unknown key '{key}'"
    fields = list(model.model_fields)
    elsewhere = _owners_elsewhere(model, key)
    if elsewhere:  # e.g. 'port' on a serial device: a close match ('points') would mislead
        return (f"unknown key '{key}' here: it is a setting of {elsewhere} (allowed here: {', '.join(fields)})")
    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    return f"unknown key '{key}' (allowed here: {', '.join(fields)})"


def _owners_elsewhere(model: type[BaseModel], key: str) -> str:
    """Which sibling models (other device protocols, the other protocol's points) have the field ``key``."""
    from edge_agent.config.modbus import ModbusPoint
    from edge_agent.config.opcua import OpcuaPoint

    devices: dict[type[BaseModel], str] = {cls: f"{protocol} devices" for protocol, cls in DEVICE_MODELS.items()}
    points: dict[type[BaseModel], str] = {ModbusPoint: "Modbus points", OpcuaPoint: "OPC UA points"}
    for family in (devices, points):
        if model in family:
            owners = [name for cls, name in family.items() if cls is not model and key in cls.model_fields]
            return ", ".join(owners)
    return ""


def _unknown_value(field: str, value: object, allowed: list[str]) -> str:
    shown = _show(value)
    by_lower = {option.lower(): option for option in allowed}
    close = difflib.get_close_matches(str(value).lower(), list(by_lower), n=1, cutoff=0.5)
    hint = f" (did you mean '{by_lower[close[0]]}'?)" if close else ""
    return f"unknown {field} {shown}{hint}; allowed: {', '.join(allowed)}"


def _show(value: object) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 60 else value[:57] + "..."
        return f"'{text}'"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _show_ctx(value: object) -> str:
    return str(value) if not isinstance(value, str) else value


# ----------------------------------------------------------------------------------------- model walking
def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation, with Annotated and None stripped."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out.extend(_unwrap(arg))
        return out
    return [annotation]


def _pick_model(options: list[Any], raw: object) -> type[BaseModel] | None:
    models = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
    if len(models) > 1 and isinstance(raw, Mapping):
        tag = raw.get("protocol")
        if isinstance(tag, str) and tag in DEVICE_MODELS and DEVICE_MODELS[tag] in models:
            return DEVICE_MODELS[tag]
        kind = rule_kind(dict(raw))
        if kind in RULE_MODELS and RULE_MODELS[kind] in models:
            return RULE_MODELS[kind]
    return models[0] if len(models) == 1 else None


def _annotation_at(loc: Loc, data: object) -> list[Any]:
    """The type alternatives found at ``loc`` when walking AgentConfig's fields alongside the raw data."""
    options: list[Any] = [AgentConfig]
    raw = data
    for part in loc:
        model = _pick_model(options, raw)
        if model is not None and isinstance(part, str):
            if part not in model.model_fields:
                return []
            options = _unwrap(model.model_fields[part].annotation)
        else:
            containers = [o for o in options if typing.get_origin(o) in (list, dict)]
            if not containers:
                return []
            options = _unwrap(typing.get_args(containers[0])[-1])
        raw = (
            raw.get(part)
            if isinstance(raw, Mapping)
            else (
                raw[part]
                if isinstance(raw, list) and isinstance(part, int) and 0 <= part < len(raw)
                else None
            )
        )
    return options


def _model_at(loc: Loc, data: object) -> type[BaseModel] | None:
    raw: object = data
    for part in loc:
        raw = (
            raw.get(part)
            if isinstance(raw, Mapping)
            else (
                raw[part]
                if isinstance(raw, list) and isinstance(part, int) and 0 <= part < len(raw)
                else None
            )
        )
    return _pick_model(_annotation_at(loc, data), raw)


def _allowed_literals(loc: Loc, data: object) -> list[str]:
    return [
        str(arg)
        for option in _annotation_at(loc, data)
        if typing.get_origin(option) is Literal
        for arg in typing.get_args(option)
    ]
