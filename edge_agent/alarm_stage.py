"""Readings and vibration results in, alert records out: the agent's side of ``diagnostics.alarms``.

Every configured rule becomes a state machine (:mod:`edge_agent.rule_builder`): limits, rate of change,
deviation from a reference point or baseline, stale data, bad quality, trend predictions, each optionally
gated by a ``when:`` interlock. Every waveform point of an asset with a machine description gets an ISO
20816 zone alarm and one alarm per fault indicator (unbalance, misalignment, looseness, bearing defects),
raised after the indicator is detected in ``FAULT_CONSECUTIVE_CAPTURES`` consecutive captures (``iso_zone``
and ``fault`` rules override severities, delays and counts). Assets with ``maintenance:`` count run hours,
starts and time per ISO zone and raise ``maintenance_due``. A device whose link goes down raises one
``device_down`` alarm through the storm guard instead of one alarm per point.

Alarm state is saved to ``alarms.json`` in the data dir after every batch of events, *after* the events
themselves are committed to the outbox (write to a temporary file, fsync, rename). A crash between the two
can therefore repeat an event after the restart (the cloud sees the same alarm id and episode twice) but
never lose one; an agent restart neither re-raises an active alarm nor forgets a clear.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diagnostics.alarms import (
    AlarmEvent,
    DeviationAlarm,
    FaultAlarm,
    FaultRule,
    Interlock,
    LimitAlarm,
    RuleAlarm,
    StaleAlarm,
    StormGuard,
    ZoneAlarm,
    ZoneRule,
)
from diagnostics.alarms.machine import orphan_clear_event
from diagnostics.iso20816 import iso20816_3_limits
from drivers.base import Quality, Reading
from edge_agent.config import AgentConfig
from edge_agent.records import Priority
from edge_agent.rule_builder import build_counters, build_rules

if TYPE_CHECKING:  # the vibration stack (scipy) loads only when a config has waveform points
    from diagnostics.vibration import VibrationResult

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, object], Priority], Awaitable[None]]
FAULT_CONSECUTIVE_CAPTURES = 2
STATE_FILE = "alarms.json"


FAULT_TITLES = {
    "unbalance": "unbalance",
    "misalignment": "misalignment",
    "looseness": "mechanical looseness",
    "bearing_outer_race": "bearing outer-race defect",
    "bearing_inner_race": "bearing inner-race defect",
    "bearing_ball": "bearing rolling-element defect",
    "bearing_cage": "bearing cage defect",
}


def fault_message(body: dict[str, object]) -> str:
    """A maintenance engineer's sentence for a fault-indicator alert, with the evidence's frequencies."""
    evidence = body.get("evidence")
    ev = evidence if isinstance(evidence, dict) else {}
    fault = str(ev.get("fault", ""))
    title = FAULT_TITLES.get(fault, fault.replace("_", " "))
    indicator = ev.get("indicator")
    detail = ""
    if isinstance(indicator, dict) and indicator.get("frequency_hz"):
        harmonics = indicator.get("harmonics_found") or []
        detail = (f" at {float(indicator['frequency_hz']):.1f} Hz (expected {float(indicator['expected_hz']):.1f} Hz"
                  f"{', harmonics ' + ', '.join(map(str, harmonics)) if harmonics else ''})")
    if body.get("state") == "cleared":
        return f"{body.get('point')}: {title} no longer detected"
    return f"{body.get('point')}: {title} detected{detail} in {ev.get('consecutive', '?')} consecutive captures"


def write_json_atomically(path: Path, data: object) -> None:
    """Write ``data`` as JSON so that ``path`` always holds a complete file (temp file, fsync, rename)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(slots=True)
class _PointPlan:
    """What a reading of one point feeds: alarms in rule order (limit alarm or None, stale?), others."""

    key: str
    alarms: tuple[tuple[RuleAlarm, LimitAlarm | None, bool], ...]
    references: tuple[DeviationAlarm, ...]
    counted: tuple[str, ...]
    interlock_input: bool


