"""Raw telemetry without sockets: report by exception against hand-worked sequences, the payload against
its documented fields, the bulk summaries against a per-value reference, the latest-value cache."""

from __future__ import annotations

import json
import math
import statistics
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import Quality, Reading
from edge_agent.config import load_config_data
from edge_agent.pipeline import LatestValues
from edge_agent.summaries import SummaryAggregator
from edge_agent.telemetry import (
    ChangeFilter,
    CycleFrame,
    RawTelemetry,
    RawTelemetrySettings,
    TelemetryEncoder,
    telemetry_body,
)

G, U, B = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD


def frame(values: dict[str, Any], ts: float = 0.0, quality: dict[str, Quality] | None = None,
          device: str = "d") -> CycleFrame:
    q = quality or {}
    return CycleFrame(device, [Reading(p, v, q.get(p, G), ts) for p, v in values.items()])


def sent(flt: ChangeFilter, f: CycleFrame, now_s: float) -> list[str]:
    return [f.names[i] for i in flt.select(f, now_s)]


def on_change(default: tuple[float, float] = (0.0, 0.0), heartbeat_s: float = 60.0,
              **points: tuple[float, float]) -> ChangeFilter:
    return ChangeFilter(RawTelemetrySettings("d", "on_change", 1, heartbeat_s, default, points))


# ------------------------------------------------------------------------------ report by exception
def test_absolute_deadband_compares_with_the_last_sent_value() -> None:
    flt = on_change(default=(1.0, 0.0))
    seq = [10.0, 10.5, 10.9, 11.2, 10.5, 10.1, 9.9]
    # 10 first; 10.5 and 10.9 within 1 of 10; 11.2 moves 1.2; 10.5 within 1 of 11.2; 10.1 moves 1.1; 9.9 within
    expected = [True, False, False, True, False, True, False]
    got = [bool(sent(flt, frame({"x": v}), t)) for t, v in enumerate(seq)]
    assert got == expected


def test_percent_deadband_is_of_the_last_sent_magnitude() -> None:
    flt = on_change(default=(0.0, 10.0))
    seq = [200.0, 215.0, 221.0, 240.0, 244.0, -5.0, -5.4, -5.6]
    # 200 first; 215 (7.5 %) no; 221 (10.5 %) yes; 240 (8.6 % of 221) no; 244 (10.4 %) yes;
    # -5 yes; -5.4 (8 % of 5) no; -5.6 (12 %) yes
    expected = [True, False, True, False, True, True, False, True]
    assert [bool(sent(flt, frame({"x": v}), t)) for t, v in enumerate(seq)] == expected


def test_zero_deadband_sends_every_change_and_nothing_else() -> None:
    flt = on_change()
    seq = [1, 1, 2, 2, 2, 1]
    assert [bool(sent(flt, frame({"x": v}), t)) for t, v in enumerate(seq)] == [True, False, True, False, False,
                                                                                  True]


def test_point_deadband_overrides_the_device_default() -> None:
    flt = on_change(default=(0.0, 0.0), slow=(5.0, 0.0))
    assert sent(flt, frame({"fast": 1.0, "slow": 100.0}), 0) == ["fast", "slow"]
    assert sent(flt, frame({"fast": 1.5, "slow": 104.0}), 1) == ["fast"]
    assert sent(flt, frame({"fast": 1.5, "slow": 106.0}), 2) == ["slow"]


def test_heartbeat_sends_unchanged_values_again() -> None:
    flt = on_change(heartbeat_s=1.0)
    got = [sent(flt, frame({"a": 1.0, "b": 2.0}), round(0.1 * k, 1)) for k in range(25)]
    when = [k for k, names in enumerate(got) if names]
    assert when == [0, 10, 20]
    assert got[10] == ["a", "b"]


def test_heartbeat_counts_from_each_points_own_last_send() -> None:
    flt = on_change(heartbeat_s=1.0)
    assert sent(flt, frame({"a": 1.0, "b": 2.0}), 0.0) == ["a", "b"]
    assert sent(flt, frame({"a": 3.0, "b": 2.0}), 0.5) == ["a"]
    assert sent(flt, frame({"a": 3.0, "b": 2.0}), 1.0) == ["b"]
    assert sent(flt, frame({"a": 3.0, "b": 2.0}), 1.5) == ["a"]


def test_quality_change_is_sent_and_bad_values_once() -> None:
    flt = on_change(default=(10.0, 0.0))
    assert sent(flt, frame({"a": 1.0, "b": 2.0}), 0) == ["a", "b"]
    assert sent(flt, frame({"a": None, "b": 2.0}, quality={"a": B}), 1) == ["a"]
    assert sent(flt, frame({"a": None, "b": 2.0}, quality={"a": B}), 2) == []
    assert sent(flt, frame({"a": 1.0, "b": 2.0}, quality={"a": U}), 3) == ["a"]
    assert sent(flt, frame({"a": 1.0, "b": 2.0}), 4) == ["a"]


