"""Rate-of-change alarms: least-squares slope over a sliding time window, per second or per minute."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from diagnostics.alarms.base import Classified, RuleAlarm, usable_number
from diagnostics.alarms.events import EventState, Level, Quality, fmt_quantity
from diagnostics.alarms.machine import HOLD, AlarmIdentity, Timing

PER_SECONDS: dict[str, float] = {"s": 1.0, "min": 60.0}
MAX_WINDOW_SAMPLES = 10_000


@dataclass(frozen=True, slots=True)
class RateRule:
    """Alarm when ``point`` rises faster than ``max_rise`` or falls faster than ``max_fall``.

    Rates are magnitudes in ``unit`` per ``per`` ('s' or 'min'); the slope is the least-squares fit
    over the last ``window_s`` seconds and is judged only once the window holds ``min_samples`` good
    samples spanning at least half of it. ``deadband`` (same unit as the rates) is hysteresis.
    """

    rule_id: str
    point: str
    window_s: float
    unit: str = ""
    per: Literal["s", "min"] = "min"
    max_rise: float | None = None
    max_fall: float | None = None
    deadband: float = 0.0
    min_samples: int = 3
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    min_update_interval_s: float = 0.0
    severity: str = "warning"

    def __post_init__(self) -> None:
        where = f"rule {self.rule_id} ({self.point})"
        if self.per not in PER_SECONDS:
            raise ValueError(f"{where}: per={self.per!r} must be 's' or 'min'")
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(f"{where}: window_s={self.window_s} must be > 0 seconds")
        if self.max_rise is None and self.max_fall is None:
            raise ValueError(f"{where}: give max_rise, max_fall or both ({self.unit}/{self.per})")
        for name in ("max_rise", "max_fall"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                raise ValueError(f"{where}: {name}={v} must be a positive rate magnitude ({self.unit}/{self.per})")
        lowest = min(v for v in (self.max_rise, self.max_fall) if v is not None)
        if not (0 <= self.deadband < lowest):
            raise ValueError(f"{where}: deadband={self.deadband} must be >= 0 and below the smallest rate limit")
        if self.min_samples < 2:
            raise ValueError(f"{where}: min_samples={self.min_samples} must be >= 2 to fit a slope")
        try:
            Timing(self.on_delay_s, self.off_delay_s, self.min_update_interval_s)
            Level("rise", self.severity)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None


class RateAlarm(RuleAlarm):
    """The alarm instance of one :class:`RateRule`; events report the rate in ``unit``/``per``."""

    kind = "rate"

    def __init__(self, rule: RateRule) -> None:
        self.rule = rule
        self._per_s = PER_SECONDS[rule.per]
        self._window: deque[tuple[float, float]] = deque()
        self._rise = Level("rise", rule.severity, side=1) if rule.max_rise is not None else None
        self._fall = Level("fall", rule.severity, side=-1) if rule.max_fall is not None else None
        self._state = 0  # +1 rising too fast, -1 falling too fast, 0 normal (for the deadband)
        # Running least-squares sums over the window, times relative to _t0 (seconds).
        self._t0 = 0.0
        self._sums = (0.0, 0.0, 0.0, 0.0)
        self._pops = 0
        levels = [lv for lv in (self._rise, self._fall) if lv is not None]
        super().__init__(
            AlarmIdentity(rule.rule_id, self.kind, rule.point, f"{rule.unit}/{rule.per}"),
            levels,
            Timing(rule.on_delay_s, rule.off_delay_s, rule.min_update_interval_s),
        )

    def rate(self) -> float | None:
        """Least-squares slope of the window in ``unit`` per ``per``; ``None`` until the window is usable."""
        w = self._window
        n = len(w)
        if n < self.rule.min_samples or w[-1][0] - w[0][0] < 0.5 * self.rule.window_s:
            return None
        st, sv, stt, stv = self._sums
        den = n * stt - st * st
        if den <= 0:
            return None
        return (n * stv - st * sv) / den * self._per_s

    def _rebuild_sums(self) -> None:
        """Recompute the running sums from scratch, relative to the oldest sample (bounds rounding)."""
        w = self._window
        self._t0 = w[0][0] if w else 0.0
        st = sv = stt = stv = 0.0
        for t, v in w:
            dt = t - self._t0
            st += dt
            sv += v
            stt += dt * dt
            stv += dt * v
        self._sums = (st, sv, stt, stv)
        self._pops = 0

    def _push(self, t: float, v: float) -> None:
        if not self._window:
            self._t0 = t
        self._window.append((t, v))
        dt = t - self._t0
        st, sv, stt, stv = self._sums
        self._sums = (st + dt, sv + v, stt + dt * dt, stv + dt * v)

    def _pop(self) -> None:
        t, v = self._window.popleft()
        dt = t - self._t0
        st, sv, stt, stv = self._sums
        self._sums = (st - dt, sv - v, stt - dt * dt, stv - dt * v)
        self._pops += 1

    def _classify(self, ts_s: float, value: float | None, quality: Quality) -> Classified:
        v = usable_number(value, quality)
        if v is None:
            return HOLD, None, None
        w = self._window
        if w and ts_s <= w[-1][0]:
            return HOLD, None, None  # same or older timestamp: no slope information
        self._push(ts_s, v)
        start = ts_s - self.rule.window_s
        while w[0][0] < start or len(w) > MAX_WINDOW_SAMPLES:
            self._pop()
        if self._pops >= len(w):
            self._rebuild_sums()
        r = self.rate()
        if r is None:
            return HOLD, None, None
        db = self.rule.deadband
        rise, fall = self.rule.max_rise, self.rule.max_fall
        state = 0
        if rise is not None and (r >= rise or (self._state > 0 and r > rise - db)):
            state = 1
        elif fall is not None and (r <= -fall or (self._state < 0 and r < -fall + db)):
            state = -1
        self._state = state
        level = self._rise if state > 0 else self._fall if state < 0 else None
        return level, r, None

    def _describe(self, level: Level, value: float | None, state: EventState) -> tuple[float | None, str]:
        unit = f"{self.rule.unit}/{self.rule.per}" if self.rule.unit else f"per {self.rule.per}"
        limit = self.rule.max_rise if level.side > 0 else self.rule.max_fall
        verb = "rising" if level.side > 0 else "falling"
        rate = abs(value) if value is not None else None
        window = f"over {self.rule.window_s:g} s"
        if state == "cleared":
            return limit, (
                f"{self.rule.point} rate back to normal at {fmt_quantity(value, unit)} {window} "
                f"(was {verb} faster than {fmt_quantity(limit, unit)})"
            )
        return limit, (
            f"{self.rule.point} {verb} at {fmt_quantity(rate, unit)} {window}, "
            f"faster than limit {fmt_quantity(limit, unit)}"
        )

    def _rule_state(self) -> dict[str, object]:
        return {"window": [[t, v] for t, v in self._window], "state": self._state}

    def _load_rule_state(self, data: Mapping[str, Any]) -> None:
        self._window = deque((float(t), float(v)) for t, v in data.get("window", []))
        self._state = int(data.get("state", 0))
        self._rebuild_sums()
