"""What alarm rules emit: levels, severities and the :class:`AlarmEvent` record.

An alarm *instance* belongs to one rule (``alarm_id`` is the rule's id, stable across restarts and
episodes). One *episode* runs from ``raised`` to ``cleared``; in between, ``updated`` events say that
the level (and with it the severity) escalated or de-escalated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

Quality = Literal["good", "uncertain", "bad"]
EventState = Literal["raised", "updated", "cleared"]

#: Severities from least to most urgent; the index is the rank used to decide escalation.
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
QUALITIES: tuple[str, ...] = ("good", "uncertain", "bad")


def severity_rank(severity: str) -> int:
    """Rank of ``severity`` in :data:`SEVERITIES` (info 0 < warning 1 < critical 2)."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"severity {severity!r} must be one of {', '.join(SEVERITIES)}") from None


def check_quality(quality: str) -> Quality:
    """Return ``quality`` when it is 'good', 'uncertain' or 'bad'; raise ``ValueError`` otherwise."""
    if quality in QUALITIES:
        return cast(Quality, quality)
    raise ValueError(f"quality {quality!r} must be 'good', 'uncertain' or 'bad'")


@dataclass(frozen=True, slots=True)
class Level:
    """One alarm level of a rule.

    ``side`` is +1 for levels above normal (high, rising, zone C/D) and -1 below (low, falling).
    Levels on one side are nested: a value at ``rank`` 2 (high-high) also meets rank 1 (high).
    """

    name: str
    severity: str
    side: int = 1
    rank: int = 1

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        if self.side not in (1, -1):
            raise ValueError(f"level {self.name!r}: side={self.side} must be +1 (above) or -1 (below)")
        if self.rank < 1:
            raise ValueError(f"level {self.name!r}: rank={self.rank} must be >= 1")

    def met_by(self, classified: Level | None) -> bool:
        """True when a sample classified at ``classified`` also meets this level (nesting per side)."""
        return classified is not None and classified.side == self.side and classified.rank >= self.rank


@dataclass(frozen=True, slots=True)
class AlarmEvent:
    """One alert transition, ready to be turned into the MQTT alert payload.

    Times are UTC epoch seconds: ``first_ts`` when this episode was raised, ``last_ts`` when this event
    happened. ``value`` and ``limit`` are in ``unit`` (for rate rules ``unit`` is per second or per
    minute, as the message says). ``evidence`` holds rule-specific detail (fault indicators, the
    reference value of a deviation, counts of suppressed alarms) as JSON-ready values.
    """

    alarm_id: str
    state: EventState
    severity: str
    kind: str
    rule: str
    point: str
    level: str
    value: float | None
    limit: float | None
    unit: str
    message: str
    first_ts: float
    last_ts: float
    episode: int = 1
    acked: bool = False
    evidence: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready copy (non-finite numbers become ``None``)."""
        return {
            "alarm_id": self.alarm_id,
            "state": self.state,
            "severity": self.severity,
            "kind": self.kind,
            "rule": self.rule,
            "point": self.point,
            "level": self.level,
            "value": finite_or_none(self.value),
            "limit": finite_or_none(self.limit),
            "unit": self.unit,
            "message": self.message,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "episode": self.episode,
            "acked": self.acked,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AlarmEvent:
        """Rebuild an event written by :meth:`to_dict` (``ValueError`` naming a bad field)."""

        def num(key: str) -> float | None:
            v = data.get(key)
            if v is None:
                return None
            if not isinstance(v, int | float) or isinstance(v, bool):
                raise ValueError(f"alarm event field {key}={v!r} must be a number or null")
            return float(v)

        def text(key: str) -> str:
            v = data.get(key)
            if not isinstance(v, str):
                raise ValueError(f"alarm event field {key}={v!r} must be a string")
            return v

        state = text("state")
        if state not in ("raised", "updated", "cleared"):
            raise ValueError(f"alarm event field state={state!r} must be raised, updated or cleared")
        first, last = num("first_ts"), num("last_ts")
        if first is None or last is None:
            raise ValueError("alarm event needs first_ts and last_ts (epoch s)")
        episode = data.get("episode", 1)
        evidence = data.get("evidence", {})
        return cls(
            alarm_id=text("alarm_id"),
            state=cast(EventState, state),
            severity=text("severity"),
            kind=text("kind"),
            rule=text("rule"),
            point=text("point"),
            level=text("level"),
            value=num("value"),
            limit=num("limit"),
            unit=text("unit"),
            message=text("message"),
            first_ts=first,
            last_ts=last,
            episode=int(episode) if isinstance(episode, int | float) else 1,
            acked=bool(data.get("acked", False)),
            evidence=dict(evidence) if isinstance(evidence, Mapping) else {},
        )


def finite_or_none(x: float | None) -> float | None:
    """``x`` when it is a finite number, else ``None`` (JSON has no NaN or infinity)."""
    if x is None or not math.isfinite(x):
        return None
    return x


def fmt_number(x: float | None) -> str:
    """Short human form of a number: six significant digits, no trailing zeros ('96.2', '1500')."""
    if x is None:
        return "n/a"
    return f"{x:.6g}"


def fmt_quantity(x: float | None, unit: str) -> str:
    """Number with its unit, e.g. '96.2 degC' (no unit: just the number)."""
    return f"{fmt_number(x)} {unit}" if unit else fmt_number(x)