def test_strings_and_bools_are_sent_when_different() -> None:
    flt = on_change(default=(5.0, 0.0))
    assert sent(flt, frame({"mode": "auto", "run": True}), 0) == ["mode", "run"]
    assert sent(flt, frame({"mode": "auto", "run": True}), 1) == []
    assert sent(flt, frame({"mode": "manual", "run": True}), 2) == ["mode"]
    # a bool is a number 0/1 and a change of 1 is within a deadband of 5: booleans use any-change
    assert sent(flt, frame({"mode": "manual", "run": False}), 3) == ["run"]


def test_an_uncertain_value_that_moves_beyond_the_deadband_is_sent() -> None:
    flt = on_change(default=(10.0, 0.0))
    u = {"a": U}
    assert sent(flt, frame({"a": 1.0, "b": 2.0}, quality=u), 0) == ["a", "b"]
    assert sent(flt, frame({"a": 5.0, "b": 2.0}, quality=u), 1) == []  # within 10 of the sent 1.0
    assert sent(flt, frame({"a": 50.0, "b": 2.0}, quality=u), 2) == ["a"]
    assert sent(flt, frame({"a": 55.0, "b": 2.0}, quality=u), 3) == []  # within 10 of the sent 50.0
    assert sent(flt, frame({"a": 500.0, "b": 2.0}, quality=u), 4) == ["a"]
    assert sent(flt, frame({"a": 500.0, "b": 2.0}), 5) == ["a"]  # good again: a quality change
    assert sent(flt, frame({"a": "STOP", "b": 2.0}, quality=u), 6) == ["a"]
    assert sent(flt, frame({"a": "STOP", "b": 2.0}, quality=u), 7) == []
    assert sent(flt, frame({"a": "RUN", "b": 2.0}, quality=u), 8) == ["a"]


def test_a_text_sent_again_after_a_number_in_between() -> None:
    flt = on_change()
    assert sent(flt, frame({"state": "RUN"}), 0) == ["state"]
    assert sent(flt, frame({"state": 3}), 1) == ["state"]
    assert sent(flt, frame({"state": "RUN"}), 2) == ["state"]
    assert sent(flt, frame({"state": "RUN"}), 3) == []


def test_readings_in_a_new_order_keep_their_state() -> None:
    flt = on_change(default=(1.0, 0.0))
    assert sent(flt, frame({"a": 1.0, "b": 2.0}), 0) == ["a", "b"]
    assert sent(flt, frame({"b": 2.5, "c": 7.0, "a": 3.0}), 1) == ["c", "a"]


def test_settings_reject_bad_values_with_the_fix() -> None:
    with pytest.raises(ValueError, match="raw_qos=2 must be 0 or 1"):
        RawTelemetrySettings("d", "every_cycle", qos=2)
    with pytest.raises(ValueError, match="heartbeat=0"):
        RawTelemetrySettings("d", "on_change", 1, 0.0)
    with pytest.raises(ValueError, match=r"percent within 0\.\.100"):
        RawTelemetrySettings("d", "on_change", 1, 10.0, (0.0, 150.0))


def test_settings_from_the_config() -> None:
    cfg = load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": "/tmp/x"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [
            {"name": "all", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": 502, "publish_raw": True,
             "raw_qos": 0, "points": [{"name": "a", "address": 0}]},
            {"name": "rbe", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": 502,
             "publish_raw": "on_change", "deadband_percent": 2, "heartbeat": "30s",
             "points": [{"name": "a", "address": 0}, {"name": "b", "address": 1, "publish_deadband": 0.5}]},
            {"name": "off", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": 502,
             "points": [{"name": "a", "address": 0}]},
        ],
    })
    every = RawTelemetrySettings.of_device(cfg.device("all"))
    assert every is not None and (every.mode, every.qos, every.heartbeat_s) == ("every_cycle", 0, None)
    rbe = RawTelemetrySettings.of_device(cfg.device("rbe"))
    assert rbe is not None and (rbe.mode, rbe.qos, rbe.heartbeat_s) == ("on_change", 1, 30.0)
    assert dict(rbe.deadbands or {}) == {"a": (0.0, 2.0), "b": (0.5, 0.0)}
    assert RawTelemetrySettings.of_device(cfg.device("off")) is None


