"""Maintenance counters per asset: run hours, starts, time per ISO zone, service intervals.

Running comes from a running-state point (:meth:`MaintenanceCounters.update_running`) or from speed
or current above a threshold with hysteresis (:meth:`MaintenanceCounters.update_level`). Time
between two samples counts toward run hours (or the reported zone) only up to ``max_gap_s``: a gap
in the data is not assumed to be running time. Service intervals (every N run hours or N starts)
raise one ``maintenance_due`` alarm per interval, updated once per further interval while overdue,
and cleared by :meth:`MaintenanceCounters.reset_service`, which writes an audit entry.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from diagnostics.alarms.events import AlarmEvent, EventState, fmt_number

ZONES: tuple[str, ...] = ("A", "B", "C", "D")
MAX_AUDIT_ENTRIES = 200


@dataclass(frozen=True, slots=True)
class ServiceInterval:
    """A service due every ``every_run_hours`` run hours or every ``every_starts`` starts (one of them)."""

    name: str
    every_run_hours: float | None = None
    every_starts: int | None = None
    severity: str = "warning"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("service interval needs a name (e.g. 'bearing regrease')")
        if (self.every_run_hours is None) == (self.every_starts is None):
            raise ValueError(f"service {self.name!r}: give exactly one of every_run_hours or every_starts")
        if self.every_run_hours is not None and not (math.isfinite(self.every_run_hours) and self.every_run_hours > 0):
            raise ValueError(f"service {self.name!r}: every_run_hours={self.every_run_hours} must be > 0 hours")
        if self.every_starts is not None and self.every_starts < 1:
            raise ValueError(f"service {self.name!r}: every_starts={self.every_starts} must be >= 1")

    @property
    def unit(self) -> Literal["h", "starts"]:
        """'h' for run-hour intervals, 'starts' for start-count intervals."""
        return "h" if self.every_run_hours is not None else "starts"

    @property
    def every(self) -> float:
        """Interval length in :attr:`unit`."""
        return float(self.every_run_hours if self.every_run_hours is not None else self.every_starts or 0)


@dataclass(frozen=True, slots=True)
class CounterConfig:
    """Counters of one asset. ``running_threshold`` (point unit) with ``hysteresis`` for level input."""

    asset: str
    running_threshold: float | None = None
    hysteresis: float = 0.0
    max_gap_s: float = 300.0
    services: Sequence[ServiceInterval] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_gap_s) and self.max_gap_s > 0):
            raise ValueError(f"asset {self.asset}: max_gap_s={self.max_gap_s} must be > 0 seconds")
        if not (math.isfinite(self.hysteresis) and self.hysteresis >= 0):
            raise ValueError(f"asset {self.asset}: hysteresis={self.hysteresis} must be >= 0 (point unit)")
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError(f"asset {self.asset}: service interval names must be unique, got {names}")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """Who reset what, when (epoch s), and the values before the reset."""

    ts_s: float
    by: str
    action: str
    target: str
    previous: Mapping[str, float]
    note: str = ""


class MaintenanceCounters:
    """Run hours, starts and zone time of one asset, with service intervals; persist with ``to_dict``."""

    def __init__(self, config: CounterConfig) -> None:
        self.config = config
        self._run_s = 0.0
        self._starts = 0
        self._zone_s: dict[str, float] = dict.fromkeys(ZONES, 0.0)
        self._running: bool | None = None  # None = unknown
        self._last_known_running: bool | None = None
        self._last_ts: float | None = None
        self._zone: str | None = None
        self._zone_ts: float | None = None
        self._baseline: dict[str, float] = {s.name: 0.0 for s in config.services}
        self._due_count: dict[str, int] = {s.name: 0 for s in config.services}  # intervals announced
        self._due_since: dict[str, float | None] = {s.name: None for s in config.services}
        self._audit: deque[AuditEntry] = deque(maxlen=MAX_AUDIT_ENTRIES)

    # ---- inputs ----------------------------------------------------------------------------------

    def update_running(self, ts_s: float, running: bool | None) -> list[AlarmEvent]:
        """Running state at ``ts_s`` (epoch s); ``None`` when unknown (bad quality)."""
        if self._last_ts is not None and ts_s < self._last_ts:
            return []
        self._accumulate(ts_s)
        if running is not None:
            if running and self._last_known_running is False:
                self._starts += 1
            self._last_known_running = running
        self._running = running
        return self._check_services(ts_s)

    def update_level(self, ts_s: float, value: float | None, quality: str = "good") -> list[AlarmEvent]:
        """Speed or current sample; running when above ``running_threshold`` (with hysteresis)."""
        thr = self.config.running_threshold
        if thr is None:
            raise ValueError(f"asset {self.config.asset}: update_level needs running_threshold in the config")
        if quality == "bad" or value is None or not math.isfinite(value):
            return self.update_running(ts_s, None)
        was = self._last_known_running
        half = self.config.hysteresis / 2
        running = value > thr - half if was else value >= thr + half
        return self.update_running(ts_s, running)

    def update_zone(self, ts_s: float, zone: str | None) -> None:
        """ISO zone ('A'..'D') reported at ``ts_s``; ``None`` when unknown. Time counts to the previous zone."""
        if zone is not None and zone not in ZONES:
            raise ValueError(f"zone {zone!r} must be one of {', '.join(ZONES)} or None")
        if self._zone_ts is not None:
            if ts_s < self._zone_ts:
                return
            if self._zone is not None:
                self._zone_s[self._zone] += min(ts_s - self._zone_ts, self.config.max_gap_s)
        self._zone, self._zone_ts = zone, ts_s

    def tick(self, now_s: float) -> list[AlarmEvent]:
        """Count time up to ``now_s`` (epoch s) and check service intervals."""
        if self._last_ts is None or now_s < self._last_ts:
            return []
        if now_s - self._last_ts > self.config.max_gap_s:
            return []  # no fresh data: do not extrapolate running time
        self._accumulate(now_s)
        return self._check_services(now_s)

    # ---- views -----------------------------------------------------------------------------------

    @property
    def run_hours(self) -> float:
        """Total run hours."""
        return self._run_s / 3600.0

    @property
    def starts(self) -> int:
        """Total starts (stopped -> running transitions)."""
        return self._starts

    @property
    def zone_hours(self) -> dict[str, float]:
        """Hours spent in each ISO zone A..D."""
        return {z: s / 3600.0 for z, s in self._zone_s.items()}

    @property
    def running(self) -> bool | None:
        """Current running state (``None`` when unknown)."""
        return self._running

    @property
    def audit(self) -> list[AuditEntry]:
        """Reset history, oldest first (last :data:`MAX_AUDIT_ENTRIES`)."""
        return list(self._audit)

    def counters(self) -> dict[str, float]:
        """JSON-ready totals: run_hours, starts, zone_X_hours."""
        out: dict[str, float] = {"run_hours": round(self.run_hours, 6), "starts": self._starts}
        out.update({f"zone_{z}_hours": round(h, 6) for z, h in self.zone_hours.items()})
        return out

    def since_service(self, name: str) -> float:
        """Run hours or starts (per the interval's unit) since service ``name`` was last reset."""
        svc = self._service(name)
        current = self.run_hours if svc.unit == "h" else float(self._starts)
        return current - self._baseline[name]

    # ---- operator actions --------------------------------------------------------------------

    def reset_service(self, name: str, by: str, ts_s: float, note: str = "") -> list[AlarmEvent]:
        """Record that service ``name`` was done: restart its interval, clear its alarm, audit it."""
        svc = self._service(name)
        previous = {"since_service": self.since_service(name), **self.counters()}
        events: list[AlarmEvent] = []
        if self._due_count[name] > 0:
            events.append(self._event(svc, "cleared", ts_s, f"service {name!r} done (reset by {by})"))
        self._baseline[name] = self.run_hours if svc.unit == "h" else float(self._starts)
        self._due_count[name] = 0
        self._due_since[name] = None
        self._audit.append(AuditEntry(ts_s, by, "reset_service", name, previous, note))
        return events

    def reset_totals(self, by: str, ts_s: float, note: str = "") -> None:
        """Zero run hours, starts and zone time (e.g. machine replaced); service intervals restart too."""
        previous = self.counters()
        self._run_s = 0.0
        self._starts = 0
        self._zone_s = dict.fromkeys(ZONES, 0.0)
        for name in self._baseline:
            self._baseline[name] = 0.0
        self._audit.append(AuditEntry(ts_s, by, "reset_totals", self.config.asset, previous, note))

    # ---- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """JSON-ready state; :meth:`load_dict` restores it exactly."""
        return {
            "v": 1,
            "asset": self.config.asset,
            "run_s": self._run_s,
            "starts": self._starts,
            "zone_s": dict(self._zone_s),
            "running": self._running,
            "last_known_running": self._last_known_running,
            "last_ts": self._last_ts,
            "zone": self._zone,
            "zone_ts": self._zone_ts,
            "baseline": dict(self._baseline),
            "due_count": dict(self._due_count),
            "due_since": dict(self._due_since),
            "audit": [asdict(a) for a in self._audit],
        }

    def load_dict(self, data: Mapping[str, Any]) -> MaintenanceCounters:
        """Restore state written by :meth:`to_dict`; service intervals added since start at zero."""
        if data.get("v") != 1 or data.get("asset") != self.config.asset:
            raise ValueError(
                f"counter state (v={data.get('v')!r}, asset={data.get('asset')!r}) does not belong to "
                f"asset {self.config.asset!r} (v=1)"
            )
        self._run_s = float(data["run_s"])
        self._starts = int(data["starts"])
        self._zone_s = {z: float(data["zone_s"].get(z, 0.0)) for z in ZONES}
        self._running = data["running"]
        self._last_known_running = data["last_known_running"]
        self._last_ts = data["last_ts"]
        self._zone = data["zone"]
        self._zone_ts = data["zone_ts"]
        for name in self._baseline:
            self._baseline[name] = float(data["baseline"].get(name, 0.0))
            self._due_count[name] = int(data["due_count"].get(name, 0))
            self._due_since[name] = data["due_since"].get(name)
        self._audit = deque(
            (AuditEntry(**{**a, "previous": dict(a["previous"])}) for a in data["audit"]), maxlen=MAX_AUDIT_ENTRIES
        )
        return self

    # ---- internals -----------------------------------------------------------------------------

    def _service(self, name: str) -> ServiceInterval:
        for s in self.config.services:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.config.services) or "none configured"
        raise KeyError(f"asset {self.config.asset} has no service interval {name!r} (known: {known})")

    def _accumulate(self, ts_s: float) -> None:
        if self._last_ts is not None and self._running:
            self._run_s += min(ts_s - self._last_ts, self.config.max_gap_s)
        self._last_ts = ts_s

    def _check_services(self, ts_s: float) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        for svc in self.config.services:
            intervals = math.floor(self.since_service(svc.name) / svc.every + 1e-9)
            announced = self._due_count[svc.name]
            if intervals > announced:
                self._due_count[svc.name] = intervals
                if announced == 0:
                    self._due_since[svc.name] = ts_s
                    events.append(self._event(svc, "raised", ts_s))
                else:
                    events.append(self._event(svc, "updated", ts_s))
        return events

    def _event(self, svc: ServiceInterval, state: EventState, ts_s: float, extra: str = "") -> AlarmEvent:
        asset = self.config.asset
        since = self.since_service(svc.name)
        what = "run hours" if svc.unit == "h" else "starts"
        if state == "cleared":
            message = f"{asset}: {extra}"
        else:
            over = " (overdue)" if self._due_count[svc.name] > 1 else ""
            message = (
                f"{asset}: service {svc.name!r} due{over}: {fmt_number(since)} {what} since the last service "
                f"(every {fmt_number(svc.every)} {svc.unit}); totals {fmt_number(self.run_hours)} run hours, "
                f"{self._starts} starts"
            )
        due_since = self._due_since[svc.name]
        return AlarmEvent(
            alarm_id=f"{asset}:maintenance:{svc.name}",
            state=state,
            severity=svc.severity,
            kind="maintenance_due",
            rule=svc.name,
            point=asset,
            level="due",
            value=since,
            limit=svc.every,
            unit=svc.unit,
            message=message,
            first_ts=due_since if due_since is not None else ts_s,
            last_ts=ts_s,
            episode=1,
            evidence={"since_service": since, **self.counters()},
        )
