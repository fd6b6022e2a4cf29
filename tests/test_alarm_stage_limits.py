"""Limit rules on the agent's path skip the state-machine step when a sample cannot change anything (issue 9).

:meth:`LimitAlarm.absorb` records such a sample (sample clock, reported value) without the full step, and
:meth:`AlarmStage.on_readings` routes readings through per-device plans built once per config. These
property tests feed the same random sample sequences through the fast path and through plain
``LimitAlarm.update`` calls (the agent's former per-reading loop, kept below as the reference) and require
identical events, field by field, and identical saved state after every step.
"""

from __future__ import annotations

import asyncio
import functools
import math
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diagnostics.alarms import AlarmEvent, LimitAlarm, LimitRule, StaleAlarm
from drivers.base import Quality, Reading
from edge_agent import alarm_stage as alarm_stage_module
from edge_agent.alarm_stage import AlarmStage
from edge_agent.config import load_config_data
from edge_agent.records import Priority

T0 = 1_800_000_000.0

# Values around every limit and release point of the rules below (and exactly on them).
EDGES = [0.0, 9.0, 9.5, 10.0, 10.5, 11.0, 12.0, 19.0, 20.0, 21.0, 21.9, 22.0, 22.1, 50.0, 50.5, 78.0, 79.5,
         80.0, 80.5, 81.0, 82.0, 88.0, 89.0, 90.0, 91.0, 100.0, 4.9, 5.0, 5.1, 99.0, 101.0]
# Values well inside one level of each rule, drawn often so that settled runs (the fast path) are common.
STEADY = st.sampled_from([3.0, 5.0, 6.0, 15.0, 16.0, 50.0, 51.0, 60.0, 85.0, 86.0, 95.0, 96.0, 150.0])
VALUES = st.one_of(STEADY, STEADY, STEADY, st.sampled_from(EDGES), st.floats(-20, 120), st.integers(0, 200),
                   st.sampled_from([None, math.nan, math.inf, -math.inf, "text", True]))
QUALITIES = st.sampled_from([Quality.GOOD, Quality.GOOD, Quality.GOOD, Quality.UNCERTAIN, Quality.BAD])


# ----------------------------------------------------------------- LimitAlarm: absorb or update vs update
RULES = [
    LimitRule("all", "d/p", high=80, high_high=90, low=20, low_low=10, deadband=2, on_delay_s=2, off_delay_s=3),
    LimitRule("hi0", "d/p", high=80, deadband=0.0, min_update_interval_s=5),
    LimitRule("hh-only", "d/p", high_high=90, deadband=0.5),
    LimitRule("lo", "d/p", low=20, low_low=10, deadband=1, off_delay_s=1),
]

STEPS = st.lists(st.one_of(
    st.tuples(st.just("sample"), st.sampled_from([-2.0, 0.0, 0.5, 1.0, 3.0]), VALUES, QUALITIES),
    st.tuples(st.just("tick"), st.sampled_from([0.0, 1.0, 4.0]), st.none(), st.none()),
    st.tuples(st.just("enable"), st.just(0.0), st.booleans(), st.none()),
    st.tuples(st.just("shelve"), st.just(0.0), st.sampled_from([0.5, 5.0]), st.none()),
    st.tuples(st.just("unshelve"), st.just(0.0), st.none(), st.none()),
    st.tuples(st.just("ack"), st.just(0.0), st.none(), st.none()),
), min_size=5, max_size=60)


def _drive(alarm: LimitAlarm, steps: Sequence[tuple[str, float, Any, Any]], fast: bool) -> list[object]:
    out: list[object] = []
    t = T0
    for kind, dt, arg, quality in steps:
        if kind == "sample":
            ts = t + dt
            t = max(t, ts)
            value = float(arg) if isinstance(arg, (int, float)) and not isinstance(arg, bool) else None
            if fast and value is not None and quality is not Quality.BAD and alarm.absorb(ts, value):
                out.append([])
            else:
                out.append(alarm.update(ts, value, quality.value))
        elif kind == "tick":
            t += dt
            out.append(alarm.tick(t))
        elif kind == "enable":
            out.append(alarm.set_enabled(t, arg))
        elif kind == "shelve":
            alarm.shelve(t, arg, "op")
        elif kind == "unshelve":
            out.append(alarm.unshelve(t))
        else:
            try:
                out.append(alarm.acknowledge("op", t))
            except ValueError as exc:
                out.append(str(exc))
        out.append(alarm.to_dict())
        out.append(alarm.machine.out_of_order)
    return out


