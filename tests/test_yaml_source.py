"""The config YAML reader: data built from parse events, line numbers found again only for errors.

Config-level behaviour (error lines, aliases, nesting, did-you-mean) is in test_config*.py; these pin the
reader itself: YAML 1.2 core-schema scalars, the rare features read through the node tree, the order of its
checks, and that a document holds no node tree while it parses.
"""

from __future__ import annotations

import math
import tracemalloc

import pytest

from edge_agent.config.yaml_source import YamlSourceError, parse_yaml


def _errors(text: str) -> list[tuple[int | None, str]]:
    with pytest.raises(YamlSourceError) as info:
        parse_yaml(text)
    return info.value.errors


def test_core_schema_scalars() -> None:
    text = (
        "a: 010\nb: 0o17\nc: 0x1F\nd: -12\ne: +3\nf: 1e3\ng: .5\nh: -0.0\ni: -.inf\nj: .NaN\n"
        "k: true\nl: FALSE\nm: yes\nn: ~\no:\np: 2001-12-14\nq: 1_000\nr: '010'\ns: 1:20\n"
    )
    data = parse_yaml(text).data
    assert {k: v for k, v in data.items() if k not in ("h", "j")} == {
        "a": 10, "b": 15, "c": 31, "d": -12, "e": 3, "f": 1000.0, "g": 0.5, "i": -math.inf,
        "k": True, "l": False, "m": "yes", "n": None, "o": None, "p": "2001-12-14", "q": "1_000",
        "r": "010", "s": "1:20",
    }  # fmt: skip
    assert math.copysign(1.0, data["h"]) == -1.0 and data["h"] == 0.0
    assert math.isnan(data["j"])
    assert [type(data[k]) for k in "afk"] == [int, float, bool]


def test_explicit_tags_on_scalars() -> None:
    text = "a: !!str 010\nb: !!int '0x1f'\nc: !!float '1_000.5'\nd: !!bool yes\ne: !!binary aGk=\n"
    assert parse_yaml(text).data == {"a": "010", "b": 31, "c": 1000.5, "d": True, "e": b"hi"}


def test_rare_features_read_as_through_the_node_tree() -> None:
    assert parse_yaml("a: !!set {x, y}\n").data == {"a": {"x", "y"}}
    assert parse_yaml("a: !!omap [{x: 1}, {y: 2}]\n").data == {"a": [("x", 1), ("y", 2)]}
    assert parse_yaml("b: 2\n<<: [{a: 1}, {b: 3, c: 4}]\n").data == {"a": 1, "b": 2, "c": 4}
    assert parse_yaml("a: &anchor 1\nb: 2\n").data == {"a": 1, "b": 2}


def test_collection_keys_are_refused_as_unhashable() -> None:
    [(line, message)] = _errors("a: 1\n? [x, y]\n: 1\n")
    assert line == 2 and "found unhashable key" in message


def test_duplicate_keys_name_both_lines_in_order() -> None:
    text = "a: 1\nb:\n  c: 1\n  c: 2\nx: [{k: 1, k: 2}]\na: 3\n"
    assert _errors(text) == [
        (4, "duplicate key 'c' (first given on line 3)"),
        (5, "duplicate key 'k' (first given on line 5)"),
        (6, "duplicate key 'a' (first given on line 1)"),
    ]
    # a quoted '1' is text, a plain 1 a number: different keys; the same text written twice is not
    assert parse_yaml("1: a\n'1': b\n").data == {1: "a", "1": "b"}
    assert _errors("'1': a\n!!str 1: b\n") == [(2, "duplicate key '1' (first given on line 1)")]


def test_duplicate_keys_win_over_values_that_cannot_be_built() -> None:
    huge = "1" * 5000  # more digits than int() converts
    assert _errors(f"a: {huge}\nb: 1\nb: 2\n") == [(3, "duplicate key 'b' (first given on line 2)")]
    [(line, message)] = _errors(f"a: {huge}\n")
    assert line is None and message.startswith("YAML value error: Exceeds the limit")


def test_aliases_and_syntax_errors_anywhere_win_over_duplicates() -> None:
    assert _errors("a: 1\na: 2\nb: *x\n") == [(3, "YAML aliases (*x) are not allowed; write the value out")]
    [(line, message)] = _errors("a: 1\na: 2\nb: [1, 2\n")
    assert line == 4 and message.startswith("YAML syntax error:")


def test_a_second_document_is_refused() -> None:
    [(line, message)] = _errors("a: 1\n---\nb: 2\n")
    assert line == 2 and "another document" in message and "remove the '---' separator" in message
    assert _errors("a: 1\n---\nb: *x\n")[0][1].startswith("YAML aliases (*x)")  # screened to the end first


def test_lines_of_locations() -> None:
    text = "# header\nagent:\n  id: gw\npoints:\n  - {name: a, address: 0}\n  - name: b\n    address: 1\n"
    document = parse_yaml(text)
    assert document.line(()) == 2
    assert document.line(("agent", "id")) == 3
    assert document.line(("points", 1, "address")) == 7
    assert document.line(("points", 0, "address")) == 5
    assert document.line(("points", 9, "name")) == 4  # the deepest location present: the key 'points'
    assert document.line(("agent", "nope")) == 2


def test_parsing_holds_no_node_tree() -> None:
    # A node tree costs about 3.4 kB per point like these (two marks per scalar); the data about 0.3 kB.
    n_points = 2000
    text = "points:\n" + "".join(
        f"  - {{name: p{i:05d}, address: {i}, type: uint16, scale: 0.01}}\n" for i in range(n_points)
    )
    parse_yaml("warm: up\n")
    tracemalloc.start()
    try:
        document = parse_yaml(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(document.data["points"]) == n_points
    assert peak < 1000 * n_points
