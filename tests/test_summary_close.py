"""The summary close as the agent runs it: alarm counts taken once per asset when the interval is detached
(every part repeats them; alarms raised by a later poll count in the next interval), a close cancelled while
it gives way still stores its interval, and a single point too big for a message keeps the size limit."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from drivers.base import Quality, Reading
from edge_agent.agent import Agent
from edge_agent.config import load_config_data
from edge_agent.outbox.outbox import Outbox
from edge_agent.pipeline import Pipeline
from edge_agent.records import Priority, encode_payload, make_envelope
from edge_agent.summaries import SummaryAggregator

G = Quality.GOOD
N = 700  # more than two slices, and several parts at an 8 kB limit


def aggregator(limit: int = 8192, n: int = N) -> SummaryAggregator:
    units = {f"plc/p{i:04d}": "bar" for i in range(n)}
    agg = SummaryAggregator({"big": list(units), "small": ["plc/p0000"]}, units, ["count", "good", "last"],
                            start_s=0.0, max_message_bytes=limit)
    for k in range(3):
        agg.add("plc", [Reading(f"p{i:04d}", float(i + k), G, 1.0 + k) for i in range(n)])
    return agg


class Sink:
    """The emit callable: every record as the agent would encode it."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []

    async def __call__(self, topic: str, body: dict[str, object], priority: Priority) -> None:
        assert priority is Priority.SUMMARY
        self.messages.append((topic, encode_payload(make_envelope(body, "gw-1", ts_ms=5))))

    def bodies(self, asset: str) -> list[dict[str, Any]]:
        return [json.loads(p) for t, p in self.messages if t == f"summary/{asset}"]


def test_every_part_carries_the_alarm_counts_that_were_taken_once() -> None:
    pending = {"big": {"raised": 2, "cleared": 1}, "small": {"raised": 1}}
    taken: list[str] = []

    def take_counts(asset: str) -> dict[str, object]:  # pops, like AlarmStage.take_interval_counts
        taken.append(asset)
        return {"alarms": pending.pop(asset, {})}

    sink = Sink()
    pipeline = Pipeline(aggregator(), {}, sink)
    pipeline.summary_extras = take_counts
    records = asyncio.run(pipeline.close_summary_interval(10.0))
    big = sink.bodies("big")
    assert records == len(sink.messages) == len(big) + 1 and len(big) >= 3
    assert sorted(taken) == ["big", "small"]
    assert [b["alarms"] for b in big] == [{"raised": 2, "cleared": 1}] * len(big)
    assert sink.bodies("small")[0]["alarms"] == {"raised": 1}
    assert all(len(p) <= 8192 for _, p in sink.messages)


def test_alarms_raised_while_the_close_gives_way_count_in_the_next_interval() -> None:
    raised = {"n": 0}

    async def boundary_poll_runs() -> None:  # the give-way: the tick's poll raises an alarm meanwhile
        raised["n"] += 1
        await asyncio.sleep(0)

    def take_counts(asset: str) -> dict[str, object]:
        n, raised["n"] = raised["n"], 0
        return {"alarms": {"raised": n}}

    sink = Sink()
    pipeline = Pipeline(aggregator(), {}, sink)
    pipeline.summary_extras = take_counts
    asyncio.run(pipeline.close_summary_interval(10.0, pause=boundary_poll_runs))
    assert {b["alarms"]["raised"] for b in sink.bodies("big") + sink.bodies("small")} == {0}
    assert raised["n"] > 0  # left for the next interval


def test_a_close_cancelled_while_it_gives_way_still_stores_the_interval() -> None:
    sink = Sink()
    pipeline = Pipeline(aggregator(), {}, sink)
    poll_running = asyncio.Event()  # never set: a poll cycle stuck on a read timeout

    async def give_way() -> None:
        await poll_running.wait()

    async def scenario() -> None:
        close = asyncio.create_task(pipeline.close_summary_interval(10.0, pause=give_way))
        await asyncio.sleep(0.01)
        assert not sink.messages
        close.cancel()  # a stop or a reconfigure
        with pytest.raises(asyncio.CancelledError):
            await close

    asyncio.run(scenario())
    big = sink.bodies("big")
    points: dict[str, Any] = {}
    for body in big:
        points.update(body["points"])
    assert len(points) == N and all(p["count"] == 3 and p["good"] == 3 for p in points.values())
    assert points["plc/p0007"]["last"] == 9.0
    assert [b["end"] for b in big + sink.bodies("small")] == [10_000] * (len(big) + 1)


def test_a_single_point_too_big_for_a_message_sends_its_text_as_null(caplog: pytest.LogCaptureFixture) -> None:
    units = {"opc/label": "", "opc/speed": "rpm"}
    agg = SummaryAggregator({"line": list(units)}, units, ["count", "good", "last"], start_s=0.0,
                            max_message_bytes=8192)
    agg.add("opc", [Reading("label", "x" * 20_000, G, 1.0), Reading("speed", 1480.0, G, 1.0)])
    sink = Sink()
    with caplog.at_level(logging.WARNING, logger="edge_agent.summaries"):
        asyncio.run(Pipeline(agg, units, sink).close_summary_interval(10.0))
    assert all(len(p) <= 8192 for _, p in sink.messages)
    points: dict[str, Any] = {}
    for body in sink.bodies("line"):
        points.update(body["points"])
    assert points["opc/label"] == {"count": 1, "good": 1, "last": None, "unit": ""}
    assert points["opc/speed"]["last"] == 1480.0
    assert "opc/label" in caplog.text and "max_message_size" in caplog.text


async def test_the_agent_stores_every_part_with_the_interval_alarm_counts(tmp_path: Path) -> None:
    n = 600
    cfg = load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": str(tmp_path)},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "poll_interval": "1s",
                     "points": [{"name": f"p{i:04d}", "table": "holding", "address": i, "type": "uint16",
                                 "unit": "bar"} for i in range(n)]}],
        "assets": [{"name": "big", "points": [f"plc/p{i:04d}" for i in range(n)]}],
        "rules": [{"kind": "bad_quality", "name": "p0-bad", "point": "plc/p0000"}],
        "alarms": {"update_interval": 0},
        "summaries": {"max_message_size": 8192},
    }, "test")
    agent = Agent(cfg)
    agent.outbox = await Outbox.open(tmp_path / "outbox.sqlite", 10**8, None)
    try:
        for k in range(3):
            readings = [Reading(f"p{i:04d}", float(i + k), G, 100.0 + k) for i in range(n)]
            if k == 1:
                readings[0] = Reading("p0000", None, Quality.BAD, 101.0, reason="timeout")
            agent.pipeline.on_readings("plc", readings)
            await agent.alarms.on_readings("plc", readings)
        await agent._summary_cycle(110.0)
        records = [r for r in await agent.outbox.take_batch(1000) if r.topic.endswith("/summary/big")]
    finally:
        await agent.outbox.close()
    bodies = [json.loads(r.payload) for r in records]
    assert len(bodies) >= 3 and [b["part"] for b in bodies] == list(range(1, len(bodies) + 1))
    assert all(len(r.payload) <= 8192 for r in records)
    assert {json.dumps(b["alarms"], sort_keys=True) for b in bodies} == {
        json.dumps({"raised": 1, "updated": 0, "cleared": 1, "active": 0}, sort_keys=True)}
    assert {b["availability_pct"] for b in bodies} == {round(100 * (3 * n - 1) / (3 * n), 2)}
