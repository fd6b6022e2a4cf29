"""Pieces every alarm rule kind shares: severities, the ``when:`` interlock expression, limit ordering.

``when:`` is parsed here with :mod:`diagnostics.expr` (syntax only, so a typo is reported with its column at
load time); which names it may use depends on the assets and devices, so that is checked in
``references.py``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from diagnostics.expr import ExpressionError, parse_expression
from edge_agent.config._base import ConfigModel, Issue, Name
from edge_agent.config._pydantic import AfterValidator, Field, PydanticCustomError, WithJsonSchema
from edge_agent.config.units import Duration

Severity = Literal["info", "warning", "critical"]
LIMIT_FIELDS = ("high_high", "high", "low", "low_low")
WHEN_EXAMPLE = "running and motor-plc/speed > 100"


def _check_when(value: str) -> str:
    try:
        parse_expression(value)
    except ExpressionError as exc:
        raise PydanticCustomError(
            "when_syntax",
            "invalid expression: {why}; write a condition over points such as {example} "
            "(operators: and, or, not, <, <=, >, >=, ==, !=)",
            {"why": str(exc), "example": repr(WHEN_EXAMPLE)},
        ) from None
    return value


When = Annotated[
    str,
    AfterValidator(_check_when),
    WithJsonSchema(
        {
            "type": "string",
            "maxLength": 500,
            "description": "Interlock: the rule is evaluated only while this is true, e.g. "
            f"'{WHEN_EXAMPLE}'. Names are points of the rule's asset or 'device/point'.",
        }
    ),
]
"""A boolean interlock expression (see :mod:`diagnostics.expr`); the rule only alarms while it is true."""


class RuleSeverity(ConfigModel):
    """Severity of each limit level."""

    high_high: Severity = "critical"
    high: Severity = "warning"
    low: Severity = "warning"
    low_low: Severity = "critical"


class RuleBase(ConfigModel):
    """Fields of every rule."""

    name: Name | None = Field(default=None, description="Rule name (default: derived from the point).")


class InterlockedRule(RuleBase):
    """A rule that can be gated by a ``when:`` expression and rate-limits its ``updated`` events."""

    when: When | None = None
    min_update_interval: Annotated[Duration, Field(ge=0)] | None = Field(
        default=None,
        description="Least time between two 'updated' events of one alarm (default: alarms.update_interval).",
    )

    def update_interval_s(self, default_s: float) -> float:
        """Least seconds between two 'updated' events: ``min_update_interval``, else ``default_s``.

        Pass ``cfg.alarms.update_interval`` as ``default_s``.
        """
        return self.min_update_interval if self.min_update_interval is not None else default_s


def limit_order_issues(limits: dict[str, float | None]) -> list[Issue]:
    """Issues when the given limits break the order high_high >= high > low >= low_low (absent ones skip)."""
    given = [(f, limits[f]) for f in LIMIT_FIELDS if limits.get(f) is not None]
    issues: list[Issue] = []
    for i, (upper, upper_value) in enumerate(given):
        for lower, lower_value in given[i + 1 :]:
            assert upper_value is not None and lower_value is not None
            same_side = upper.startswith("high") == lower.startswith("high")
            if upper_value < lower_value or (not same_side and upper_value == lower_value):
                relation = "at least" if same_side else "greater than"
                issues.append(
                    ((upper,), f"{upper} ({upper_value:g}) must be {relation} {lower} ({lower_value:g})")
                )
    return issues
