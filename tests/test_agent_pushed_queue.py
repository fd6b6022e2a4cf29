"""The agent's queue of pushed (subscription) batches: when it overflows, the oldest batch goes, never the
newest (a loss, or the first values after one, which a steady point never sends again)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

import edge_agent.agent as agent_module
from drivers.base import CommsStatus, Quality, Reading, ReadingSink, ReadResult
from edge_agent.agent import PUSHED_QUEUE_BATCHES, Agent
from edge_agent.config import Device, load_config_data


class PushingDevice:
    """A device that pushes whatever the test hands its sink (no protocol: the queue policy is under test)."""

    name = "ua"
    supports_subscribe = True

    def __init__(self) -> None:
        self.comms = CommsStatus()
        self.sink: ReadingSink | None = None

    async def connect(self) -> None:
        return None

    async def read(self) -> ReadResult:
        return ReadResult()

    async def subscribe(self, sink: ReadingSink) -> None:
        self.sink = sink

    async def close(self) -> None:
        return None


async def test_the_newest_batch_is_kept_when_the_pushed_queue_overflows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device = PushingDevice()

    def create_driver(config: Device) -> PushingDevice:
        return device

    monkeypatch.setattr(agent_module, "create_driver", create_driver)
    cfg = load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": str(tmp_path / "data")},
        "mqtt": {"url": "mqtt://127.0.0.1:1"},  # no broker: records stay in the outbox
        "devices": [{"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:1",
                     "points": [{"name": "speed", "node": "ns=2;s=S", "mode": "subscribe"}]}],
    })
    agent = Agent(cfg)
    await agent.start()
    try:
        assert device.sink is not None
        good: Sequence[Reading] = [Reading("speed", 1500.0, Quality.GOOD, 1.0)]
        for _ in range(PUSHED_QUEUE_BATCHES + 5):  # no await: the consumer cannot run, the queue fills up
            device.sink(good)
        device.sink([Reading("speed", None, Quality.BAD, 2.0, reason="connection lost")])
        device.sink([Reading("speed", 1400.0, Quality.GOOD, 3.0)])  # back: the value after the gap
        runner = agent.devices["ua"]
        assert runner.pushed is not None and runner.pushed.full()
        for _ in range(500):  # let the consumer work through the queue
            if runner.pushed.empty():
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        latest = agent.pipeline.latest["ua/speed"]
        assert (latest.quality, latest.value) == (Quality.GOOD, 1400.0)  # the newest state, not a stale one
        assert runner.pushed_dropped == 7
    finally:
        await agent.stop()


async def test_several_changes_of_one_point_in_one_batch_all_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A subscription batch with two values of one point (queue_size > 1): both count in the summary, in
    order (one frame kept only the last value for min, max, mean and last)."""
    device = PushingDevice()
    monkeypatch.setattr(agent_module, "create_driver", lambda config: device)
    cfg = load_config_data({
        "agent": {"id": "gw", "site": "s", "data_dir": str(tmp_path / "data")},
        "mqtt": {"url": "mqtt://127.0.0.1:1"},
        "devices": [{"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:1",
                     "points": [{"name": "speed", "node": "ns=2;s=S", "mode": "subscribe", "queue_size": 4},
                                {"name": "temp", "node": "ns=2;s=T", "mode": "subscribe"}]}],
    })
    agent = Agent(cfg)
    await agent.start()
    try:
        assert device.sink is not None
        t0 = agent.pipeline.summaries.start_s
        device.sink([Reading("speed", 10.0, Quality.GOOD, t0 + 1), Reading("temp", 40.0, Quality.GOOD, t0 + 1),
                     Reading("speed", 20.0, Quality.GOOD, t0 + 2), Reading("speed", 30.0, Quality.GOOD, t0 + 3)])
        for _ in range(100):
            await asyncio.sleep(0.01)
            if agent.devices["ua"].pushed is not None and agent.devices["ua"].pushed.empty():
                break
        await asyncio.sleep(0.05)
        (_asset, body), = agent.pipeline.summaries.close(t0 + 4)
    finally:
        await agent.stop()
    speed = body["points"]["ua/speed"]  # type: ignore[index]
    assert (speed["count"], speed["min"], speed["max"], speed["mean"], speed["last"]) == (3, 10.0, 30.0, 20.0, 30.0)
    assert body["points"]["ua/temp"]["count"] == 1  # type: ignore[index]


def test_without_repeats_cuts_only_where_a_point_comes_again() -> None:
    from edge_agent.agent import without_repeats

    batch = [Reading(p, 1.0, Quality.GOOD, float(k)) for k, p in enumerate(["a", "b", "a", "c", "b", "a"])]
    assert [[r.point for r in part] for part in without_repeats(batch)] == [["a", "b"], ["a", "c", "b"], ["a"]]
    assert without_repeats(batch[:2]) == [batch[:2]]
