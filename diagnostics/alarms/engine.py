"""All alarm rules of an agent behind one object: route samples by point, tick, act, persist.

The engine owns no clock and does no I/O; the agent calls it:

    engine = AlarmEngine(rules, interlocks, StormGuard())
    events = engine.on_values(ts, {"motor-plc/bearing_temp": (96.2, "good"), ...})   # a poll cycle
    events += engine.on_vibration(ts, "pump-opcua/vib_de", velocity_rms_mm_s=4.7,
                                  faults={"bearing_outer_race": (3.2, {"bpfo_hz": 107.4})})
    events += engine.tick(now)                     # about once a second
    events += engine.device_down("motor-plc", now, "timeout")   # from the comms state
    state = engine.to_dict()                       # persist after every batch of events
    events = AlarmEngine(rules, ...).load_dict(state, now)  # after a restart: closes orphans only

Limit rules run vectorised per device (:class:`~diagnostics.alarms.bulk.BulkLimitEvaluator`); the
other kinds run one state machine per rule. Every event passes the storm guard when one is given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diagnostics.alarms.base import NUMBER_TYPES, RuleAlarm
from diagnostics.alarms.bulk import BulkLimitEvaluator
from diagnostics.alarms.deviation import DeviationAlarm, DeviationRule
from diagnostics.alarms.events import QUALITIES, AlarmEvent, Quality, check_quality
from diagnostics.alarms.interlock import Interlock
from diagnostics.alarms.limit import LimitAlarm, LimitRule
from diagnostics.alarms.machine import AlarmSnapshot, orphan_clear_event
from diagnostics.alarms.prediction import PredictionAlarm, PredictionRule
from diagnostics.alarms.quality import BadQualityAlarm, BadQualityRule, StaleAlarm, StaleRule
from diagnostics.alarms.rate import RateAlarm, RateRule
from diagnostics.alarms.storm import StormGuard, device_of_point
from diagnostics.alarms.vibration import FaultAlarm, FaultRule, ZoneAlarm, ZoneRule
from diagnostics.expr import Scalar

RuleConfig = (
    LimitRule | RateRule | DeviationRule | StaleRule | BadQualityRule | ZoneRule | FaultRule | PredictionRule
)
Sample = tuple[object, Quality | str]
ENGINE_STATE_VERSION = 1


@dataclass(frozen=True, slots=True)
class InterlockSpec:
    """Enable ``rule_ids`` only while ``expression`` is true.

    Names in the expression are point names (``device/point``) unless ``names`` maps a short name to
    one, e.g. ``{"running": "motor-plc/running"}``.
    """

    expression: str
    rule_ids: tuple[str, ...]
    names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a value point's samples go (one dict lookup per sample on the hot path)."""

    point: str
    limits: tuple[tuple[str, int], ...]
    rules: tuple[RuleAlarm, ...]
    references: tuple[DeviationAlarm, ...]
    watched: bool


def _build(rule: RuleConfig) -> RuleAlarm:
    if isinstance(rule, RateRule):
        return RateAlarm(rule)
    if isinstance(rule, DeviationRule):
        return DeviationAlarm(rule)
    if isinstance(rule, StaleRule):
        return StaleAlarm(rule)
    if isinstance(rule, BadQualityRule):
        return BadQualityAlarm(rule)
    if isinstance(rule, ZoneRule):
        return ZoneAlarm(rule)
    if isinstance(rule, FaultRule):
        return FaultAlarm(rule)
    if isinstance(rule, PredictionRule):
        return PredictionAlarm(rule)
    if isinstance(rule, LimitRule):
        return LimitAlarm(rule)
    raise TypeError(f"not an alarm rule: {rule!r}")


