"""The summary close as a stream: each asset's ``points`` encoded as JSON text slice by slice and spliced into
the payload, against the dict path (:meth:`ClosedInterval.bodies` + :func:`encode_payload`)."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from drivers.base import Quality, Reading
from edge_agent.pipeline import Pipeline, availability_pct
from edge_agent.records import Priority, RawJson, encode_json, encode_payload, make_envelope
from edge_agent.summaries import SummaryAggregator

G, U, B = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD
ALL = ["count", "good", "min", "max", "mean", "std", "last", "twa"]


def _no_constants(name: str) -> object:
    raise AssertionError(f"{name} in a payload")


def strict_loads(payload: bytes) -> dict[str, Any]:
    """Decode, failing on NaN or Infinity tokens (not JSON)."""
    obj = json.loads(payload, parse_constant=_no_constants)
    assert isinstance(obj, dict)
    return obj


def interval(feed: list[tuple[str, list[Reading]]], assets: dict[str, list[str]], units: dict[str, str],
             statistics: list[str]) -> SummaryAggregator:
    agg = SummaryAggregator(assets, units, statistics, start_s=0.0)
    for device, readings in feed:
        agg.add(device, readings)
    return agg


def mixed_interval() -> tuple[list[tuple[str, list[Reading]]], dict[str, list[str]], dict[str, str]]:
    """Two devices over several cycles (bad and uncertain readings, strings, bools, None, NaN, partial cycles),
    three assets (one point in two assets, a key listed twice, points from both devices interleaved, a
    device that never reports, non-ASCII names)."""
    many = [f"p{i:03d}" for i in range(700)]  # more than two slices
    feed: list[tuple[str, list[Reading]]] = []
    for k in range(6):
        ts = 1.0 + k
        plc = [Reading(n, float(i) * 0.37 + k * (1 if i % 3 else -2.5), G, ts) for i, n in enumerate(many)]
        plc[5] = Reading("p005", None, B, ts, reason="timeout")
        plc[6] = Reading("p006", 1.0 + k, U if k % 2 else G, ts)
        plc[7] = Reading("p007", math.nan if k < 3 else 2.0, G, ts)
        plc[8] = Reading("p008", "RUN" if k % 2 else "STOP", G, ts)
        plc[9] = Reading("p009", k % 2 == 0, G, ts)
        plc[10] = Reading("p010", None, G, ts)
        if k == 4:
            plc = plc[:400]  # a partial cycle
        feed.append(("plc", plc))
        feed.append(("vfd", [Reading("speed", 1450.0 + k, G, ts + 0.25),
                             Reading("tëmp", 40 + k, B if k == 2 else G, ts + 0.25),
                             Reading("mode", "AUTO", G, ts + 0.25)]))
    units = {f"plc/{n}": "bar" for n in many}
    units.update({"vfd/speed": "rpm", "vfd/tëmp": "°C", "vfd/mode": "", "dead/x": "m"})
    assets = {
        "pump-1": ["vfd/speed", "plc/p005", "plc/p006", "vfd/tëmp", "plc/p007", "plc/p006", "dead/x"],
        "tank-ü": [f"plc/{n}" for n in reversed(many)] + ["vfd/mode", "not/summarised"],
        "line": ["plc/p008", "plc/p009", "plc/p010", "vfd/speed"],
    }
    return feed, assets, units


def dict_path(agg: SummaryAggregator, end_s: float, extras: dict[str, dict[str, object]]) -> dict[str, Any]:
    """The payloads of the old close: a dict per point, the whole record encoded at once."""
    out = {}
    for asset, body in agg.close(end_s):
        body["availability_pct"] = availability_pct(body)
        body.update(extras[asset])
        out[asset] = strict_loads(encode_payload(make_envelope(body, "gw-1", ts_ms=5)))
    return out


def stream_path(agg: SummaryAggregator, units: dict[str, str], end_s: float,
                extras: dict[str, dict[str, object]]) -> dict[str, Any]:
    """The payloads of the pipeline's close, as the agent's ``emit`` encodes them."""
    out: dict[str, Any] = {}

    async def emit(topic: str, body: dict[str, object], priority: Priority) -> None:
        assert priority is Priority.SUMMARY and isinstance(body["points"], RawJson)
        out[topic.removeprefix("summary/")] = strict_loads(encode_payload(make_envelope(body, "gw-1", ts_ms=5)))

    pipeline = Pipeline(agg, units, emit)
    pipeline.summary_extras = lambda asset: extras[asset]
    assert asyncio.run(pipeline.close_summary_interval(end_s)) == len(out)
    return out


@pytest.mark.parametrize("statistics", [ALL, ["last", "min", "max"], ["good", "twa", "count"]])
def test_the_streamed_payload_parses_to_the_dict_path_payload(statistics: list[str]) -> None:
    feed, assets, units = mixed_interval()
    extras = {a: {"alarms": {"raised": i, "active": 0}} for i, a in enumerate(assets)}
    old = dict_path(interval(feed, assets, units, statistics), 9.0, extras)
    new = stream_path(interval(feed, assets, units, statistics), units, 9.0, extras)
    assert set(new) == set(old) == set(assets)
    for asset in assets:
        assert new[asset].pop("id") != old[asset].pop("id")
        assert new[asset] == old[asset]
    pump = new["pump-1"]["points"]
    assert set(pump) == {"vfd/speed", "plc/p005", "plc/p006", "vfd/tëmp", "plc/p007", "dead/x"}
    assert len(new["tank-ü"]["points"]) == 701
    if "count" in statistics:
        assert new["pump-1"]["availability_pct"] == round(100 * 20 / 30, 2)
        assert pump["dead/x"] == {**dict.fromkeys(statistics), "count": 0, "good": 0, "unit": "m"}
    else:
        assert new["pump-1"]["availability_pct"] is None


def test_a_point_with_no_numeric_value_gives_nulls_not_nan() -> None:
    names = ["bad", "text", "nan", "none", "inf", "huge", "ok"]
    units = {f"d/{n}": "" for n in names}
    agg = SummaryAggregator({"a": list(units)}, units, ALL, start_s=0.0)
    for k, ts in enumerate([1.0, 2.0, 3.0]):
        agg.add("d", [Reading("bad", 1.0, B, ts), Reading("text", f"s{k}", G, ts),
                      Reading("nan", math.nan, G, ts), Reading("none", None, G, ts),
                      Reading("inf", -math.inf, G, ts), Reading("huge", 1e300 * (-1) ** k, G, ts),
                      Reading("ok", 2.0, G, ts)])
    out = stream_path(agg, units, 4.0, {"a": {}})
    points = out["a"]["points"]
    empty = {"min": None, "max": None, "mean": None, "std": None, "twa": None}
    for name in ("bad", "text", "nan", "none", "inf"):
        assert {k: points[f"d/{name}"][k] for k in empty} == empty, name
    assert points["d/bad"]["last"] is None and points["d/text"]["last"] == "s2"
    assert (points["d/bad"]["count"], points["d/bad"]["good"], points["d/nan"]["good"]) == (3, 0, 3)
    # ±1e300: the sums of squares overflow, the std is NaN: sent as null (the dict path cannot send it at all)
    assert points["d/huge"]["std"] is None and points["d/huge"]["max"] == 1e300
    assert points["d/ok"] == {"count": 3, "good": 3, "min": 2.0, "max": 2.0, "mean": 2.0, "std": 0.0,
                              "last": 2.0, "twa": 2.0, "unit": ""}
    assert out["a"]["availability_pct"] == round(100 * 15 / 21, 2)  # bad and None readings are not good


def test_encode_payload_splices_raw_json_fields() -> None:
    inner = {"k": [1, 2.5, None], "ü": "é"}
    raw = RawJson([b"{", encode_json({"x": 1})[1:-1], b",", encode_json({"y": inner})[1:-1], b"}"])
    assert raw.value() == {"x": 1, "y": inner} and len(raw) == len(raw.to_bytes())
    record = {"v": 1, "a": "ä", "points": raw, "n": None}
    payload = encode_payload(record)
    assert payload.endswith(b'"points":{"x":1,"y":{"k":[1,2.5,null],"\xc3\xbc":"\xc3\xa9"}}}')
    assert json.loads(payload) == {"v": 1, "a": "ä", "n": None, "points": {"x": 1, "y": inner}}
    assert json.loads(encode_payload({"only": raw, "also": RawJson([b"[]"])})) == {"only": raw.value(), "also": []}
    with pytest.raises(ValueError, match=r"\$\.bad"):
        encode_payload({"bad": math.inf, "points": raw})


def stream_messages(agg: SummaryAggregator, units: dict[str, str], end_s: float,
                    extras: dict[str, dict[str, object]]) -> list[tuple[str, bytes]]:
    """Every (topic, payload) the pipeline's close emits, in order."""
    out: list[tuple[str, bytes]] = []

    async def emit(topic: str, body: dict[str, object], priority: Priority) -> None:
        out.append((topic, encode_payload(make_envelope(body, "gw-1", ts_ms=5))))

    pipeline = Pipeline(agg, units, emit)
    pipeline.summary_extras = lambda asset: extras[asset]
    asyncio.run(pipeline.close_summary_interval(end_s))
    return out


