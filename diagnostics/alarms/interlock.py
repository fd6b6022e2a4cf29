"""Interlocks: an expression over an asset's points that enables or suppresses alarm rules.

Example: vibration alarms only while ``running and motor-plc/speed > 100``. While the expression is
false the gated rules count as normal (an active alarm clears through its off-delay); when a value
the expression needs is missing or unusable, the interlock keeps its last decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from diagnostics.alarms.base import RuleAlarm
from diagnostics.alarms.events import AlarmEvent
from diagnostics.expr import Expression, Scalar, parse_expression


class Interlock:
    """A parsed enabling condition; :meth:`apply` it to the rules it gates on every new value."""

    def __init__(self, expression: str, allowed_names: frozenset[str] | None = None) -> None:
        self.expression: Expression = parse_expression(expression, allowed_names)
        self._state: bool | None = None

    @property
    def names(self) -> frozenset[str]:
        """Point names the expression reads."""
        return self.expression.names

    @property
    def state(self) -> bool | None:
        """The last decision (``None`` before the first one)."""
        return self._state

    def evaluate(self, values: Mapping[str, Scalar | None]) -> bool | None:
        """Truth of the expression, or ``None`` when a needed value is missing, ``None``, NaN or not a number
        (a device that sends text where the expression needs a number gives no decision, not an error)."""
        usable: dict[str, Scalar] = {}
        for name in self.expression.names:
            v = values.get(name)
            if v is None or not isinstance(v, bool | int | float) or (isinstance(v, float) and math.isnan(v)):
                return None
            usable[name] = v
        return self.expression.evaluate(usable)

    def decide(self, values: Mapping[str, Scalar | None]) -> bool | None:
        """Evaluate and remember; return the new decision when it changed, else ``None``."""
        decision = self.evaluate(values)
        if decision is None or decision == self._state:
            return None
        self._state = decision
        return decision

    def restore_state(self, state: bool | None) -> None:
        """Set the remembered decision (after a restart)."""
        self._state = state

    def apply(self, ts_s: float, values: Mapping[str, Scalar | None], rules: Iterable[RuleAlarm]) -> list[AlarmEvent]:
        """Evaluate at ``ts_s`` (epoch s) and enable or suppress ``rules``; return the events that causes."""
        decision = self.evaluate(values)
        if decision is None:
            decision = self._state  # unknown: keep the last decision
        if decision is None:
            return []
        self._state = decision
        events: list[AlarmEvent] = []
        for rule in rules:
            if rule.enabled != decision:
                events += rule.set_enabled(ts_s, decision)
        return events