@settings(max_examples=1000, deadline=None)
@given(rule=st.sampled_from(RULES), steps=STEPS)
def test_absorb_is_update_for_every_sample_it_takes(rule: LimitRule, steps: list[tuple[str, float, Any, Any]]) -> None:
    assert _drive(LimitAlarm(rule), steps, fast=True) == _drive(LimitAlarm(rule), steps, fast=False)


@settings(max_examples=300, deadline=None)
@given(rule=st.sampled_from(RULES), code=st.sampled_from([-2, -1, 0, 1, 2]),
       value=st.one_of(st.sampled_from(EDGES), st.floats(allow_nan=True, allow_infinity=True)))
def test_steady_interval_is_inside_what_classify_code_keeps(rule: LimitRule, code: int, value: float) -> None:
    alarm = LimitAlarm(rule)
    lo, hi = alarm._steady[code + 2]
    if lo < value < hi:
        assert rule.bands().classify_code(value, code) == code


def test_absorb_refuses_what_update_must_judge() -> None:
    alarm = LimitAlarm(RULES[0])
    assert not alarm.absorb(T0, 50.0)  # never observed: the first sample goes through update
    assert alarm.update(T0, 50.0) == []
    assert alarm.absorb(T0 + 1, 50.0) and alarm.machine.last_value == 50.0
    assert alarm.to_dict()["machine"]["last_sample_ts"] == T0 + 1  # type: ignore[index]
    assert not alarm.absorb(T0 + 0.5, 50.0)  # older than the newest sample: update counts it
    assert not alarm.absorb(T0 + 2, 85.0)  # the level changes
    assert not alarm.absorb(T0 + 2, math.nan) and not alarm.absorb(T0 + 2, math.inf)
    assert not alarm.absorb(math.inf, 50.0) and not alarm.absorb(math.nan, 50.0)
    alarm.shelve(T0 + 2, 10, "op")
    assert not alarm.absorb(T0 + 3, 50.0)  # a shelve is pending


# ----------------------------------------------------------------- AlarmStage: fast path vs the former loop
async def _former_on_readings(stage: AlarmStage, device: str, readings: Sequence[Reading],
                              offset: float | None = None) -> None:
    """AlarmStage.on_readings before the fast path: every rule of every reading takes a full update."""
    rules = stage.rules
    if not (rules.by_point or rules.references or stage._counter_sources or stage._interlock_inputs):
        return
    events: list[AlarmEvent] = []
    latest = stage._latest
    for r in readings:
        key = f"{device}/{r.point}"
        alarms = rules.by_point.get(key)
        references = rules.references.get(key)
        counted = stage._counter_sources.get(key)
        good = r.quality is Quality.GOOD
        raw = r.value
        if key in stage._interlock_inputs:
            latest[key] = raw if good else None
        if not (alarms or references or counted):
            continue
        value = float(raw) if isinstance(raw, (int, float)) else None  # on/off states as 1.0 / 0.0
        latest[key] = raw if good else None
        ts = (r.receive_ts if not r.source_ts or offset is None or r.quality is Quality.BAD
              else r.source_ts + offset)
        for alarm in alarms or ():
            t = r.receive_ts if isinstance(alarm, StaleAlarm) else ts
            events.extend(alarm.update(t, value, r.quality.value))
        for dev in references or ():
            dev.update_reference(ts, value, r.quality.value)
        for asset in counted or ():
            counters, _source, kind = stage.counters[asset]
            if kind == "running":
                events.extend(counters.update_running(ts, bool(raw) if good and raw is not None else None))
            else:
                events.extend(counters.update_level(ts, value, r.quality.value))
    if rules.interlocks:
        now = alarm_stage_module.time.time()  # the stage's clock (patched by the property test)
        for interlock, scope, gated in rules.interlocks:
            values = {name: latest.get(ref) for name, ref in scope.items()}
            values.update({ref: latest.get(ref) for ref in interlock.names if "/" in ref})
            events.extend(interlock.apply(now, values, gated))  # type: ignore[arg-type]
    await stage._publish(events)


