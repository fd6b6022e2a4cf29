"""Which names a rule's ``when:`` expression may use, and the messages when it uses others.

A name is either a point of the rule's asset by its short name (``running`` for ``motor-plc/running``, when
only one point of the asset has that name) or any value point written as ``device/point``. Syntax errors are
reported by the model (rules_common.py); text that does not parse is skipped here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence

from diagnostics.expr import ExpressionError, parse_expression
from edge_agent.config._base import Issue, Loc


def short_names(refs: Sequence[str]) -> dict[str, list[str]]:
    """Map the point part of every ``device/point`` in ``refs`` to the refs that carry it."""
    out: dict[str, list[str]] = {}
    for ref in refs:
        if ref.count("/") == 1:
            refs_of = out.setdefault(ref.split("/", 1)[1], [])
            if ref not in refs_of:
                refs_of.append(ref)
    return out


def when_issues(
    loc: Loc,
    text: object,
    scope: Mapping[str, list[str]],
    scope_label: str,
    points: Mapping[str, str],
    unknown_point: Callable[[str], str],
) -> list[Issue]:
    """Problems with the names of the expression ``text`` at ``loc``.

    ``scope`` maps short names to refs (:func:`short_names` of the rule's asset points), ``scope_label``
    says where they come from ("asset 'pump-1'"), ``points`` maps every known ``device/point`` to its kind
    and ``unknown_point`` words the message for a ``device/point`` that does not exist.
    """
    if not isinstance(text, str):
        return []
    try:
        names = parse_expression(text).names
    except (ExpressionError, TypeError):
        return []  # reported by the model
    issues: list[Issue] = []
    for name in sorted(names):
        if "/" in name:
            if name not in points:
                issues.append((loc, unknown_point(name)))
            elif points[name] != "value":
                issues.append((loc, f"'{name}' is a {points[name]} point; when: compares value points only"))
            continue
        refs = scope.get(name, [])
        if len(refs) > 1:
            issues.append(
                (
                    loc,
                    f"'{name}' is ambiguous: {scope_label} has {', '.join(refs)}; write the one you mean "
                    "as device/point",
                )
            )
        elif refs and points.get(refs[0], "value") != "value":
            issues.append(
                (loc, f"'{name}' ({refs[0]}) is a waveform point; when: compares value points only")
            )
        elif not refs:
            issues.append((loc, _unknown_name(name, scope, scope_label)))
    return issues


def _unknown_name(name: str, scope: Mapping[str, list[str]], scope_label: str) -> str:
    if not scope:
        return (
            f"unknown name '{name}': the rule's point belongs to no asset, so name points as device/point "
            "(e.g. motor-plc/running)"
        )
    close = difflib.get_close_matches(name, list(scope), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return (
        f"unknown name '{name}'{hint}; use a point of {scope_label} ({', '.join(sorted(scope))}) "
        "or a device/point"
    )
