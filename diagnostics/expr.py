"""A tiny, safe boolean expression language for interlocks, e.g. ``running and speed > 100``.

Grammar (keywords are lower case)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand (("<" | "<=" | ">" | ">=" | "==" | "!=") operand)?
    operand    := NUMBER | "true" | "false" | NAME | "(" expr ")"

``NAME`` starts with a letter or ``_`` and may contain letters, digits and ``_ . / : -`` so point
names such as ``motor-plc/speed`` work as they are. ``NUMBER`` is a decimal with optional sign,
fraction and exponent. There is no arithmetic and no function call, and chained comparisons
(``a < b < c``) are rejected: write ``a < b and b < c``.

The text is parsed by a hand-written tokenizer and recursive-descent parser into a small tree that is
evaluated against a mapping of values; nothing is ever handed to ``eval``, ``exec`` or ``ast``.
Length (:data:`MAX_LENGTH` characters) and nesting (:data:`MAX_DEPTH`) are bounded. Numbers used as
conditions are true when non-zero (a coil read as 1 means on); booleans compare as 0 and 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MAX_LENGTH = 500
MAX_DEPTH = 32

Scalar = bool | int | float
CompareOp = Literal["<", "<=", ">", ">=", "==", "!="]
_COMPARE_OPS: tuple[str, ...] = ("<=", ">=", "==", "!=", "<", ">")
_KEYWORDS = frozenset({"and", "or", "not", "true", "false"})
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_REST = _NAME_START | frozenset("0123456789./:-")
_DIGITS = frozenset("0123456789")


class ExpressionError(ValueError):
    """The expression text is invalid; ``column`` is 1-based."""

    def __init__(self, message: str, text: str, column: int) -> None:
        super().__init__(f"{message} at column {column} in {text!r}")
        self.column = column


class MissingValueError(KeyError):
    """Evaluation needed a name the values mapping does not have."""


# ---- tree ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Const:
    """A literal number or boolean."""

    value: Scalar


@dataclass(frozen=True, slots=True)
class Name:
    """A reference to a value by name."""

    name: str


@dataclass(frozen=True, slots=True)
class Not:
    """Logical negation."""

    operand: Node


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``and`` / ``or`` over two or more operands."""

    op: Literal["and", "or"]
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Compare:
    """A single comparison of two operands."""

    op: CompareOp
    left: Node
    right: Node


Node = Const | Name | Not | BoolOp | Compare


# ---- tokenizer -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    """One token: ``kind`` is 'num', 'name', 'kw', 'op', '(' , ')' or 'end'; ``col`` is 1-based."""

    kind: str
    text: str
    col: int


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raise :class:`ExpressionError` naming the column of a bad character."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c in " \t\r\n":
            i += 1
        elif c in "()":
            tokens.append(Token(c, c, col))
            i += 1
        elif c in "<>=!":
            two = text[i : i + 2]
            if two in _COMPARE_OPS:
                tokens.append(Token("op", two, col))
                i += 2
            elif c in "<>":
                tokens.append(Token("op", c, col))
                i += 1
            else:
                hint = "use == for equality" if c == "=" else "use 'not' for negation or != for inequality"
                raise ExpressionError(f"unexpected {c!r} ({hint})", text, col)
        elif c in _DIGITS or c == "." or (c in "+-" and i + 1 < n and (text[i + 1] in _DIGITS or text[i + 1] == ".")):
            j = i + 1 if c in "+-" else i
            while j < n and text[j] in _DIGITS:
                j += 1
            if j < n and text[j] == ".":
                j += 1
                while j < n and text[j] in _DIGITS:
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k] in _DIGITS:
                    while k < n and text[k] in _DIGITS:
                        k += 1
                    j = k
            literal = text[i:j]
            if j < n and text[j] in _NAME_REST and text[j] not in "-":
                raise ExpressionError(f"malformed number {text[i : j + 1]!r}", text, col)
            try:
                value = float(literal)
            except ValueError:
                raise ExpressionError(f"malformed number {literal!r}", text, col) from None
            if not math.isfinite(value):
                raise ExpressionError(f"number {literal!r} is out of range", text, col)
            tokens.append(Token("num", literal, col))
            i = j
        elif c in _NAME_START:
            j = i + 1
            while j < n and text[j] in _NAME_REST:
                j += 1
            word = text[i:j]
            tokens.append(Token("kw" if word in _KEYWORDS else "name", word, col))
            i = j
        else:
            raise ExpressionError(f"unexpected character {c!r}", text, col)
    tokens.append(Token("end", "", n + 1))
    return tokens