class AlarmEngine:
    """Every alarm of the agent; see the module docstring for the calls the agent makes."""

    def __init__(
        self,
        rules: Sequence[RuleConfig],
        interlocks: Sequence[InterlockSpec] = (),
        storm_guard: StormGuard | None = None,
        device_of: Callable[[str], str] = device_of_point,
    ) -> None:
        counts = Counter(r.rule_id for r in rules)
        dupes = sorted(i for i, n in counts.items() if n > 1)
        if dupes:
            raise ValueError(f"alarm rule ids must be unique; duplicated: {', '.join(dupes)}")
        self.guard = storm_guard
        self._device_of = device_of
        self._configs: dict[str, RuleConfig] = {r.rule_id: r for r in rules}
        # limit rules: one vectorised evaluator per device, positions per point
        by_device: dict[str, list[LimitRule]] = {}
        for r in rules:
            if isinstance(r, LimitRule):
                by_device.setdefault(device_of(r.point), []).append(r)
        self._bulk = {dev: BulkLimitEvaluator(rs) for dev, rs in by_device.items()}
        self._limit_pos: dict[str, list[tuple[str, int]]] = {}
        self._owner: dict[str, tuple[str, int]] = {}  # rule id -> (device, position) for limit rules
        for dev, bulk in self._bulk.items():
            for i, r in enumerate(bulk.rules):
                self._limit_pos.setdefault(r.point, []).append((dev, i))
                self._owner[r.rule_id] = (dev, i)
        # every other rule: its own state machine
        self._alarms: dict[str, RuleAlarm] = {}
        self._value_rules: dict[str, list[RuleAlarm]] = {}
        self._references: dict[str, list[DeviationAlarm]] = {}
        self._zones: dict[str, list[ZoneAlarm]] = {}
        self._faults: dict[str, list[FaultAlarm]] = {}
        for r in rules:
            if isinstance(r, LimitRule):
                continue
            alarm = _build(r)
            self._alarms[r.rule_id] = alarm
            if isinstance(alarm, ZoneAlarm):
                self._zones.setdefault(r.point, []).append(alarm)
            elif isinstance(alarm, FaultAlarm):
                self._faults.setdefault(r.point, []).append(alarm)
            else:
                self._value_rules.setdefault(r.point, []).append(alarm)
            if isinstance(alarm, DeviationAlarm) and alarm.rule.reference_point is not None:
                self._references.setdefault(alarm.rule.reference_point, []).append(alarm)
        # interlocks
        self._interlocks: list[tuple[Interlock, InterlockSpec]] = []
        self._latest: dict[str, Scalar | None] = {}
        for spec in interlocks:
            unknown = [i for i in spec.rule_ids if i not in self._alarms and i not in self._owner]
            if unknown:
                raise ValueError(f"interlock {spec.expression!r} names unknown rule ids: {', '.join(unknown)}")
            self._interlocks.append((Interlock(spec.expression), spec))
        self._watched = {spec.names.get(n, n) for lock, spec in self._interlocks for n in lock.names}
        self._routes: dict[str, _Route] = {}
        self._build_routes()

    # ---- feeding -------------------------------------------------------------------------------

    def on_values(self, ts_s: float, samples: Mapping[str, Sample]) -> list[AlarmEvent]:
        """Feed point samples ``{point: (value, quality)}`` taken at ``ts_s`` (epoch s)."""
        events: list[AlarmEvent] = []
        routes = self._routes
        routed: list[tuple[_Route, float | None, str]] = []
        with_references = False
        for point, (value, quality) in samples.items():
            if quality not in QUALITIES:
                check_quality(quality)  # raises with the message
            route = routes.get(point)
            if route is not None:
                routed.append((route, value if isinstance(value, NUMBER_TYPES) else None, quality))
                with_references = with_references or bool(route.references)
        if with_references:  # references first: a deviation sees this cycle's ambient
            for route, number, quality in routed:
                for dev_alarm in route.references:
                    dev_alarm.update_reference(ts_s, number, quality)
        per_device: dict[str, tuple[list[int], list[float], list[bool]]] = {}
        watched_changed = False
        nan = float("nan")
        for route, number, quality in routed:
            if route.watched:
                self._latest[route.point] = number if quality != "bad" else None
                watched_changed = True
            for dev, i in route.limits:
                lists = per_device.get(dev)
                if lists is None:
                    lists = per_device[dev] = ([], [], [])
                idx, vals, good = lists
                idx.append(i)
                vals.append(nan if number is None else number)
                good.append(quality != "bad")
            for alarm in route.rules:
                events += alarm.update(ts_s, number, quality)
        for dev, (idx, vals, good) in per_device.items():
            events += self._bulk[dev].update(ts_s, np.array(vals), np.array(good), index=np.array(idx))
        if watched_changed:
            events += self._apply_interlocks(ts_s)
        return self._filter(events)

    def on_vibration(
        self,
        ts_s: float,
        point: str,
        velocity_rms_mm_s: float | None,
        faults: Mapping[str, tuple[float | None, Mapping[str, object]]] | None = None,
        quality: Quality | str = "good",
    ) -> list[AlarmEvent]:
        """Feed one capture's results: broadband velocity RMS (mm/s) and fault scores with evidence."""
        q = check_quality(quality)
        events: list[AlarmEvent] = []
        for zone in self._zones.get(point, ()):
            events += zone.update(ts_s, velocity_rms_mm_s, q)
        for alarm in self._value_rules.get(point, ()):  # trends / predictions on the velocity
            events += alarm.update(ts_s, velocity_rms_mm_s, q)
        faults = faults or {}
        for fault_alarm in self._faults.get(point, ()):
            score, evidence = faults.get(fault_alarm.rule.fault, (None, {}))
            events += fault_alarm.update_capture(ts_s, score, evidence, q if score is not None else "bad")
        return self._filter(events)

    def tick(self, now_s: float) -> list[AlarmEvent]:
        """Let time pass to ``now_s`` (epoch s): delays, staleness, shelves, storm summaries."""
        events: list[AlarmEvent] = []
        for bulk in self._bulk.values():
            events += bulk.tick(now_s)
        for alarm in self._alarms.values():
            events += alarm.tick(now_s)
        events = self._filter(events)
        if self.guard is not None:
            events += self.guard.tick(now_s)
        return events

    # ---- comms state ---------------------------------------------------------------------------

    def device_down(self, device: str, ts_s: float, reason: str = "") -> list[AlarmEvent]:
        """A device's link went down: one device alarm; its points' comms alarms are held back."""
        return self.guard.device_down(device, ts_s, reason) if self.guard is not None else []

    def device_up(self, device: str, ts_s: float) -> list[AlarmEvent]:
        """A device's link is back."""
        return self.guard.device_up(device, ts_s) if self.guard is not None else []

    # ---- operator actions by alarm id ----------------------------------------------------------

    def rule_ids(self) -> list[str]:
        """Ids of every configured rule (also their alarm ids)."""
        return [*self._owner, *self._alarms]

    def acknowledge(self, alarm_id: str, by: str, ts_s: float) -> AlarmEvent:
        """Acknowledge an active alarm; ``KeyError`` for an unknown id, ``ValueError`` when not active."""
        if alarm_id in self._owner:
            dev, _ = self._owner[alarm_id]
            return self._bulk[dev].acknowledge(alarm_id, by, ts_s)
        return self._alarm(alarm_id).acknowledge(by, ts_s)

    def shelve(self, alarm_id: str, now_s: float, duration_s: float, by: str) -> None:
        """Shelve an alarm for ``duration_s`` seconds."""
        if alarm_id in self._owner:
            dev, _ = self._owner[alarm_id]
            self._bulk[dev].shelve(alarm_id, now_s, duration_s, by)
        else:
            self._alarm(alarm_id).shelve(now_s, duration_s, by)

    def unshelve(self, alarm_id: str, now_s: float) -> list[AlarmEvent]:
        """End a shelve early; returns the events that bring the outside view up to date."""
        if alarm_id in self._owner:
            dev, _ = self._owner[alarm_id]
            return self._filter(self._bulk[dev].unshelve(alarm_id, now_s))
        return self._filter(self._alarm(alarm_id).unshelve(now_s))

    def snapshot(self) -> list[AlarmSnapshot]:
        """Operator view of every active or shelved alarm."""
        out = [s for bulk in self._bulk.values() for s in bulk.snapshot()]
        for alarm in self._alarms.values():
            snap = alarm.snapshot()
            if snap.active_level is not None or snap.shelved_until is not None:
                out.append(snap)
        return out

    # ---- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """JSON-ready state of every alarm, the interlocks and the storm guard."""
        return {
            "v": ENGINE_STATE_VERSION,
            "bulk": {dev: bulk.to_dict() for dev, bulk in self._bulk.items()},
            "alarms": {rid: a.to_dict() for rid, a in self._alarms.items()},
            "interlocks": [lock.state for lock, _ in self._interlocks],
            "guard": self.guard.to_dict() if self.guard is not None else None,
        }

    def load_dict(self, data: Mapping[str, Any], now_s: float) -> list[AlarmEvent]:
        """Restore a state written by :meth:`to_dict`, possibly under a changed configuration.

        Alarms come back exactly as they were: nothing is re-raised. A stored alarm whose rule was
        removed or changed so that its state no longer fits is closed with a ``cleared`` event (when
        the outside world saw it active); those events are returned for publishing.
        """
        if data.get("v") != ENGINE_STATE_VERSION:
            raise ValueError(f"alarm engine state version {data.get('v')!r} is not {ENGINE_STATE_VERSION}")
        orphans: list[AlarmEvent] = []

        def close(state: Mapping[str, Any], why: str) -> None:
            machine = state.get("machine")
            if isinstance(machine, Mapping):
                event = orphan_clear_event(machine, now_s, why)
                if event is not None:
                    orphans.append(event)

        for stored_dev, bulk_state in (data.get("bulk") or {}).items():
            last_ts = bulk_state.get("last_ts")
            for rid, state in bulk_state.get("alarms", {}).items():
                if rid not in self._owner:
                    close(state, "its rule was removed from the configuration")
                    continue
                dev, _ = self._owner[rid]
                try:
                    self._bulk[dev].load_dict({"v": 1, "last_ts": last_ts, "alarms": {rid: state}})
                except (ValueError, KeyError, TypeError):
                    close(state, "its rule changed")
            if stored_dev in self._bulk:
                self._bulk[stored_dev].restore_last_ts(last_ts)
        for rid, state in (data.get("alarms") or {}).items():
            alarm = self._alarms.get(rid)
            if alarm is None:
                close(state, "its rule was removed from the configuration")
                continue
            try:
                alarm.load_dict(state)
            except (ValueError, KeyError, TypeError):
                close(state, "its rule changed")
                self._alarms[rid] = fresh = _build(self._configs[rid])
                self._reindex(rid, alarm, fresh)
        for (lock, _), state in zip(self._interlocks, data.get("interlocks") or [], strict=False):
            lock.restore_state(state if isinstance(state, bool) else None)
        guard = data.get("guard")
        if self.guard is not None and isinstance(guard, Mapping):
            self.guard.load_dict(guard)
        return orphans

    # ---- internals -----------------------------------------------------------------------------

    def _alarm(self, alarm_id: str) -> RuleAlarm:
        try:
            return self._alarms[alarm_id]
        except KeyError:
            raise KeyError(f"no alarm rule with id {alarm_id!r}") from None

    def _reindex(self, rid: str, old: RuleAlarm, new: RuleAlarm) -> None:
        for table in (self._value_rules, self._zones, self._faults, self._references):
            for lst in table.values():
                for i, a in enumerate(lst):
                    if a is old:
                        lst[i] = new  # type: ignore[call-overload]
        self._build_routes()

    def _build_routes(self) -> None:
        points = {*self._limit_pos, *self._value_rules, *self._references, *self._watched}
        self._routes = {
            p: _Route(
                point=p,
                limits=tuple(self._limit_pos.get(p, ())),
                rules=tuple(self._value_rules.get(p, ())),
                references=tuple(self._references.get(p, ())),
                watched=p in self._watched,
            )
            for p in points
        }

    def _apply_interlocks(self, ts_s: float) -> list[AlarmEvent]:
        events: list[AlarmEvent] = []
        for lock, spec in self._interlocks:
            values = {n: self._latest.get(spec.names.get(n, n)) for n in lock.names}
            decision = lock.decide(values)
            if decision is None:
                continue
            for rid in spec.rule_ids:
                if rid in self._owner:
                    dev, _ = self._owner[rid]
                    events += self._bulk[dev].set_enabled(rid, ts_s, decision)
                else:
                    events += self._alarms[rid].set_enabled(ts_s, decision)
        return events

    def _filter(self, events: list[AlarmEvent]) -> list[AlarmEvent]:
        if self.guard is None or not events:
            return events
        return self.guard.filter(events)
