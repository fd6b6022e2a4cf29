"""Property tests: unit parsers against their definitions, and the loader never fails in any other way
than a ConfigError, whatever text it is given."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from diagnostics.expr import parse_expression
from edge_agent.config import (
    ModbusPoint,
    ModbusTcpDevice,
    ThresholdRule,
    load_config_data,
    load_config_text,
    parse_byte_size,
    parse_classic_address,
    parse_config_text,
    parse_duration,
    parse_frequency,
    parse_rate_per_minute,
)
from edge_agent.errors import ConfigError

EXAMPLE = (Path(__file__).resolve().parents[1] / "config" / "example.yaml").read_text()
FULL_EXAMPLE = (Path(__file__).resolve().parents[1] / "config" / "full-example.yaml").read_text()
RATE_UNITS_PER_MIN = {"s": 60.0, "sec": 60.0, "m": 1.0, "min": 1.0, "h": 1 / 60}
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DURATION_UNITS_S = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
SIZE_UNITS_B = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


@SETTINGS
@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(DURATION_UNITS_S)))
def test_duration_is_number_times_unit(number: int, unit: str) -> None:
    assert parse_duration(f"{number}{unit}") == pytest.approx(number * DURATION_UNITS_S[unit])


@SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(0, 1000), st.sampled_from(["d", "h", "m", "s", "ms"])), min_size=1, max_size=4
    )
)
def test_chained_durations_add_up(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == pytest.approx(sum(n * DURATION_UNITS_S[u] for n, u in parts))


@SETTINGS
@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(SIZE_UNITS_B)))
def test_size_is_number_times_unit(number: int, unit: str) -> None:
    assert parse_byte_size(f"{number}{unit}") == number * SIZE_UNITS_B[unit]


@SETTINGS
@given(st.floats(min_value=0, max_value=1e6, allow_nan=False), st.sampled_from([("Hz", 1.0), ("kHz", 1e3)]))
def test_frequency_is_number_times_unit(number: float, unit: tuple[str, float]) -> None:
    assert parse_frequency(f"{number!r}{unit[0]}") == pytest.approx(number * unit[1])


@SETTINGS
@given(
    st.sampled_from([("0", "coil"), ("1", "discrete"), ("3", "input"), ("4", "holding")]),
    st.integers(min_value=0, max_value=65535),
)
def test_classic_notation_round_trips(prefix_table: tuple[str, str], address: int) -> None:
    prefix, table = prefix_table
    six_digits = f"{prefix}{address + 1:05d}"
    assert parse_classic_address(six_digits) == (table, address)
    if address < 9999:
        assert parse_classic_address(f"{prefix}{address + 1:04d}") == (table, address)


def _load_or_config_error(text: str) -> None:
    try:
        load_config_text(text, "fuzz.yaml")
    except ConfigError as exc:
        assert exc.errors and all(e.startswith("fuzz.yaml") for e in exc.errors)


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_gives_config_errors_only(text: str) -> None:
    _load_or_config_error(text)


def _mangle(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        action = rng.choice(["drop", "dup", "swap_value", "indent", "truncate"])
        if action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "swap_value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = (
                key
                + ": "
                + rng.choice(
                    ["", "x", "-1", "[]", "{}", "1e9", "true", "'40001'", "12kHz", "rate", "a and", "1/s"]
                )
            )
        elif action == "indent":
            lines[i] = " " + lines[i]
        elif action == "truncate":
            lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
    return "\n".join(lines) + "\n"


@SETTINGS
@given(st.randoms(use_true_random=False))
def test_mangled_example_gives_config_errors_only(rng: random.Random) -> None:
    _load_or_config_error(_mangle(EXAMPLE, rng))


@SETTINGS
@given(st.randoms(use_true_random=False))
def test_mangled_full_example_gives_config_errors_only(rng: random.Random) -> None:
    _load_or_config_error(_mangle(FULL_EXAMPLE, rng))


WHEN_CONFIG = """\
agent: {id: gw-1, site: plant}
mqtt: {url: "mqtt://127.0.0.1:1883"}
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    points:
      - {name: temp, address: 0}
      - {name: running, table: coil, address: 0}
assets:
  - {name: pump, points: [plc/temp, plc/running]}
rules:
  - {point: plc/temp, high: 80, when: WHEN}