# ---- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def fail(self, message: str, tok: Token) -> ExpressionError:
        return ExpressionError(message, self.text, tok.col)

    def enter(self, tok: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"expression nested deeper than {MAX_DEPTH} levels", tok)

    def parse(self) -> Node:
        node = self.or_expr()
        tok = self.peek()
        if tok.kind != "end":
            raise self.fail(f"unexpected {tok.text!r} (expected 'and', 'or' or the end)", tok)
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.peek().kind == "kw" and self.peek().text == "or":
            self.take()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.peek().kind == "kw" and self.peek().text == "and":
            self.take()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def not_expr(self) -> Node:
        tok = self.peek()
        if tok.kind == "kw" and tok.text == "not":
            self.take()
            self.enter(tok)
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        left = self.operand()
        tok = self.peek()
        if tok.kind != "op":
            return left
        self.take()
        right = self.operand()
        after = self.peek()
        if after.kind == "op":
            raise self.fail(
                "chained comparisons are not supported (write 'a < b and b < c')", after
            )
        return Compare(tok.text, left, right)  # type: ignore[arg-type]

    def operand(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return Const(float(tok.text))
        if tok.kind == "name":
            return Name(tok.text)
        if tok.kind == "kw" and tok.text in ("true", "false"):
            return Const(tok.text == "true")
        if tok.kind == "(":
            self.enter(tok)
            node = self.or_expr()
            close = self.take()
            if close.kind != ")":
                raise self.fail(f"expected ')' to close '(' at column {tok.col}", close)
            self.depth -= 1
            return node
        if tok.kind == "end":
            raise self.fail("expression ends too early (expected a value, a name or '(')", tok)
        raise self.fail(f"unexpected {tok.text!r} (expected a value, a name or '(')", tok)


# ---- compiled expression ---------------------------------------------------------------------


def _names(node: Node, out: set[str]) -> None:
    if isinstance(node, Name):
        out.add(node.name)
    elif isinstance(node, Not):
        _names(node.operand, out)
    elif isinstance(node, BoolOp):
        for op in node.operands:
            _names(op, out)
    elif isinstance(node, Compare):
        _names(node.left, out)
        _names(node.right, out)


def _number(v: Scalar) -> float:
    return float(v)


def _truth(v: Scalar) -> bool:
    return v != 0 if not isinstance(v, bool) else v


def _eval(node: Node, values: Mapping[str, Scalar]) -> Scalar:
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Name):
        return values[node.name]
    if isinstance(node, Not):
        return not _truth(_eval(node.operand, values))
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(_truth(_eval(op, values)) for op in node.operands)
        return any(_truth(_eval(op, values)) for op in node.operands)
    a, b = _number(_eval(node.left, values)), _number(_eval(node.right, values))
    op = node.op
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    if op == ">=":
        return a >= b
    if op == "==":
        return a == b
    return a != b


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression; :meth:`evaluate` it against a mapping of name to bool or number."""

    text: str
    tree: Node
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Scalar]) -> bool:
        """Truth of the expression for ``values``; :class:`MissingValueError` names any missing value."""
        missing = sorted(n for n in self.names if n not in values)
        if missing:
            raise MissingValueError(f"expression {self.text!r} needs values for: {', '.join(missing)}")
        for n in self.names:
            v = values[n]
            if not isinstance(v, bool | int | float):
                raise TypeError(f"value of {n!r} must be a bool or a number, got {type(v).__name__}")
        return _truth(_eval(self.tree, values))


def parse_expression(text: str, allowed_names: frozenset[str] | None = None) -> Expression:
    """Parse ``text``; raise :class:`ExpressionError` (a ``ValueError``) with the column of any mistake.

    When ``allowed_names`` is given, a name outside it is an error too (catches typos at config load).
    """
    if not isinstance(text, str):
        raise TypeError(f"expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression is longer than {MAX_LENGTH} characters", text[:40] + "...", MAX_LENGTH + 1)
    if not text.strip():
        raise ExpressionError("expression is empty", text, 1)
    parser = _Parser(text)
    tree = parser.parse()
    names: set[str] = set()
    _names(tree, names)
    if allowed_names is not None:
        for tok in parser.tokens:
            if tok.kind == "name" and tok.text not in allowed_names:
                known = ", ".join(sorted(allowed_names)) or "none"
                raise ExpressionError(f"unknown name {tok.text!r} (known: {known})", text, tok.col)
    return Expression(text, tree, frozenset(names))