def _config(data_dir: Path) -> Any:
    point = {"table": "holding", "type": "float32", "unit": "degC"}
    return load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": str(data_dir)},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [
            {"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "poll_interval": "1s", "points": [
                {"name": "temp", "address": 0, **point}, {"name": "pressure", "address": 2, **point},
                {"name": "running", "table": "coil", "address": 0, "type": "bool"},
                {"name": "speed", "table": "holding", "address": 4, "type": "uint16", "unit": "rpm"}]},
            {"name": "plc2", "protocol": "modbus_tcp", "host": "127.0.0.2", "poll_interval": "1s", "points": [
                {"name": "temp", "address": 0, **point}]},
        ],
        "assets": [{"name": "motor-1", "points": ["plc/temp", "plc/pressure", "plc/running", "plc/speed"]}],
        "rules": [
            {"name": "temp", "point": "plc/temp", "high": 80, "high_high": 90, "low": 20, "low_low": 10,
             "deadband": 2, "on_delay": "2s", "off_delay": "3s"},
            {"kind": "stale", "name": "temp-stale", "point": "plc/temp", "intervals": 3},
            {"name": "temp-hi", "point": "plc/temp", "high": 50, "deadband": 0.5, "min_update_interval": "5s"},
            {"name": "pressure", "point": "plc/pressure", "high": 5, "when": "running"},
            {"name": "speed-low", "point": "plc/speed", "low": 100, "deadband": 1, "when": "running",
             "off_delay": "1s"},
            {"point": "plc2/temp", "high": 80},
        ],
        "alarms": {"update_interval": 0},
    }, "limits-test")


class Sink:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, object]]] = []

    async def __call__(self, topic: str, body: dict[str, object], priority: Priority) -> None:
        self.records.append((topic, body))


STAGE_STEPS = st.lists(st.one_of(
    st.tuples(st.just("read"), st.sampled_from([-2.0, 0.0, 0.5, 1.0, 3.0, 7.0]),
              st.sampled_from(["plc", "plc", "plc2", "other"]),
              st.lists(st.tuples(st.sampled_from(["temp", "pressure", "running", "speed", "unknown"]),
                                 st.one_of(VALUES, st.booleans()), QUALITIES), max_size=5)),
    st.tuples(st.just("tick"), st.sampled_from([0.5, 2.0, 5.0]), st.none(), st.none()),
    st.tuples(st.just("ack"), st.just(0.0), st.sampled_from(["temp", "temp-hi", "pressure", "speed-low"]),
              st.none()),
    st.tuples(st.just("shelve"), st.just(0.0), st.sampled_from(["temp", "temp-hi", "pressure"]),
              st.sampled_from([1.0, 6.0])),
), min_size=5, max_size=40)


async def _run_stage(steps: list[tuple[str, float, Any, Any]], fast: bool, clock: list[float]) -> list[object]:
    with tempfile.TemporaryDirectory() as d:
        sink = Sink()
        stage = AlarmStage(_config(Path(d)), {}, sink, Path(d))
        out: list[object] = []
        for kind, dt, a, b in steps:
            if kind == "read":
                clock[0] += max(dt, 0.0)
                ts = clock[0] + min(dt, 0.0)
                readings = [Reading(p, v, q, receive_ts=clock[0], source_ts=ts) for p, v, q in b]
                feed = stage.on_readings if fast else functools.partial(_former_on_readings, stage)
                try:
                    await feed(a, readings)
                except TypeError as exc:  # a text value for an interlock's name (both paths alike)
                    out.append(repr(exc))
            elif kind == "tick":
                clock[0] += dt
                await stage.tick(clock[0])
            elif kind == "ack":
                try:
                    out.append(await stage.acknowledge(a, "op"))
                except (KeyError, ValueError) as exc:
                    out.append(str(exc))
            else:
                out.append(await stage.shelve(a, b, "op"))
            out.append(stage._state())
        out.append(sink.records)
        return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=STAGE_STEPS)
def test_stage_fast_path_emits_what_the_former_loop_emits(steps: list[tuple[str, float, Any, Any]]) -> None:
    clock = [T0]
    fake_time = types.SimpleNamespace(time=lambda: clock[0])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(alarm_stage_module, "time", fake_time)
        fast = asyncio.run(_run_stage(steps, True, clock))
        clock[0] = T0
        slow = asyncio.run(_run_stage(steps, False, clock))
    assert fast == slow