_receive_ts = attrgetter("receive_ts")


def source_clock_offset(readings: Sequence[Reading]) -> float | None:
    """Seconds that put the source timestamps of one pushed batch (an OPC UA publish) on the agent's clock;
    None when no usable reading carries one.

    Alarm delays are judged against ticks of the agent's clock, so samples must be on it too: a PLC whose
    clock is a minute behind would otherwise meet every on-delay at once (and one ahead never clear in
    time). The newest source timestamp of the batch's good and uncertain readings is taken as received
    when the batch was (a bad reading may carry the server's clock instead of the device's); the others
    keep their spacing from it (several values of one point in one publish stay apart). Compute it for the
    whole publish, before cutting it into frames.
    """
    newest = max((r.source_ts for r in readings if r.source_ts and r.quality is not Quality.BAD), default=None)
    if newest is None:
        return None
    return float(max(map(_receive_ts, readings))) - float(newest)


class AlarmStage:
    """All alarm instances of one config, fed by the pipeline, persisted in the data dir."""

    def __init__(self, cfg: AgentConfig, units: dict[str, str], emit: Emit, data_dir: Path, *,
                 restart: bool = True) -> None:
        """``restart``: the saved state is from before this process started (its samples are stale, see
        :meth:`~diagnostics.alarms.RuleAlarm.resume_after_restart`); False for a live config change."""
        self._emit = emit
        self._restart = restart
        # Clear events for saved active alarms whose rule is gone or changed, sent at the first tick.
        self._restore_events: list[AlarmEvent] = []
        self._state_path = data_dir / STATE_FILE
        self._asset_of: dict[str, str] = {}
        for asset in cfg.assets:
            for key in asset.points:
                self._asset_of.setdefault(key, asset.name)
        self.rules = build_rules(cfg, units)
        self._update_interval_s = cfg.alarms.update_interval
        self.counters = build_counters(cfg)
        self._counter_sources: dict[str, list[str]] = {}
        for asset_name, (_c, source, _kind) in self.counters.items():
            self._counter_sources.setdefault(source, []).append(asset_name)
        self._latest: dict[str, float | bool | str | None] = {}
        # Points whose latest value an interlock reads, though no rule watches them.
        self._interlock_inputs = {ref for _i, scope, _r in self.rules.interlocks for ref in scope.values()} | {
            name for interlock, _s, _r in self.rules.interlocks for name in interlock.names if "/" in name}
        self.zone_alarms: dict[str, ZoneAlarm] = {}
        self.fault_alarms: dict[str, dict[str, FaultAlarm]] = {}
        for asset in cfg.assets:
            if asset.machine is None:
                continue
            limits = iso20816_3_limits(asset.machine.group, asset.machine.foundation)
            waveform_points = [f"{d.name}/{p.name}" for d in cfg.devices for p in d.points
                               if getattr(p, "kind", "value") == "waveform"]
            for key in (k for k in waveform_points if k in asset.points):
                zone = self.rules.zone_overrides.get(key)
                self.zone_alarms[key] = ZoneAlarm(ZoneRule(
                    rule_id=(zone.name if zone is not None and zone.name else f"{key}:iso_zone"), point=key,
                    boundaries_mm_s=(limits.ab_mm_s, limits.bc_mm_s, limits.cd_mm_s),
                    severity_c=zone.severity.zone_c if zone else "warning",
                    severity_d=zone.severity.zone_d if zone else "critical",
                    on_delay_s=zone.on_delay if zone else 0.0, off_delay_s=zone.off_delay if zone else 0.0,
                    min_update_interval_s=zone.update_interval_s(cfg.alarms.update_interval) if zone else 0.0))
                gate = self.rules.vibration_gates.get((key, "iso_zone"))
                if gate is not None:  # when: judged with the asset's latest values, like a limit rule's
                    gate[2].append(self.zone_alarms[key])
                self.fault_alarms[key] = {}
        self._plans = self._build_plans()
        storm = cfg.alarms.storm
        self.storm = StormGuard(summary_after_s=storm.summary_after, release_after_s=storm.release_after)
        self._interval_counts: dict[str, dict[str, int]] = {}
        self._load()

    # ----------------------------------------------------------------- lookup
    @property
    def limit_alarms(self) -> dict[str, list[LimitAlarm]]:
        """The limit alarms by point."""
        out: dict[str, list[LimitAlarm]] = {}
        for point, alarms in self.rules.by_point.items():
            limits = [a for a in alarms if isinstance(a, LimitAlarm)]
            if limits:
                out[point] = limits
        return out

    def all_alarms(self) -> Iterable[RuleAlarm]:
        """Every alarm instance."""
        yield from self.rules.all()
        yield from self.zone_alarms.values()
        for faults in self.fault_alarms.values():
            yield from faults.values()

    def find(self, alarm_id: str) -> RuleAlarm | None:
        """The alarm whose id (or rule id) is ``alarm_id``."""
        for alarm in self.all_alarms():
            if alarm.rule_id == alarm_id or alarm.snapshot().alarm_id == alarm_id:
                return alarm
        return None

    def active(self) -> list[dict[str, object]]:
        """Snapshots of the alarms that are currently raised (for status and remote commands)."""
        out = []
        for alarm in self.all_alarms():
            snap = alarm.snapshot()
            if snap.active_level is not None:
                point = getattr(getattr(alarm, "rule", None), "point", None)
                out.append(dataclasses.asdict(snap) | {"rule": alarm.rule_id, "point": point,
                                                       "asset": self._asset_of.get(str(point), None)})
        return out

    # ----------------------------------------------------------------- inputs
    def _build_plans(self) -> dict[str, dict[str, _PointPlan]]:
        """Per device, per point name: what a reading of that point feeds (built once per config).

        A key ``device/point`` is filed under every split at a ``/``, so the lookup by (device, point
        name) finds exactly the keys ``f"{device}/{point}"`` would, without building that string per
        reading.
        """
        rules = self.rules
        keys = set(rules.by_point) | set(rules.references) | set(self._counter_sources) | self._interlock_inputs
        self._has_inputs = bool(keys)
        plans: dict[str, dict[str, _PointPlan]] = {}
        for key in keys:
            entries = tuple(
                (alarm, alarm if type(alarm) is LimitAlarm else None, isinstance(alarm, StaleAlarm))
                for alarm in rules.by_point.get(key, ()))
            plan = _PointPlan(key, entries, tuple(rules.references.get(key, ())),
                              tuple(self._counter_sources.get(key, ())), key in self._interlock_inputs)
            for i, ch in enumerate(key):
                if ch == "/":
                    plans.setdefault(key[:i], {})[key[i + 1:]] = plan
        return plans

    async def on_readings(self, device: str, readings: Sequence[Reading], pushed_offset: float | None = None
                          ) -> None:
        """Feed one device's readings to the rules, references, interlocks and counters of their points.

        Samples are placed on the agent's clock: a polled reading at its receive time (an OPC UA read's
        source timestamp is when the value last changed, possibly hours ago, not when it was sampled); a
        pushed one (a data change) at its source time plus ``pushed_offset`` (:func:`source_clock_offset`
        of its publish), or its receive time without one.

        A limit rule's sample that cannot change anything (usable value, same level code, machine
        settled) is recorded by :meth:`LimitAlarm.absorb` instead of a full state-machine step; the
        events and the saved state are the same (tests/test_alarm_stage_limits.py checks this).
        """
        if not self._has_inputs:
            return
        events: list[AlarmEvent] = []
        plans = self._plans.get(device)
        if plans:
            latest = self._latest
            bad = Quality.BAD
            offset = pushed_offset
            for r in readings:
                plan = plans.get(r.point)
                if plan is None:
                    continue
                raw = r.value
                if plan.interlock_input:
                    latest[plan.key] = raw if r.quality is Quality.GOOD else None
                value = float(raw) if isinstance(raw, (int, float)) else None  # on/off states as 1.0 / 0.0
                # a bad reading may carry the server's clock, not the device's: at its receive time
                ts = (r.receive_ts if not r.source_ts or offset is None or r.quality is bad
                      else r.source_ts + offset)
                for alarm, limit, stale in plan.alarms:
                    if limit is not None:
                        if value is not None and r.quality is not bad and limit.absorb(ts, value):
                            continue
                        events.extend(limit.update(ts, value, r.quality.value))
                    else:
                        # Staleness is judged on the agent's clock, so a device clock that drifts cannot fake it.
                        events.extend(alarm.update(r.receive_ts if stale else ts, value, r.quality.value))
                if plan.references or plan.counted:
                    events.extend(self._feed_others(plan, r, value, ts))
        rules = self.rules
        if rules.interlocks:
            latest = self._latest
            now = time.time()
            for interlock, scope, gated in rules.interlocks:
                events.extend(interlock.apply(now, self._interlock_values(interlock, scope), gated))
        await self._publish(events)

    def _interlock_values(self, interlock: Interlock, scope: dict[str, str]) -> dict[str, Any]:
        """The latest values an interlock reads: its asset's points by short name, other points by key."""
        latest = self._latest
        values: dict[str, Any] = {name: latest.get(ref) for name, ref in scope.items()}
        values.update({ref: latest.get(ref) for ref in interlock.names if "/" in ref})
        return values

    def _feed_others(self, plan: _PointPlan, r: Reading, value: float | None, ts: float) -> list[AlarmEvent]:
        """Feed one reading to the deviation references and maintenance counters of its point."""
        events: list[AlarmEvent] = []
        good = r.quality is Quality.GOOD
        raw = r.value
        for dev in plan.references:
            dev.update_reference(ts, value, r.quality.value)
        for asset in plan.counted:
            counters, _source, kind = self.counters[asset]
            if kind == "running":
                events.extend(counters.update_running(ts, bool(raw) if good and raw is not None else None))
            else:
                events.extend(counters.update_level(ts, value, r.quality.value))
        return events

    async def on_vibration(self, asset: str, key: str, result: VibrationResult, ts_s: float) -> None:
        """Feed one vibration result to the zone and fault alarms of its point."""
        events: list[AlarmEvent] = []
        zone = self.zone_alarms.get(key)
        if zone is not None:
            events.extend(zone.update(ts_s, result.velocity_rms_mm_s, Quality.GOOD.value))
        if asset in self.counters:
            self.counters[asset][0].update_zone(ts_s, result.iso_zone)
        trends = self.rules.waveform_trends.get(key)
        if trends:
            body = result.to_dict()
            for feature, trend in trends:
                value = body.get("velocity_rms_mm_s" if feature == "velocity_rms" else feature)
                events.extend(trend.update(ts_s, float(value) if isinstance(value, (int, float)) else None))
        faults = self.fault_alarms.get(key)
        if faults is not None:
            indicators: dict[str, tuple[bool, float, dict[str, object]]] = {}
            for name, ind in result.shaft.items():
                indicators[name] = (ind.detected, ind.score, ind.to_dict())
            for name, det in result.bearing.items():
                indicators[f"bearing_{name}"] = (det.detected, det.score, det.to_dict())
            for name, (detected, score, evidence) in indicators.items():
                alarm = faults.get(name)
                if alarm is None:
                    override = self.rules.fault_overrides.get((key, name))
                    consecutive = override.consecutive if override else FAULT_CONSECUTIVE_CAPTURES
                    clear = (override.clear_consecutive or consecutive) if override else consecutive
                    alarm = faults[name] = FaultAlarm(FaultRule(
                        rule_id=(override.name if override and override.name else f"{key}:{name}"), point=key,
                        fault=name, threshold=0.5, consecutive=consecutive, clear_threshold=0.5,
                        clear_consecutive=clear, severity=override.severity if override else "warning",
                        min_update_interval_s=override.update_interval_s(self._update_interval_s) if override
                        else 0.0))
                    self._restore_one(alarm)
                    gate = self.rules.vibration_gates.get((key, name))
                    if gate is not None:  # made on demand: its when: applies from this capture on
                        interlock, scope, gated = gate
                        gated.append(alarm)
                        events.extend(interlock.apply(time.time(), self._interlock_values(interlock, scope),
                                                      [alarm]))
                events.extend(alarm.update_capture(ts_s, 1.0 if detected else 0.0,
                                                   {"score": score, "indicator": evidence}))
            made = {alarm.rule_id for alarm in faults.values()}
            for rule_id in self._pending_fault_states.pop(key, set()) - made:  # saved, and no such alarm now
                self._close_saved(self._saved[rule_id], "its rule was removed from the configuration")
        await self._publish(events)

    async def on_comms(self, device: str, down: bool, reason: str = "") -> None:
        """Tell the storm guard that ``device`` went down or came back."""
        now = time.time()
        events = self.storm.device_down(device, now, reason) if down else self.storm.device_up(device, now)
        await self._publish(events, filtered=True)

    async def tick(self, now_s: float) -> None:
        """Advance time-based transitions (on/off delays, shelving, storm summaries)."""
        events, self._restore_events = self._restore_events, []
        for alarm in self.all_alarms():
            events.extend(alarm.tick(now_s))
        for counters, _source, _kind in self.counters.values():
            events.extend(counters.tick(now_s))
        await self._publish(events)
        await self._publish(self.storm.tick(now_s), filtered=True)

    # ----------------------------------------------------------------- operator actions
    async def acknowledge(self, alarm_id: str, by: str) -> dict[str, object]:
        """Acknowledge an active alarm; the acknowledgement is published as an ``updated`` event."""
        alarm = self.find(alarm_id)
        if alarm is None:
            raise KeyError(f"no alarm {alarm_id!r}")
        event = alarm.acknowledge(by, time.time())
        await self._publish([event])
        return event.to_dict()

    async def shelve(self, alarm_id: str, duration_s: float, by: str) -> dict[str, object]:
        """Shelve an alarm for ``duration_s`` seconds (no events until then)."""
        alarm = self.find(alarm_id)
        if alarm is None:
            raise KeyError(f"no alarm {alarm_id!r}")
        alarm.shelve(time.time(), duration_s, by)
        self._save()
        return dataclasses.asdict(alarm.snapshot())

    async def reset_maintenance(self, asset: str, service: str, by: str, note: str = "") -> dict[str, object]:
        """Reset one service interval of ``asset`` (audited); its ``maintenance_due`` alert clears."""
        entry = self.counters.get(asset)
        if entry is None:
            raise KeyError(f"asset {asset!r} has no maintenance counters (assets with them: "
                           f"{', '.join(self.counters) or 'none'})")
        counters = entry[0]
        events = counters.reset_service(service, by, time.time(), note)
        await self._publish(events)
        return {"asset": asset, "service": service, "counters": counters.counters()}

    def replaced_by(self, new: AlarmStage) -> AlarmStage:
        """Hand this stage's alert counts of the running summary interval to ``new`` (a live config change
        rebuilds the stage mid-interval); return ``new``."""
        for asset, counts in self._interval_counts.items():
            mine = new._interval_counts.setdefault(asset, {})
            for state, n in counts.items():
                mine[state] = mine.get(state, 0) + n
        self._interval_counts = {}
        new._restore_events[:0], self._restore_events = self._restore_events, []  # not sent yet: new sends them
        for key, value in self._latest.items():  # interlock inputs pushed on change only: known from the start
            new._latest.setdefault(key, value)
        return new

    def take_interval_counts(self, asset: str) -> dict[str, object]:
        """Alert events of ``asset`` since the last call, by state, and how many alarms are active now."""
        counts = self._interval_counts.pop(asset, {})
        active = sum(1 for a in self.active() if a["asset"] == asset)
        return {"alarms": {"raised": counts.get("raised", 0), "updated": counts.get("updated", 0),
                           "cleared": counts.get("cleared", 0), "active": active}}

    def maintenance(self) -> dict[str, object]:
        """Counter values of every asset with maintenance counters."""
        return {asset: c.counters() for asset, (c, _s, _k) in self.counters.items()}

    # ----------------------------------------------------------------- output and state
    async def _publish(self, events: Sequence[AlarmEvent], filtered: bool = False) -> None:
        if not events:
            return
        if not filtered:
            events = self.storm.filter(events)
        for event in events:
            body = event.to_dict()
            if event.kind == "fault":
                body["message"] = fault_message(body)
            asset = self._asset_of.get(event.point) or event.point.split("/", 1)[0]
            body["asset"] = asset
            await self._emit(f"alerts/{asset}", body, Priority.ALERT)
            counts = self._interval_counts.setdefault(asset, {})
            counts[event.state] = counts.get(event.state, 0) + 1
        self._save()

    def _state(self) -> dict[str, object]:
        alarms: dict[str, object] = {a.rule_id: a.to_dict() for a in self.all_alarms()}
        for pending in self._pending_fault_states.values():  # fault alarms not made yet keep their saved state
            for rule_id in pending:
                alarms.setdefault(rule_id, self._saved[rule_id])
        return {"alarms": alarms, "storm": self.storm.to_dict(),
                "counters": {asset: c.to_dict() for asset, (c, _s, _k) in self.counters.items()}}

    def _save(self) -> None:
        try:
            write_json_atomically(self._state_path, self._state())
        except OSError as exc:
            log.error("cannot save alarm state to %s: %s", self._state_path, exc)

    def save(self) -> None:
        """Persist the alarm state now (at shutdown)."""
        self._save()

    def _load(self) -> None:
        self._saved: dict[str, Any] = {}
        self._pending_fault_states: dict[str, set[str]] = {}  # point -> saved fault alarm ids not made yet
        try:
            data = json.loads(self._state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("alarm state %s unreadable (%s); starting with every alarm normal", self._state_path, exc)
            return
        self._saved = dict(data.get("alarms", {}))
        ids = set()
        for alarm in self.all_alarms():
            ids.add(alarm.rule_id)
            self._restore_one(alarm)
        for rule_id, saved in self._saved.items():
            if rule_id in ids:
                continue
            machine = saved.get("machine") if isinstance(saved, dict) else None
            point = machine.get("point") if isinstance(machine, dict) else None
            if isinstance(machine, dict) and machine.get("kind") == "fault" and point in self.fault_alarms:
                # fault alarms are made at their point's first capture, and restored then: not gone
                self._pending_fault_states.setdefault(str(point), set()).add(rule_id)
                continue
            self._close_saved(saved, "its rule was removed from the configuration")
        try:
            self.storm.load_dict(data.get("storm", {}))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("storm guard state not restored: %s", exc)
        for asset, saved in dict(data.get("counters", {})).items():
            entry = self.counters.get(asset)
            if entry is None:
                continue
            try:
                entry[0].load_dict(saved)
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("maintenance counters of %s not restored: %s", asset, exc)

    def _restore_one(self, alarm: RuleAlarm) -> None:
        saved = self._saved.get(alarm.rule_id)
        if saved is None:
            return
        try:
            alarm.load_dict(saved)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("alarm %s: saved state does not fit the rule any more (%s); starting normal",
                        alarm.rule_id, exc)
            self._close_saved(saved, "its rule changed")
            machine = saved.get("machine") if isinstance(saved, dict) else None
            if isinstance(machine, dict):
                episodes = [v for k in ("episode", "published_episode") if isinstance(v := machine.get(k), int)]
                alarm.machine.continue_episodes(max(episodes, default=0))
            return
        if self._restart:
            alarm.resume_after_restart()

    def _close_saved(self, saved: object, reason: str) -> None:
        """Queue a ``cleared`` event for a saved alarm the outside world saw active, if its state is gone."""
        machine = saved.get("machine") if isinstance(saved, dict) else None
        if isinstance(machine, dict):
            event = orphan_clear_event(machine, time.time(), reason)
            if event is not None:
                self._restore_events.append(event)