# ------------------------------------------------------------------------------ the payload
def test_payload_carries_the_documented_fields() -> None:
    raw = RawTelemetry(RawTelemetrySettings("plc-1", "every_cycle", 0), "gw-1")
    f = frame({"speed": 1500, "temp": 41.25, "run": True, "mode": "auto", "lost": None},
              quality={"lost": B, "temp": U}, device="plc-1")
    payload = raw.payload(f, 1_795_430_400.1)
    assert payload is not None
    body = json.loads(payload)
    assert body["v"] == 1 and body["agent"] == "gw-1" and body["device"] == "plc-1"
    assert body["cycle"] == 1_795_430_400_100 and isinstance(body["ts"], int) and len(body["id"]) == 36
    assert body["values"] == {"speed": 1500, "temp": 41.25, "run": True, "mode": "auto", "lost": None}
    assert body["quality"] == {"lost": "bad", "temp": "uncertain"}
    assert list(body) == ["v", "id", "ts", "agent", "device", "cycle", "values", "quality"]
    assert b" " not in payload.replace(b'"mode":"auto"', b"")  # compact


def test_payload_equals_the_dict_body() -> None:
    readings = [Reading("a", 1.5, G, 0.0), Reading("b", None, B, 0.0, reason="timeout")]
    body = telemetry_body("d", 12.345, readings)
    payload = json.loads(TelemetryEncoder("gw", "d").encode(12.345, ["a", "b"], [1.5, None], {"b": "bad"}))
    assert {k: payload[k] for k in body} == body


def test_non_finite_floats_go_out_as_null() -> None:
    payload = TelemetryEncoder("gw", "d").encode(0.0, ["a", "b"], [math.nan, math.inf], {})
    assert json.loads(payload)["values"] == {"a": None, "b": None}


def test_on_change_payload_has_only_the_changed_points() -> None:
    raw = RawTelemetry(RawTelemetrySettings("d", "on_change", 1, 60.0, (0.5, 0.0)), "gw")
    assert raw.payload(frame({"a": 1.0, "b": 2.0}), 0.0) is not None
    assert raw.payload(frame({"a": 1.2, "b": 2.1}), 1.0) is None
    second = raw.payload(frame({"a": 1.2, "b": 2.6}), 2.0)
    assert second is not None and json.loads(second)["values"] == {"b": 2.6}
    assert (raw.messages, raw.values_sent) == (2, 3)


def test_waveform_points_never_reach_raw_telemetry() -> None:
    """A failed capture that a driver reports as a bad reading (OPC UA does) is not a raw value: with
    on_change it would be sent bad once and never cleared, the good captures being waveforms."""
    cfg = load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": "/tmp/x"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4840",
                     "publish_raw": "on_change", "points": [
                         {"name": "temp", "node": "ns=2;s=T"},
                         {"name": "vib", "node": "ns=2;s=V", "kind": "waveform", "sample_rate": 12800}]}],
    })
    settings = RawTelemetrySettings.of_device(cfg.device("ua"))
    assert settings is not None and settings.not_sent == {"vib"}
    raw = RawTelemetry(settings, "gw")
    first = raw.payload(frame({"temp": 40.0, "vib": None}, quality={"vib": B}), 0.0)
    assert first is not None and json.loads(first)["values"] == {"temp": 40.0}
    assert json.loads(first)["quality"] == {}
    assert raw.payload(frame({"vib": None}, quality={"vib": B}), 1.0) is None  # nothing else in the cycle


def test_report_by_exception_state_survives_a_config_change_that_leaves_the_device_alone() -> None:
    """A new config (e.g. a rules-only patch) with the device unchanged must not send a full snapshot and
    restart every heartbeat; a change to the device starts afresh."""
    from edge_agent.pipeline import Pipeline

    def config(deadband: float) -> Any:
        return load_config_data({
            "agent": {"id": "gw", "site": "s", "data_dir": "/tmp/x"},
            "mqtt": {"url": "mqtt://127.0.0.1:1883"},
            "devices": [{"name": "d", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": 502,
                         "publish_raw": "on_change", "deadband": deadband,
                         "points": [{"name": "a", "address": 0}, {"name": "b", "address": 1}]}],
        })

    pipeline = Pipeline(SummaryAggregator({}, {}, ("mean",), 0.0), {}, lambda *a: None)  # type: ignore[arg-type,return-value]
    raw = pipeline.raw_telemetry(config(0.5).device("d"), "gw")
    assert raw is not None and raw.payload(frame({"a": 1.0, "b": 2.0}), 0.0) is not None
    again = pipeline.raw_telemetry(config(0.5).device("d"), "gw")  # a new config object, same device
    assert again is raw and again.payload(frame({"a": 1.1, "b": 2.0}), 1.0) is None
    changed = pipeline.raw_telemetry(config(0.05).device("d"), "gw")
    assert changed is not raw and changed is not None
    assert changed.payload(frame({"a": 1.1, "b": 2.0}), 2.0) is not None  # afresh: a full snapshot


