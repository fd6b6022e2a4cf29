"""The OPC UA driver heals itself: server restart on the same port, a server that comes up late, a silent
network cut."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from drivers.base import CommsState, Quality, Reading
from drivers.opcua.client import OpcUaDriver
from drivers.opcua.spec import OpcUaDeviceSpec, OpcUaPointSpec
from drivers.sim.node_map import node_def
from drivers.sim.opcua_server import OpcUaSimServer
from drivers.sim.plant import Plant

pytestmark = [pytest.mark.integration]

WAIT_S = 30.0


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def read_until(driver: OpcUaDriver, good: bool, what: str) -> None:
    """Call read() like the agent's poll loop until every reading is (not) GOOD."""
    deadline = time.monotonic() + WAIT_S
    while True:
        result = await driver.read()
        if all((r.quality is Quality.GOOD) == good for r in result.readings):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}: {result.readings}")
        await asyncio.sleep(0.1)


class CuttableProxy:
    """A loopback TCP forwarder whose link can be cut silently, like a pulled cable: while ``cut`` is
    True bytes are dropped in both directions but no socket is closed, so only timeouts can tell."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = False
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers.append(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if not self.cut:
                    writer.write(data)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()


def spec_for(endpoint: str) -> OpcUaDeviceSpec:
    return OpcUaDeviceSpec(
        name="plc",
        endpoint=endpoint,
        timeout_s=2.0,
        keepalive_s=1.0,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
        points=(
            OpcUaPointSpec(name="count", node=node_def("Simulator.UpdateCount").node_id, mode="subscribe",
                           sampling_interval_s=0.1),
            OpcUaPointSpec(name="speed", node=node_def("Motor.Speed").node_id),
        ),
    )


async def test_subscription_and_polling_survive_a_server_restart() -> None:
    before = set(asyncio.all_tasks())
    sim = OpcUaSimServer(Plant(seed=3), update_interval_s=0.2)
    await sim.start()
    port = sim.port
    got: list[Reading] = []
    driver = OpcUaDriver(spec_for(sim.endpoint))
    drivers = [driver]
    try:
        await driver.connect()
        await driver.subscribe(got.extend)
        await wait_for(lambda: len(got) >= 3, "data changes before the restart")
        await read_until(driver, True, "a good poll before the restart")

        await sim.stop()
        await wait_for(lambda: driver.comms.state is CommsState.DOWN, "the driver to notice the server left")
        await read_until(driver, False, "polls to go BAD while the server is down")
        assert driver.comms.last_error

        # a second device configured while the server is down: read() reports why, never raises
        late = OpcUaDriver(spec_for(sim.endpoint))
        drivers.append(late)
        result = await late.read()
        assert result.readings[0].quality is Quality.BAD
        assert "cannot connect" in str(result.readings[0].reason)

        restarted_at = time.time()
        await sim.start()
        assert sim.port == port
        await wait_for(lambda: any(r.source_ts is not None and r.source_ts > restarted_at for r in got),
                       "data changes from the restarted server")
        await read_until(driver, True, "good polls after the restart")
        assert driver.comms.reconnects >= 1
        assert driver.comms.state is CommsState.OK
        await read_until(late, True, "the late device's first good poll")
        assert late.comms.state is CommsState.OK and late.comms.reconnects == 0
    finally:
        for d in drivers:
            await d.close()
        await sim.stop()
    current = asyncio.current_task()
    await wait_for(lambda: not [t for t in asyncio.all_tasks() if t not in before and t is not current
                                and not t.done()], "no leaked tasks", timeout_s=10)


async def test_session_is_rebuilt_after_a_silent_network_cut() -> None:
    sim = OpcUaSimServer(Plant(seed=5), update_interval_s=0.2)
    await sim.start()
    proxy = CuttableProxy(sim.port)
    await proxy.start()
    got: list[Reading] = []
    driver = OpcUaDriver(spec_for(f"opc.tcp://127.0.0.1:{proxy.port}/edge-agent/sim"))
    try:
        await driver.connect()
        await driver.subscribe(got.extend)
        await wait_for(lambda: len(got) >= 3, "data changes before the cut")

        proxy.cut = True  # no FIN, no RST: only the keep-alive probe or the watchdog can notice
        await wait_for(lambda: driver.comms.state is CommsState.DOWN, "the driver to notice the silent cut")
        await read_until(driver, False, "polls to go BAD while the link is cut")

        restored_at = time.time()
        proxy.cut = False
        await wait_for(lambda: any(r.source_ts is not None and r.source_ts > restored_at for r in got),
                       "data changes after the link came back")
        await read_until(driver, True, "good polls after the link came back")
        assert driver.comms.reconnects >= 1 and driver.comms.state is CommsState.OK
    finally:
        await driver.close()
        await proxy.close()
        await sim.stop()


def subscribed_counter(sim: OpcUaSimServer, **spec: float) -> OpcUaDriver:
    point = OpcUaPointSpec(name="count", node=node_def("Simulator.UpdateCount").node_id, mode="subscribe",
                           sampling_interval_s=0.1)
    return OpcUaDriver(OpcUaDeviceSpec(name="plc", endpoint=sim.endpoint, reconnect_min_s=0.2,
                                       reconnect_max_s=0.5, points=(point,), **spec))  # type: ignore[arg-type]


async def test_subscribed_points_go_bad_as_soon_as_the_link_is_lost() -> None:
    sim = OpcUaSimServer(Plant(seed=3), update_interval_s=0.2)
    await sim.start()
    got: list[Reading] = []
    driver = subscribed_counter(sim)
    try:
        await driver.connect()
        await driver.subscribe(got.extend)
        await wait_for(lambda: any(r.quality is Quality.GOOD for r in got), "data")
        await sim.stop()  # nothing will tell the value any more: it must not stay good
        await wait_for(lambda: got[-1].quality is Quality.BAD, "a BAD reading for the subscribed point")
        assert got[-1].point == "count" and got[-1].value is None and "connection lost" in str(got[-1].reason)
        assert driver.comms.state is CommsState.DOWN
    finally:
        await driver.close()
        await sim.stop()


async def test_sessions_of_dropped_links_expire_on_the_server() -> None:
    sim = OpcUaSimServer(Plant(seed=3), update_interval_s=0.2)
    await sim.start()
    got: list[Reading] = []
    driver = subscribed_counter(sim, keepalive_s=1.0, timeout_s=1.0)  # asks for a 10 s session timeout
    try:
        await driver.connect()
        await driver.subscribe(got.extend)
        for i in range(3):
            sim.drop_connections()  # the old sessions cannot be closed over their dead sockets
            await wait_for(lambda: driver.comms.reconnects >= i + 1, "reconnect")  # noqa: B023
        sessions = sim._server.iserver._external_sessions  # the server's own view of its sessions
        assert len(sessions) == 4
        await wait_for(lambda: len(sessions) == 1, "orphaned sessions to expire", timeout_s=20.0)
        n = len(got)
        await wait_for(lambda: len(got) > n + 2 and got[-1].quality is Quality.GOOD, "data on the live session")
    finally:
        await driver.close()
        await sim.stop()
