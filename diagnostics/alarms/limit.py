"""Limit alarms: high-high / high / low / low-low with deadband, on/off delays and per-level severity."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diagnostics.alarms.base import Classified, RuleAlarm, usable_number
from diagnostics.alarms.events import AlarmEvent, EventState, Level, Quality, fmt_quantity
from diagnostics.alarms.machine import HOLD, AlarmIdentity, Timing

LEVEL_NAMES: tuple[str, ...] = ("high_high", "high", "low", "low_low")
#: Level code used by the vectorised evaluator: +2 high-high, +1 high, 0 normal, -1 low, -2 low-low.
LEVEL_CODES: dict[str, int] = {"high_high": 2, "high": 1, "low": -1, "low_low": -2}
DISPLAY: dict[str, str] = {"high_high": "high-high", "high": "high", "low": "low", "low_low": "low-low"}
DEFAULT_SEVERITY: dict[str, str] = {
    "high_high": "critical",
    "high": "warning",
    "low": "warning",
    "low_low": "critical",
}


@dataclass(frozen=True, slots=True)
class LimitBands:
    """Limits in the point's unit and the deadband (same unit) a value must retreat by to clear.

    A level is met when the value reaches its limit (``>=`` high side, ``<=`` low side) and stays met
    until the value is back inside by more than ``deadband``.
    """

    high: float | None = None
    high_high: float | None = None
    low: float | None = None
    low_low: float | None = None
    deadband: float = 0.0

    def __post_init__(self) -> None:
        given = {n: getattr(self, n) for n in LEVEL_NAMES if getattr(self, n) is not None}
        if not given:
            raise ValueError("a limit rule needs at least one of high_high, high, low, low_low")
        for name, v in given.items():
            if not math.isfinite(v):
                raise ValueError(f"{name}={v} must be a finite number in the point's unit")
        if not (math.isfinite(self.deadband) and self.deadband >= 0):
            raise ValueError(f"deadband={self.deadband} must be a finite number >= 0 in the point's unit")
        h, hh, lo, ll = self.high, self.high_high, self.low, self.low_low
        if h is not None and hh is not None and not hh > h:
            raise ValueError(f"high_high={hh} must be above high={h}")
        if lo is not None and ll is not None and not ll < lo:
            raise ValueError(f"low_low={ll} must be below low={lo}")
        highs = [x for x in (h, hh) if x is not None]
        lows = [x for x in (lo, ll) if x is not None]
        if highs and lows:
            gap = min(highs) - max(lows)
            if not gap > 2 * self.deadband:
                raise ValueError(
                    f"limits overlap: lowest high limit {min(highs)} minus highest low limit {max(lows)} "
                    f"must exceed twice the deadband ({self.deadband}); widen the limits or shrink the deadband"
                )

    def thresholds(self) -> tuple[float, float, float, float]:
        """Effective (high, high_high, low, low_low); a missing level is +/-inf or its neighbour.

        A missing ``high`` takes ``high_high`` (and a missing ``low`` takes ``low_low``) so levels stay
        nested: whatever meets high-high also meets high. The evaluator relies on this.
        """
        inf = math.inf
        hh = self.high_high if self.high_high is not None else inf
        h = self.high if self.high is not None else hh
        ll = self.low_low if self.low_low is not None else -inf
        lo = self.low if self.low is not None else ll
        return h, hh, lo, ll

    def classify_code(self, value: float, prev_code: int) -> int:
        """Level code of ``value`` (+2, +1, 0, -1, -2) given the previous code (for the deadband)."""
        h, hh, lo, ll = self.thresholds()
        db = self.deadband
        code = 0
        if value >= h or (prev_code >= 1 and value > h - db):
            code += 1
        if value >= hh or (prev_code >= 2 and value > hh - db):
            code += 1
        if value <= lo or (prev_code <= -1 and value < lo + db):
            code -= 1
        if value <= ll or (prev_code <= -2 and value < ll + db):
            code -= 1
        return code


def _steady_intervals(bands: LimitBands) -> tuple[tuple[float, float], ...]:
    """Per level code (index code + 2): an open interval of values that surely keep that code.

    Conservative (a subset of what :meth:`LimitBands.classify_code` keeps, using the same float
    expressions); a value outside is classified in full, so the interval only has to be sound.
    """
    h, hh, lo, ll = bands.thresholds()
    db = bands.deadband
    inf = math.inf
    up1 = h - db if db > 0 else h  # above: still meets high (db == 0: exactly h falls back to classify_code)
    up2 = hh - db if db > 0 else hh
    dn1 = lo + db if db > 0 else lo
    dn2 = ll + db if db > 0 else ll
    return (
        (-inf, min(dn2, h)),  # -2: below low-low's release point (and surely not high)
        (ll, min(dn1, h)),  # -1: above low-low, below low's release point
        (lo, h),  # 0: strictly between the low and high limits
        (max(up1, lo), hh),  # +1: above high's release point, below high-high
        (max(up2, lo), inf),  # +2: above high-high's release point
    )


@dataclass(frozen=True, slots=True)
class LimitRule:
    """Configuration of one limit alarm on ``point`` (values and deadband in ``unit``, delays in s)."""

    rule_id: str
    point: str
    unit: str = ""
    high: float | None = None
    high_high: float | None = None
    low: float | None = None
    low_low: float | None = None
    deadband: float = 0.0
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    min_update_interval_s: float = 0.0
    severity_high: str = DEFAULT_SEVERITY["high"]
    severity_high_high: str = DEFAULT_SEVERITY["high_high"]
    severity_low: str = DEFAULT_SEVERITY["low"]
    severity_low_low: str = DEFAULT_SEVERITY["low_low"]

    def __post_init__(self) -> None:
        try:
            self.bands()
            self.timing()
            self.levels()
        except ValueError as e:
            raise ValueError(f"rule {self.rule_id} ({self.point}): {e}") from None

    def bands(self) -> LimitBands:
        """The limits as :class:`LimitBands`."""
        return LimitBands(self.high, self.high_high, self.low, self.low_low, self.deadband)

    def timing(self) -> Timing:
        """The delays as :class:`Timing`."""
        return Timing(self.on_delay_s, self.off_delay_s, self.min_update_interval_s)

    def levels(self) -> dict[int, Level]:
        """Levels of the configured limits, keyed by level code."""
        sev = {
            "high_high": self.severity_high_high,
            "high": self.severity_high,
            "low": self.severity_low,
            "low_low": self.severity_low_low,
        }
        out: dict[int, Level] = {}
        for name in LEVEL_NAMES:
            if getattr(self, name) is not None:
                code = LEVEL_CODES[name]
                out[code] = Level(name, sev[name], side=1 if code > 0 else -1, rank=abs(code))
        return out

    def limit_of(self, level: str) -> float | None:
        """The configured limit of ``level`` (point unit)."""
        v: float | None = getattr(self, level)
        return v


class LimitAlarm(RuleAlarm):
    """The alarm instance of one :class:`LimitRule`.

    Bad quality (or a missing / non-finite value) holds the state: nothing raises or clears until a
    usable value arrives (see :mod:`diagnostics.alarms.machine`).
    """

    kind = "limit"

    def __init__(self, rule: LimitRule) -> None:
        self.rule = rule
        self._bands = rule.bands()
        self._by_code = rule.levels()
        self._code = 0
        self._steady = _steady_intervals(self._bands)
        super().__init__(
            AlarmIdentity(rule.rule_id, self.kind, rule.point, rule.unit),
            list(self._by_code.values()),
            rule.timing(),
        )

    @property
    def code(self) -> int:
        """Level code of the last usable sample (+2 high-high ... -2 low-low, 0 normal)."""
        return self._code

    def level_for_code(self, code: int) -> Level | None:
        """The rule's level for a level code (``None`` for 0)."""
        return self._by_code.get(code)

    def step_classified(self, ts_s: float, code: int | None, value: float | None) -> list[AlarmEvent]:
        """Feed an already classified sample (``code`` None = hold); used by the bulk evaluator."""
        if code is None:
            return self.machine.step(ts_s, HOLD, value)
        self._code = code
        level = self._by_code.get(code) if self._enabled else None
        return self.machine.step(ts_s, level, value)

    def absorb(self, ts_s: float, value: float) -> bool:
        """Take a usable sample that cannot change anything, as :meth:`update` would; False when it might.

        ``value`` must come with quality 'good' or 'uncertain' (the caller checks; NaN and inf are refused
        here). True means the sample kept the level code, the machine is settled (observed, not holding,
        announced level = classification, nothing deferred, not shelved) and the sample is not older than
        the newest one: it was recorded exactly as :meth:`update` records it (sample clock and value
        reported in later events) and caused no event. False means nothing was recorded: call
        :meth:`update`. The agent's alarm stage uses this to skip the full step for the great majority of
        samples.
        """
        code = self._code
        lo, hi = self._steady[code + 2]
        if not lo < value < hi and (not math.isfinite(value) or self._bands.classify_code(value, code) != code):
            return False
        level = self._by_code.get(code) if self._enabled else None
        return self.machine.take_settled(ts_s, level, value)

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        v = usable_number(value, quality)
        if v is None:
            return HOLD, None, None
        self._code = self._bands.classify_code(v, self._code)
        return self._by_code.get(self._code), v, None

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        limit = self.rule.limit_of(level.name)
        unit = self.rule.unit
        where = "above" if level.side > 0 else "below"
        what = f"{self.rule.point} {fmt_quantity(value, unit)}"
        if state == "cleared":
            return limit, f"{what} back to normal (was {where} {DISPLAY[level.name]} limit {fmt_quantity(limit, unit)})"
        return limit, f"{what} {where} {DISPLAY[level.name]} limit {fmt_quantity(limit, unit)}"

    def _rule_state(self) -> dict[str, object]:
        return {"code": self._code}

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        code = data.get("code", 0)
        if code not in (0, *self._by_code):
            raise ValueError(f"alarm state for {self.rule_id}: level code {code!r} is not a level of the rule")
        self._code = int(code)