# ------------------------------------------------------------------------------ frames and summaries
def test_frame_numbers_mask_what_is_not_a_good_number() -> None:
    f = frame({"a": 1, "b": True, "c": "txt", "d": None, "e": 2.5, "f": 7.0}, quality={"d": B, "f": U})
    assert np.array_equal(f.numbers(), [1.0, 1.0, math.nan, math.nan, 2.5, math.nan], equal_nan=True)
    assert f.good_mask().tolist() == [True, True, True, False, True, False]
    assert not f.all_good


class ReferenceStats:
    """The per-value definition of the summary statistics, written plainly."""

    def __init__(self) -> None:
        self.count = 0
        self.good = 0
        self.numbers: list[tuple[float, float]] = []
        self.last: object = None

    def add(self, value: object, quality: Quality, ts: float) -> None:
        self.count += 1
        if quality is not G or value is None:
            return
        self.good += 1
        self.last = value if isinstance(value, (bool, str)) else float(value)  # type: ignore[arg-type]
        if not isinstance(value, str):
            self.numbers.append((float(value), ts))  # type: ignore[arg-type]


value_st = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False), st.booleans(),
                     st.sampled_from(["auto", "manual"]), st.none())
quality_st = st.sampled_from([G, G, G, U, B])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.permutations(["a", "b", "c"]), st.lists(st.tuples(value_st, quality_st),
                                                                      min_size=3, max_size=3)),
                min_size=1, max_size=12))
def test_bulk_summaries_match_the_per_value_definition(cycles: list[Any]) -> None:
    keys = ["d/a", "d/b", "d/c"]
    agg = SummaryAggregator({"asset": keys}, dict.fromkeys(keys, "u"),
                            ["count", "good", "min", "max", "mean", "std", "last", "twa"], start_s=0.0)
    ref = {k: ReferenceStats() for k in keys}
    for k, (order, values) in enumerate(cycles):
        ts = 1.0 + k
        agg.add("d", [Reading(name, v, q, ts) for name, (v, q) in zip(order, values, strict=True)])
        for name, (v, q) in zip(order, values, strict=True):
            ref[f"d/{name}"].add(v, q, ts)
    (_, body), = agg.close(1.0 + len(cycles) + 2.0)
    for key in keys:
        got: dict[str, Any] = body["points"][key]  # type: ignore[index]
        r = ref[key]
        assert (got["count"], got["good"], got["last"]) == (r.count, r.good, r.last), key
        assert type(got["last"]) is type(r.last)
        xs = [x for x, _ in r.numbers]
        if not xs:
            assert got["min"] is None and got["mean"] is None and got["twa"] is None
            continue
        assert got["min"] == min(xs) and got["max"] == max(xs)
        assert got["mean"] == pytest.approx(statistics.fmean(xs), rel=1e-6, abs=1e-5)
        if len(xs) > 1:
            assert got["std"] == pytest.approx(statistics.stdev(xs), rel=1e-5, abs=1e-4)
        end = 1.0 + len(cycles) + 2.0
        holds = [(x, (r.numbers[i + 1][1] if i + 1 < len(r.numbers) else end) - t) for i, (x, t) in
                 enumerate(r.numbers)]
        span = sum(h for _, h in holds)
        assert got["twa"] == pytest.approx(sum(x * h for x, h in holds) / span, rel=1e-6, abs=1e-5)


def test_latest_values_view() -> None:
    latest = LatestValues({"d/a": "rpm"})
    latest.update_device("d", frame({"a": 5, "b": "x"}, ts=3.0))
    latest.update_device("d", frame({"b": None}, ts=4.0, quality={"b": B}))
    assert sorted(latest) == ["d/a", "d/b"] and len(latest) == 2 and "d/a" in latest and "d/z" not in latest
    a = latest["d/a"]
    assert (a.value, a.quality, a.ts, a.unit) == (5, G, 3.0, "rpm")
    assert latest.get("d/b").quality is B  # type: ignore[union-attr]
    assert latest.get("e/a") is None


def test_latest_values_of_a_large_cycle_and_a_later_small_batch() -> None:
    latest = LatestValues({"d/p0001": "bar"})
    values = {f"p{i:04d}": float(i) for i in range(100)}
    latest.update_device("d", frame(values, ts=10.0, quality={"p0002": B}))
    assert len(latest) == 100 and "d/p0099" in latest
    one = latest["d/p0001"]
    assert (one.value, one.quality, one.ts, one.unit) == (1.0, G, 10.0, "bar")
    assert latest["d/p0002"].quality is B
    latest.update_device("d", frame({"p0001": 7.5}, ts=11.0))  # a small batch after the cycle wins
    assert latest["d/p0001"].value == 7.5 and latest["d/p0003"].value == 3.0
    latest.update_device("d", frame({**values, "p0001": 9.0}, ts=12.0))  # and the next cycle wins again
    assert latest["d/p0001"].value == 9.0 and latest["d/p0001"].ts == 12.0
