"""Common shape of every alarm rule: samples in, events out, state to and from a dict."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Self

from diagnostics.alarms.events import AlarmEvent, EventState, Level, Quality, check_quality
from diagnostics.alarms.machine import (
    HOLD,
    AlarmIdentity,
    AlarmMachine,
    AlarmSnapshot,
    Classification,
    Timing,
)

#: Types a sample value must have to be judged (a tuple: faster in isinstance than ``int | float``).
NUMBER_TYPES = (int, float)

#: What a rule's classifier returns: classification, the value to report (rule unit), evidence or None.
Classified = tuple[Classification, float | None, Mapping[str, object] | None]


def usable_number(value: float | None, quality: str) -> float | None:
    """``value`` as float when it can be judged (not bad quality, finite), else ``None``.

    'uncertain' values are judged like good ones: the value is there, only its pedigree is doubtful,
    and an alarm system that ignored them would miss real excursions.
    """
    if quality == "bad" or not isinstance(value, NUMBER_TYPES):
        return None  # also None and text values
    v = float(value)
    return v if math.isfinite(v) else None


class RuleAlarm(ABC):
    """One alarm instance driven by one rule. Subclasses implement :meth:`_classify` and :meth:`_describe`."""

    def __init__(self, identity: AlarmIdentity, levels: Sequence[Level], timing: Timing) -> None:
        self.machine = AlarmMachine(identity, levels, timing, self._describe)
        self._enabled = True

    @property
    def rule_id(self) -> str:
        """Stable id of the rule, also the alarm id of its events."""
        return self.machine.identity.rule_id

    def update(self, ts_s: float, value: float | None, quality: Quality | str = "good") -> list[AlarmEvent]:
        """Feed one sample of the point at ``ts_s`` (epoch s); return the events it causes."""
        q = check_quality(quality)
        classified, reported, evidence = self._classify(ts_s, value, q)
        if not self._enabled and classified is not HOLD:
            classified = None
        return self.machine.step(ts_s, classified, reported, evidence)

    def resume_after_restart(self) -> None:
        """Called once after :meth:`load_dict` when the process restarted: the restored state's samples are
        stale, so nothing completes on the clock until a fresh sample arrives."""
        self.machine.hold_until_next_sample()

    def tick(self, now_s: float) -> list[AlarmEvent]:
        """Let time pass to ``now_s`` (epoch s) with no sample: on/off delays, staleness, shelve expiry."""
        return self.machine.step_time(now_s)

    def set_enabled(self, ts_s: float, enabled: bool) -> list[AlarmEvent]:
        """Enable or suppress the rule (an interlock such as ``running``); suppressed counts as normal.

        Disabling clears an active alarm through the normal off-delay path; enabling takes effect with
        the next sample. ``ts_s`` is when the interlock decided (epoch s, usually the agent's clock), but the
        rule's samples carry the device's clock, which may be minutes off. So the clearing step is placed on
        the rule's own timeline, at its newest sample: a decision stamped behind that sample would be
        dropped as out of order, and one stamped ahead would make the device's next samples look out of
        order. Before any sample the step is taken at ``ts_s`` without moving the sample clock.
        """
        was = self._enabled
        self._enabled = enabled
        if was and not enabled and not self.machine.holding:
            machine = self.machine
            last = machine.last_sample_ts
            if last is not None:
                return machine.step(last, None, machine.last_value)
            return machine.step(ts_s, None, machine.last_value, from_clock=True)
        return []

    @property
    def enabled(self) -> bool:
        """False while an interlock suppresses the rule."""
        return self._enabled

    def acknowledge(self, by: str, ts_s: float) -> AlarmEvent:
        """Acknowledge the active episode (see :meth:`AlarmMachine.acknowledge`)."""
        return self.machine.acknowledge(by, ts_s)

    def shelve(self, now_s: float, duration_s: float, by: str) -> None:
        """Shelve for ``duration_s`` seconds: no events until it ends."""
        self.machine.shelve(now_s, duration_s, by)

    def unshelve(self, now_s: float) -> list[AlarmEvent]:
        """End a shelve early; return the events that bring the outside view up to date."""
        return self.machine.unshelve(now_s)

    def snapshot(self) -> AlarmSnapshot:
        """Operator view of this alarm."""
        return self.machine.snapshot()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready state of the alarm and its rule's memory (windows, counters)."""
        return {"machine": self.machine.to_dict(), "rule": self._rule_state(), "enabled": self._enabled}

    def load_dict(self, data: Mapping[str, Any]) -> Self:
        """Restore state written by :meth:`to_dict`; ``ValueError`` when it does not fit this rule.

        All or nothing: when the state is refused the alarm keeps the state it had.
        """
        machine = data.get("machine")
        rule = data.get("rule")
        if not isinstance(machine, Mapping) or not isinstance(rule, Mapping):
            raise ValueError(f"alarm state for {self.rule_id}: needs 'machine' and 'rule' mappings")
        backup = self.to_dict()
        try:
            self.machine.load_dict(machine)
            self._load_rule_state(rule)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.machine.load_dict(backup["machine"])  # type: ignore[arg-type]
            self._load_rule_state(backup["rule"])  # type: ignore[arg-type]
            if isinstance(exc, ValueError) and str(exc).startswith("alarm state"):
                raise
            raise ValueError(f"alarm state for {self.rule_id} is malformed: {exc}") from exc
        self._enabled = bool(data.get("enabled", True))
        return self

    @abstractmethod
    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        """Classify one sample."""

    @abstractmethod
    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        """Limit (rule unit) and human message for an event at ``level``."""

    def _rule_state(self) -> dict[str, object]:
        return {}

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        return None