@pytest.mark.parametrize("limit", [8_192, 20_000, 64_000])
def test_an_asset_too_big_for_one_message_is_sent_in_parts_that_add_up(limit: int) -> None:
    feed, assets, units = mixed_interval()
    extras = {a: {"alarms": {"raised": i, "active": 0}} for i, a in enumerate(assets)}
    whole = stream_path(interval(feed, assets, units, ALL), units, 9.0, extras)
    agg = interval(feed, assets, units, ALL)
    agg.max_message_bytes = limit
    messages = stream_messages(agg, units, 9.0, extras)

    assert all(len(payload) <= limit for _, payload in messages), [len(p) for _, p in messages]
    by_asset: dict[str, list[dict[str, Any]]] = {}
    for topic, payload in messages:
        by_asset.setdefault(topic.removeprefix("summary/"), []).append(strict_loads(payload))
    assert set(by_asset) == set(assets)
    tank_text = len(json.dumps(whole["tank-ü"]["points"], separators=(",", ":")).encode())  # 701 points
    assert len(by_asset["tank-ü"]) >= math.ceil(tank_text / limit) >= 2
    for asset, parts in by_asset.items():
        expected = whole[asset]
        if len(parts) == 1:
            assert "part" not in parts[0] and "parts" not in parts[0]
        else:
            assert [p["part"] for p in parts] == list(range(1, len(parts) + 1))
            assert {p["parts"] for p in parts} == {len(parts)}
        merged: dict[str, Any] = {}
        for p in parts:
            assert not set(p["points"]) & set(merged), "a point in two parts"
            merged.update(p["points"])
            # asset-level facts are the asset's, repeated in each part
            for field in ("asset", "start", "end", "availability_pct", "alarms", "v", "agent", "ts"):
                assert p[field] == expected[field], field
        assert merged == expected["points"]
        assert list(merged) == list(expected["points"])  # order kept across parts
    assert len({p["id"] for parts in by_asset.values() for p in parts}) == len(messages)