"""
WHEN_NAMES = {"temp", "running", "plc/temp", "plc/running"}
_WHEN_ATOMS = st.sampled_from(
    ["temp", "running", "plc/temp", "plc/running", "tmp", "plc/x", "1", "2.5e1", "true"]
)


@st.composite
def _when_texts(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        atom = draw(_WHEN_ATOMS)
        if draw(st.booleans()):
            operator = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!=", "=", "<>"]))
            atom = f"{atom} {operator} {draw(_WHEN_ATOMS)}"
        return atom
    left, right = draw(_when_texts(depth + 1)), draw(_when_texts(depth + 1))
    return draw(st.sampled_from([f"{left} and {right}", f"{left} or {right}", f"not ({left})", f"({left}"]))


@SETTINGS
@given(st.one_of(_when_texts(), st.text(max_size=40)))
def test_when_expressions_load_only_with_known_names(when: str) -> None:
    text = WHEN_CONFIG.replace("WHEN", json.dumps(when))
    try:
        cfg = load_config_text(text, "when.yaml")
    except ConfigError as exc:
        assert exc.errors and all(e.startswith("when.yaml") for e in exc.errors)
        return
    (rule,) = cfg.rules
    assert isinstance(rule, ThresholdRule) and rule.when == when
    assert parse_expression(when).names <= WHEN_NAMES


@SETTINGS
@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(RATE_UNITS_PER_MIN)))
def test_rate_is_number_times_unit(number: int, unit: str) -> None:
    assert parse_rate_per_minute(f"{number}/{unit}") == pytest.approx(number * RATE_UNITS_PER_MIN[unit])


POINT_TYPES = ["int16", "uint16", "int32", "float32", "int64", "float64"]


@st.composite
def _register_points(draw: st.DrawFn) -> list[dict[str, object]]:
    count = draw(st.integers(min_value=2, max_value=12))
    points: list[dict[str, object]] = []
    for i in range(count):
        point: dict[str, object] = {
            "name": f"p{i}",
            "table": draw(st.sampled_from(["holding", "input"])),
            "address": draw(st.integers(min_value=0, max_value=40)),
        }
        if draw(st.booleans()):
            point.update(type="bool", bit=draw(st.integers(min_value=0, max_value=2)))
        else:
            point["type"] = draw(st.sampled_from(POINT_TYPES))
        points.append(point)
    return points


def _brute_force_overlaps(points: list[ModbusPoint]) -> set[frozenset[str]]:
    pairs: set[frozenset[str]] = set()
    for i, a in enumerate(points):
        for b in points[i + 1 :]:
            if a.table != b.table or (a.bit is None) != (b.bit is None):
                continue
            if a.bit is not None:
                clash = a.address == b.address and a.bit == b.bit
            else:
                clash = (
                    a.address < b.address + b.register_span() and b.address < a.address + a.register_span()
                )
            if clash:
                pairs.add(frozenset((a.name, b.name)))
    return pairs


@SETTINGS
@given(_register_points())
def test_overlap_check_finds_exactly_the_overlapping_pairs(raw_points: list[dict[str, object]]) -> None:
    points = [ModbusPoint.model_validate(p) for p in raw_points]
    expected = _brute_force_overlaps(points)
    device = {"name": "plc", "protocol": "modbus_tcp", "host": "h", "points": raw_points}
    try:
        ModbusTcpDevice.model_validate(device)
        found: set[frozenset[str]] = set()
    except ValidationError as exc:
        (error,) = exc.errors()
        found = set()
        for loc, msg in error["ctx"]["issues"]:
            later = points[loc[1]].name
            earlier = msg.split("overlaps point '", 1)[1].split("'", 1)[0]
            found.add(frozenset((later, earlier)))
    assert found == expected


def _paths(node: object, here: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every path to a value (mappings by key, lists by index) inside ``node``."""
    out: list[tuple[object, ...]] = [here] if here else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*here, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*here, i))
    return out


def _replaced(node: object, path: tuple[object, ...], value: object) -> object:
    copy = json.loads(json.dumps(node))
    target = copy
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return copy


def test_every_value_of_the_full_example_replaced_by_a_wrong_type_gives_config_errors_only() -> None:
    data = parse_config_text(FULL_EXAMPLE)
    wrong: list[object] = [None, [], {}, "x", -1, True, 1e308]
    for path in _paths(data):
        for value in wrong:
            try:
                load_config_data(_replaced(data, path, value), "swap")
            except ConfigError as exc:
                assert exc.errors and all(e.startswith("swap: ") for e in exc.errors), (path, value)
