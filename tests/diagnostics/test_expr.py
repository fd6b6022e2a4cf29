"""The interlock expression language: grammar, semantics, errors with columns, hostile input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnostics.expr import MAX_DEPTH, MAX_LENGTH, ExpressionError, MissingValueError, parse_expression

VALUES = {"running": True, "tripped": False, "speed": 1480.0, "motor-plc/speed": 1480, "coil": 1, "zero": 0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("running", True),
        ("not tripped", True),
        ("running and speed > 100", True),
        ("running and speed > 2000", False),
        ("tripped or speed >= 1480", True),
        ("speed <= 1479.5", False),
        ("speed == 1480", True),
        ("speed != 1480", False),
        ("motor-plc/speed > 1e3", True),
        ("not (running and not tripped)", False),
        ("not not running", True),
        ("true", True),
        ("false or false", False),
        ("running and (tripped or speed > -1.5e2)", True),
        ("coil", True),
        ("zero", False),
        ("running == 1", True),
        ("a or b and c", None),  # precedence checked below
        ("speed > .5", True),
        ("  running\tand speed>100  ", True),
        ("running\n  and speed > 100", True),
    ],
)
def test_evaluates(text: str, expected: bool | None) -> None:
    if expected is None:
        e = parse_expression(text)
        # and binds tighter than or: a or (b and c)
        assert e.evaluate({"a": True, "b": False, "c": False}) is True
        assert e.evaluate({"a": False, "b": True, "c": False}) is False
        return
    assert parse_expression(text).evaluate(VALUES) is expected


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("", 1, "empty"),
        ("running and", 12, "ends too early"),
        ("running speed", 9, "unexpected 'speed'"),
        ("a < b < c", 7, "chained comparisons"),
        ("a = 1", 3, "use =="),
        ("!a", 1, "use 'not'"),
        ("(a and b", 9, "expected ')'"),
        ("a and b)", 8, "unexpected ')'"),
        ("a > 1.2.3", 5, "malformed number"),
        ("a > 3x", 5, "malformed number"),
        ("a > 1e400", 5, "out of range"),
        ("a + b > 1", 3, "unexpected character '+'"),
        ("speed > 'x'", 9, "unexpected character"),
        ("a and or b", 7, "unexpected 'or'"),
        ("> 3", 1, "unexpected '>'"),
        ("and", 1, "unexpected 'and'"),
    ],
)
def test_syntax_errors_name_the_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as err:
        parse_expression(text)
    assert err.value.column == column
    assert fragment in str(err.value)
    assert f"column {column}" in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('rm -rf /')",
        "().__class__.__bases__[0].__subclasses__()",
        "exec('print(1)')",
        "eval('1')",
        "open('/etc/passwd')",
        "lambda: 1",
        "a if b else c",
        "a; b",
        "[x for x in y]",
        "{1: 2}",
        "a.__class__ > 1 and b[0]",
        "speed > 1_000",
        "a @ b",
        "`a`",
        "ｒｕｎｎｉｎｇ",
        "a and \x00",
    ],
)
def test_hostile_input_is_rejected_without_running_anything(text: str) -> None:
    with pytest.raises(ExpressionError):
        parse_expression(text)


def test_names_with_dunder_are_only_lookups() -> None:
    # Looks like Python, but is just a name looked up in the values mapping.
    e = parse_expression("__class__ and os.system")
    assert e.names == frozenset({"__class__", "os.system"})
    with pytest.raises(MissingValueError, match=r"__class__, os\.system"):
        e.evaluate({})


def test_length_and_depth_are_bounded() -> None:
    with pytest.raises(ExpressionError, match=f"longer than {MAX_LENGTH}"):
        parse_expression("a and " * 100 + "a")
    deep = "(" * (MAX_DEPTH + 1) + "a" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse_expression(deep)
    with pytest.raises(ExpressionError, match="nested deeper"):
        parse_expression("not " * (MAX_DEPTH + 1) + "a")
    ok = "(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH
    assert parse_expression(ok).evaluate({"a": True}) is True


def test_unknown_names_caught_at_parse_time_when_names_are_known() -> None:
    with pytest.raises(ExpressionError, match="unknown name 'runing'") as err:
        parse_expression("runing and speed > 1", allowed_names=frozenset({"running", "speed"}))
    assert err.value.column == 1


def test_missing_and_wrongly_typed_values_are_named() -> None:
    e = parse_expression("running and speed > 100")
    with pytest.raises(MissingValueError, match="speed"):
        e.evaluate({"running": False})  # no short-circuit hides a missing value
    with pytest.raises(TypeError, match="'speed' must be a bool or a number"):
        e.evaluate({"running": True, "speed": "fast"})  # type: ignore[dict-item]


def test_nan_compares_false() -> None:
    assert parse_expression("speed > 1").evaluate({"speed": float("nan")}) is False
    assert parse_expression("speed != 1").evaluate({"speed": float("nan")}) is True


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        e = parse_expression(text)
    except ExpressionError:
        return
    values = dict.fromkeys(e.names, 1.0)
    assert e.evaluate(values) in (True, False)


names = st.sampled_from(["a", "b", "c"])


@st.composite
def exprs(draw: st.DrawFn, depth: int = 0) -> tuple[str, object]:
    """(text, python lambda over dict) pairs built side by side, to check semantics."""
    choice = draw(st.integers(0, 4 if depth < 4 else 1))
    if choice == 0:
        n = draw(names)
        return n, lambda v, n=n: v[n] != 0
    if choice == 1:
        n = draw(names)
        k = draw(st.integers(-3, 3))
        op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
        fns = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__,
               "==": float.__eq__, "!=": float.__ne__}
        f = fns[op]
        return f"{n} {op} {k}", lambda v, n=n, k=k, f=f: f(float(v[n]), float(k))
    if choice == 2:
        t, f = draw(exprs(depth + 1))
        return f"not ({t})", lambda v, f=f: not f(v)
    (t1, f1), (t2, f2) = draw(exprs(depth + 1)), draw(exprs(depth + 1))
    if choice == 3:
        return f"({t1}) and ({t2})", lambda v, f1=f1, f2=f2: f1(v) and f2(v)
    return f"({t1}) or ({t2})", lambda v, f1=f1, f2=f2: f1(v) or f2(v)


@settings(max_examples=300, deadline=None)
@given(exprs(), st.fixed_dictionaries({"a": st.integers(-3, 3), "b": st.integers(-3, 3), "c": st.integers(-3, 3)}))
def test_semantics_match_python_reference(pair: tuple[str, object], values: dict[str, int]) -> None:
    text, reference = pair
    expected = bool(reference(values))  # type: ignore[operator]
    assert parse_expression(text).evaluate(values) is expected