def test_small_assets_stay_one_message_under_the_default_limit() -> None:
    feed, assets, units = mixed_interval()
    extras = {a: {} for a in assets}
    messages = stream_messages(interval(feed, assets, units, ALL), units, 9.0, extras)
    assert sorted(topic for topic, _ in messages) == sorted(f"summary/{a}" for a in assets)
    assert all("part" not in strict_loads(payload) for _, payload in messages)


def test_the_close_pauses_through_the_given_callable_between_slices() -> None:
    feed, assets, units = mixed_interval()  # 700+ points: three slices and more
    agg = interval(feed, assets, units, ALL)
    events: list[str] = []

    async def emit(topic: str, body: dict[str, object], priority: Priority) -> None:
        events.append("emit")

    async def pause() -> None:
        events.append("pause")
        await asyncio.sleep(0)

    pipeline = Pipeline(agg, units, emit)
    asyncio.run(pipeline.close_summary_interval(9.0, pause=pause))
    assert events.count("pause") >= 4 and events.count("emit") == len(assets)
    assert events.index("emit") > max(i for i, e in enumerate(events) if e == "pause")


def test_readings_during_a_reconfigure_close_count_in_the_new_aggregator() -> None:
    """A config change closes the old interval while polls go on (the close gives way to them); it swaps the
    new aggregator in first and closes the old one by name, so those readings count, not vanish."""
    old = SummaryAggregator({"a": ["d/p"]}, {"d/p": ""}, ["count"], start_s=0.0)
    old.add("d", [Reading("p", 1.0, Quality.GOOD, 1.0)])
    new = SummaryAggregator({"a": ["d/p"]}, {"d/p": ""}, ["count"], start_s=10.0)
    closed: list[dict[str, Any]] = []

    async def emit(topic: str, body: dict[str, object], priority: Priority) -> None:
        closed.append(strict_loads(encode_payload(make_envelope(body, "gw-1", ts_ms=5))))

    pipeline = Pipeline(new, {"d/p": ""}, emit)

    async def a_poll_runs() -> None:  # what give-way lets happen between slices
        pipeline.on_readings("d", [Reading("p", 2.0, Quality.GOOD, 10.5)])

    assert asyncio.run(pipeline.close_summary_interval(10.0, pause=a_poll_runs, summaries=old)) == 1
    assert closed[0]["points"]["d/p"]["count"] == 1  # the old interval: its own reading only
    (_, body), = new.close(20.0)
    assert body["points"]["d/p"]["count"] >= 1  # type: ignore[index]  # the poll during the close