async def test_steady_limit_samples_skip_the_machine_but_keep_value_and_clock(tmp_path: Path) -> None:
    t0 = time.time() - 100  # the interlock acts at the agent's clock: samples must not be in its future
    sink = Sink()
    stage = AlarmStage(_config(tmp_path), {}, sink, tmp_path)
    alarm = stage.find("pressure")
    assert isinstance(alarm, LimitAlarm)
    await stage.on_readings("plc", [Reading("running", True, Quality.GOOD, t0),
                                    Reading("pressure", 1.0, Quality.GOOD, t0)])
    calls: list[float] = []
    real_step = alarm.machine.step
    alarm.machine.step = lambda *a, **k: calls.append(a[0]) or real_step(*a, **k)  # type: ignore[method-assign]
    await stage.on_readings("plc", [Reading("pressure", 2.0, Quality.GOOD, t0 + 1)])
    assert calls == [] and alarm.machine.last_value == 2.0
    await stage.on_readings("plc", [Reading("pressure", 6.0, Quality.GOOD, t0 + 2)])
    assert calls == [t0 + 2] and sink.records[-1][1]["state"] == "raised"
    await stage.on_readings("plc", [Reading("pressure", 7.0, Quality.GOOD, t0 + 3)])  # still high: absorbed
    assert calls == [t0 + 2] and alarm.machine.last_value == 7.0
    await stage.on_readings("plc", [Reading("running", False, Quality.GOOD, t0 + 4)])
    # the interlock's clear reports the latest value, absorbed or not
    assert sink.records[-1][1]["state"] == "cleared" and sink.records[-1][1]["value"] == 7.0


async def test_delays_run_on_the_agent_clock_whatever_the_device_clock(tmp_path: Path) -> None:
    """A device clock a minute behind (or ahead) of the agent's must neither skip an on-delay (a one-second
    spike raising at once) nor stretch it: the rule 'temp' has on_delay 2 s, off_delay 3 s."""
    for skew_s in (-60.0, 0.0, 60.0):
        sink = Sink()
        data_dir = tmp_path / f"skew{skew_s:+.0f}"
        stage = AlarmStage(_config(data_dir), {}, sink, data_dir)
        t0 = time.time()

        async def push(value: float, at_s: float, t0: float = t0, skew_s: float = skew_s,
                       stage: AlarmStage = stage) -> None:
            """One publish of a subscription: the PLC's clock on the value, the server's on a bad point."""
            batch = [Reading("temp", value, Quality.GOOD, receive_ts=t0 + at_s, source_ts=t0 + at_s + skew_s),
                     Reading("pressure", None, Quality.BAD, receive_ts=t0 + at_s, source_ts=t0 + at_s)]
            await stage.on_readings("plc", batch, pushed_offset=alarm_stage_module.source_clock_offset(batch))

        await push(85.0, 0.0)  # a one-second spike
        await stage.tick(t0 + 1.0)
        await push(70.0, 1.0)
        for k in range(2, 8):
            await stage.tick(t0 + k)
        spike = [b for _, b in sink.records if b.get("rule") == "temp"]
        assert spike == [], (skew_s, spike)
        await push(85.0, 8.0)  # sustained: raised after 2 s on the agent clock
        await stage.tick(t0 + 9.0)
        assert [b for _, b in sink.records if b.get("rule") == "temp"] == [], skew_s
        await push(85.0, 9.5)
        await stage.tick(t0 + 10.0)
        raised = [b for _, b in sink.records if b.get("rule") == "temp"]
        assert [b["state"] for b in raised] == ["raised"], (skew_s, raised)


def test_a_publish_keeps_its_values_apart_on_the_agent_clock() -> None:
    """Several values of one point in one publish keep their spacing (the offset is the publish's), placed
    so that the newest good one lands at the receive time; a bad reading's server time does not count."""
    t0 = 1_000_000.0
    batch = [Reading("temp", float(v), Quality.GOOD, receive_ts=t0 + 5.0, source_ts=t0 - 60.0 + 0.2 * k)
             for k, v in enumerate(range(5))]
    batch.append(Reading("pressure", None, Quality.BAD, receive_ts=t0 + 5.0, source_ts=t0 + 5.0))
    offset = alarm_stage_module.source_clock_offset(batch)
    assert offset is not None
    assert [r.source_ts + offset for r in batch[:5]] == pytest.approx([t0 + 4.2, t0 + 4.4, t0 + 4.6, t0 + 4.8,
                                                                       t0 + 5.0])
    assert alarm_stage_module.source_clock_offset(batch[5:]) is None  # only bad readings: no usable clock
