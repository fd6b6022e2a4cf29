"""OPC UA driver against the OPC UA simulator over real sockets on 127.0.0.1 (no mocked stack)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from drivers.base import CommsState, Driver, Quality, Reading, Waveform
from drivers.opcua.client import OpcUaDriver
from drivers.opcua.spec import OpcUaDeviceSpec, OpcUaPointSpec
from drivers.sim.node_map import node_def
from drivers.sim.opcua_server import OpcUaSimServer
from drivers.sim.plant import MOTOR_SERIAL, Plant
from drivers.sim.vibration import MachineVibration, Scenario

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

WAIT_S = 30.0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sim() -> AsyncIterator[OpcUaSimServer]:
    server = OpcUaSimServer(
        Plant(seed=1),
        vibration=MachineVibration(12800.0, 24.7, scenario=Scenario.UNBALANCE, seed=1, ramp_s=1.0),
        update_interval_s=0.2,
        waveform_samples=12800,
        scenario="unbalance",
        seed=1,
    )
    await server.start()
    yield server
    await server.stop()


async def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


async def assert_no_leaked_tasks(before: set[asyncio.Task[object]]) -> None:
    """Every task created since ``before`` has finished (asyncua cancels some lazily: allow a moment)."""
    current = asyncio.current_task()

    def leaked() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() if t not in before and t is not current and not t.done()]

    await wait_for(lambda: not leaked(), "tasks to finish", timeout_s=10)


def p(name: str, path: str, **kw: object) -> OpcUaPointSpec:
    return OpcUaPointSpec(name=name, node=node_def(path).node_id, **kw)  # type: ignore[arg-type]


async def test_poll_reads_typed_nodes_in_one_read_call(sim: OpcUaSimServer) -> None:
    before = set(asyncio.all_tasks())
    spec = OpcUaDeviceSpec(
        name="plc",
        endpoint=sim.endpoint,
        points=(
            p("speed", "Motor.Speed", unit="rpm"),
            p("running", "Motor.Running"),
            p("starts", "Motor.Starts"),
            p("serial", "Motor.Serial"),
            p("seed", "Simulator.Seed"),
            p("ratio", "Simulator.Ratio"),
            p("level", "Tank.Level"),
            p("level_x10", "Tank.Level", scale=10.0, offset=1.0),
            OpcUaPointSpec(name="temp", browse_path=node_def("Motor.BearingTemperature").browse_path),
        ),
    )
    driver = OpcUaDriver(spec)
    assert isinstance(driver, Driver)
    await driver.connect()
    try:
        assert driver._client is not None
        read_calls = 0
        real_read = driver._client.uaclient.read

        async def counting_read(params: object) -> object:
            nonlocal read_calls
            read_calls += 1
            return await real_read(params)  # type: ignore[arg-type]

        driver._client.uaclient.read = counting_read  # type: ignore[method-assign]
        result = await driver.read()
        assert read_calls == 1 and result.requests == 1 and driver.comms.requests_last_cycle == 1
        by = {r.point: r for r in result.readings}
        assert set(by) == {pt.name for pt in spec.points}
        assert all(r.quality is Quality.GOOD for r in by.values()), by
        assert isinstance(by["speed"].value, float) and 1400 < by["speed"].value < 1510
        assert by["running"].value is True
        assert isinstance(by["starts"].value, int) and not isinstance(by["starts"].value, bool)
        assert by["serial"].value == MOTOR_SERIAL
        assert by["seed"].value == 1
        assert isinstance(by["ratio"].value, float) and -1.0 <= by["ratio"].value <= 1.0
        assert isinstance(by["temp"].value, float) and 0 < by["temp"].value < 100
        level = by["level"].value
        assert isinstance(level, float) and 20.0 <= level <= 80.0
        assert by["level_x10"].value == pytest.approx(level * 10.0 + 1.0)
        now = time.time()
        for r in by.values():  # the simulator's source timestamp, not the receive time
            assert r.source_ts is not None and now - 30 < r.source_ts <= r.receive_ts + 1
        assert driver.comms.state is CommsState.OK and driver.comms.last_ok_ts is not None
    finally:
        await driver.close()
    await assert_no_leaked_tasks(before)


async def test_bad_points_go_bad_with_reasons_while_the_others_stay_good(sim: OpcUaSimServer) -> None:
    spec = OpcUaDeviceSpec(
        name="plc",
        endpoint=sim.endpoint,
        points=(
            p("speed", "Motor.Speed"),
            OpcUaPointSpec(name="unknown", node="ns=2;s=Does.Not.Exist"),
            OpcUaPointSpec(name="garbled", node="ns=two;s=Motor.Speed"),
            OpcUaPointSpec(name="lost", browse_path="Objects/2:Motor/2:NoSuchThing"),
            OpcUaPointSpec(name="array", node=node_def("Pump.VibrationDE").node_id),
            OpcUaPointSpec(name="sub_unknown", node="ns=2;s=Nope", mode="subscribe", sampling_interval_s=0.1),
            p("sub_ok", "Simulator.UpdateCount", mode="subscribe", sampling_interval_s=0.1),
        ),
    )
    got: list[Reading] = []
    driver = OpcUaDriver(spec)
    await driver.connect()
    try:
        await driver.subscribe(got.extend)
        result = await driver.read()
        by = {r.point: r for r in result.readings}
        assert result.requests == 1
        assert by["speed"].quality is Quality.GOOD
        assert by["unknown"].quality is Quality.BAD and "BadNodeIdUnknown" in str(by["unknown"].reason)
        assert by["garbled"].quality is Quality.BAD and "does not parse" in str(by["garbled"].reason)
        assert by["lost"].quality is Quality.BAD and "does not resolve" in str(by["lost"].reason)
        assert by["array"].quality is Quality.BAD and "kind: waveform" in str(by["array"].reason)
        assert driver.comms.state is CommsState.DEGRADED
        await wait_for(lambda: any(r.point == "sub_ok" for r in got), "sub_ok data change")
        sub_bad = [r for r in got if r.point == "sub_unknown"]
        assert sub_bad and sub_bad[0].quality is Quality.BAD and "BadNodeIdUnknown" in str(sub_bad[0].reason)
        assert all(r.quality is Quality.GOOD for r in got if r.point == "sub_ok")
    finally:
        await driver.close()


async def test_subscription_delivers_changes_with_server_timestamps_and_deadband(sim: OpcUaSimServer) -> None:
    before = set(asyncio.all_tasks())
    spec = OpcUaDeviceSpec(
        name="plc",
        endpoint=sim.endpoint,
        points=(
            p("count", "Simulator.UpdateCount", mode="subscribe", sampling_interval_s=0.0, queue_size=10),
            p("steps_db", "Simulator.Staircase", mode="subscribe", sampling_interval_s=0.05,
              deadband_type="absolute", deadband_value=5.0),
            p("speed", "Motor.Speed"),
        ),
    )
    batches: list[Sequence[Reading]] = []
    driver = OpcUaDriver(spec)
    await driver.connect()
    try:
        await driver.subscribe(batches.append)

        def readings(name: str) -> list[Reading]:
            return [r for b in batches for r in b if r.point == name]

        await wait_for(lambda: len(readings("count")) >= 6 and len(readings("steps_db")) >= 3, "data changes")
        counts = readings("count")
        values = [r.value for r in counts]
        assert all(isinstance(v, int) for v in values)
        assert values == sorted(values) and len(set(values)) == len(values)  # every update, in order
        stamps = [r.source_ts for r in counts]
        assert all(s is not None for s in stamps)
        assert stamps == sorted(stamps)  # type: ignore[type-var]
        assert all(r.quality is Quality.GOOD for r in counts)
        # the server stamps each value when it writes it, ~0.2 s apart, before we receive it
        assert all(r.source_ts is not None and r.source_ts <= r.receive_ts + 1.0 for r in counts)
        # steps of 1 stay inside the 5.0 deadband, the step of 11 every 5th update passes it
        db_values = [int(r.value) for r in readings("steps_db")]  # type: ignore[arg-type]
        assert all(b - a == 15 for a, b in itertools.pairwise(db_values[1:])), db_values
        assert driver.notifications_received >= 9
        # poll points are still read by read() while subscribed
        result = await driver.read()
        assert [r.point for r in result.readings] == ["speed"] and result.readings[0].quality is Quality.GOOD
    finally:
        await driver.close()
    await assert_no_leaked_tasks(before)


async def test_waveform_array_with_sample_rate_from_sibling_node(sim: OpcUaSimServer) -> None:
    spec = OpcUaDeviceSpec(
        name="vib",
        endpoint=sim.endpoint,
        points=(
            OpcUaPointSpec(name="de", node=node_def("Pump.VibrationDE").node_id, kind="waveform",
                           sample_rate_node=node_def("Pump.VibrationDE.SampleRate").node_id, unit="g"),
            OpcUaPointSpec(name="de_fixed", node=node_def("Pump.VibrationDE").node_id, kind="waveform",
                           sample_rate_hz=12800.0, scale=9.80665, unit="m/s2"),
            p("shaft_hz", "Pump.VibrationDE.ShaftSpeed"),
        ),
    )
    driver = OpcUaDriver(spec)
    await driver.connect()
    try:
        result = await driver.read()
    finally:
        await driver.close()
    assert result.requests == 1
    waves = {w.point: w for w in result.waveforms}
    assert set(waves) == {"de", "de_fixed"}
    de = waves["de"]
    assert isinstance(de, Waveform) and de.sample_rate_hz == 12800.0 and de.unit == "g"
    assert de.samples.shape == (12800,) and de.samples.dtype == np.float64
    assert de.quality is Quality.GOOD and abs(de.ts - time.time()) < 30
    np.testing.assert_allclose(waves["de_fixed"].samples, de.samples * 9.80665)
    # the capture is an unbalanced machine at the served shaft speed: its largest peak is 1X
    shaft_hz = result.readings[0].value
    assert isinstance(shaft_hz, float)
    spectrum = np.abs(np.fft.rfft(de.samples * np.hanning(len(de.samples))))
    freqs = np.fft.rfftfreq(len(de.samples), 1 / de.sample_rate_hz)
    low = freqs < 500
    assert abs(freqs[low][np.argmax(spectrum[low])] - shaft_hz) <= 1.0


async def test_subscription_that_stops_delivering_is_noticed_and_rebuilt(sim: OpcUaSimServer) -> None:
    spec = OpcUaDeviceSpec(
        name="plc", endpoint=sim.endpoint, keepalive_s=0.5, timeout_s=1.0, reconnect_min_s=0.2,
        points=(p("count", "Simulator.UpdateCount", mode="subscribe", sampling_interval_s=0.1),),
    )
    got: list[Reading] = []
    driver = OpcUaDriver(spec)
    await driver.connect()
    try:
        await driver.subscribe(got.extend)
        await wait_for(lambda: len(got) >= 2, "first data changes")
        assert await sim.drop_subscriptions() >= 1  # the TCP connection stays up; the data stops
        await wait_for(lambda: driver.stalls_detected >= 1, "the watchdog to notice the stall")
        assert "stopped delivering" in str(driver.comms.last_error)
        n = len(got)
        await wait_for(lambda: len(got) >= n + 3, "data changes after the subscription was rebuilt")
        assert driver.comms.reconnects >= 1 and driver.comms.state is CommsState.OK
    finally:
        await driver.close()


async def test_server_status_codes_become_quality_and_reason(sim: OpcUaSimServer) -> None:
    spec = OpcUaDeviceSpec(
        name="plc", endpoint=sim.endpoint,
        points=(p("power", "Motor.Power"), p("volume", "Tank.Volume"), p("speed", "Motor.Speed")),
    )
    driver = OpcUaDriver(spec)
    sim.set_fault("Motor.Power", "BadSensorFailure")
    sim.set_fault("Tank.Volume", "UncertainLastUsableValue")
    try:
        await driver.connect()
        by: dict[str, Reading] = {}

        async def faults_visible() -> bool:
            by.update({r.point: r for r in (await driver.read()).readings})
            return by["power"].quality is Quality.BAD and by["volume"].quality is Quality.UNCERTAIN

        deadline = time.monotonic() + WAIT_S
        while not await faults_visible():
            assert time.monotonic() < deadline, f"faults never showed: {by}"
            await asyncio.sleep(0.1)
        assert by["power"].value is None and "BadSensorFailure" in str(by["power"].reason)
        assert isinstance(by["volume"].value, float)
        assert "UncertainLastUsableValue" in str(by["volume"].reason)
        assert by["speed"].quality is Quality.GOOD
        assert driver.comms.state is CommsState.DEGRADED
    finally:
        sim.set_fault("Motor.Power", None)
        sim.set_fault("Tank.Volume", None)
        await driver.close()
    with pytest.raises(ValueError, match="unknown OPC UA status 'BadBanana'"):
        sim.set_fault("Motor.Power", "BadBanana")


async def test_dropped_connection_is_rebuilt_and_subscription_resumes(sim: OpcUaSimServer) -> None:
    spec = OpcUaDeviceSpec(
        name="plc", endpoint=sim.endpoint, reconnect_min_s=0.2,
        points=(p("count", "Simulator.UpdateCount", mode="subscribe", sampling_interval_s=0.1),),
    )
    got: list[Reading] = []
    driver = OpcUaDriver(spec)
    await driver.connect()
    try:
        await driver.subscribe(got.extend)
        await wait_for(lambda: len(got) >= 2, "data changes before the drop")
        assert sim.drop_connections() >= 1
        await wait_for(lambda: driver.comms.reconnects >= 1, "the session to be rebuilt")
        n = len(got)
        await wait_for(lambda: len(got) >= n + 2, "data changes after the drop")
        assert driver.comms.state is CommsState.OK
        assert "connection lost" in str(driver.comms.last_error)
    finally:
        await driver.close()


async def test_server_operation_limits_split_reads_and_monitored_items(sim: OpcUaSimServer) -> None:
    paths = ["Motor.Speed", "Motor.Current", "Motor.Load", "Motor.Power", "Motor.Serial", "Tank.Level",
             "Tank.Pressure", "Tank.Volume", "Ambient.Temperature"]
    subscribed = ["Simulator.UpdateCount", "Simulator.UptimeSeconds", "Simulator.Staircase"]
    spec = OpcUaDeviceSpec(
        name="small-plc", endpoint=sim.endpoint,
        points=(*(p(f"r{i}", path) for i, path in enumerate(paths)),
                *(p(f"s{i}", path, mode="subscribe", sampling_interval_s=0.1)
                  for i, path in enumerate(subscribed))),
    )
    await sim.set_operation_limits(4, 2)
    got: list[Reading] = []
    driver = OpcUaDriver(spec)
    try:
        await driver.connect()
        assert (driver.max_nodes_per_read, driver.max_monitored_items_per_call) == (4, 2)
        result = await driver.read()
        assert result.requests == 3  # 9 nodes, at most 4 per Read
        assert [r.point for r in result.readings] == [f"r{i}" for i in range(9)]
        assert all(r.quality is Quality.GOOD for r in result.readings)
        assert driver._client is not None
        batch_sizes: list[int] = []
        real_create = driver._client.uaclient.create_monitored_items

        async def counting_create(params: Any) -> Any:
            batch_sizes.append(len(params.ItemsToCreate))
            return await real_create(params)

        driver._client.uaclient.create_monitored_items = counting_create  # type: ignore[method-assign]
        await driver.subscribe(got.extend)
        assert batch_sizes == [2, 1]  # 3 items, at most 2 per call
        await wait_for(lambda: {r.point for r in got} == {"s0", "s1", "s2"}, "data from all 3 items")
    finally:
        await sim.set_operation_limits(0, 0)
        await driver.close()


async def test_subscribe_before_connect_opens_one_session(sim: OpcUaSimServer) -> None:
    spec = OpcUaDeviceSpec(
        name="plc", endpoint=sim.endpoint,
        points=(p("count", "Simulator.UpdateCount", mode="subscribe", sampling_interval_s=0.1),),
    )
    got: list[Reading] = []
    driver = OpcUaDriver(spec)
    try:
        await driver.subscribe(got.extend)  # the supervisor connects on its own
        await wait_for(lambda: len(got) >= 2, "data changes without connect()")
        client = driver._client
        await driver.connect()  # the agent's connect() afterwards must not open a second session
        assert driver._client is client
        result = await driver.read()
        assert result.readings == [] and result.requests == 0
        assert driver.comms.state is CommsState.OK and driver.comms.reconnects == 0
    finally:
        await driver.close()


async def test_connect_to_nothing_raises_driver_error_and_read_reports_bad() -> None:
    from drivers.base import DriverError

    spec = OpcUaDeviceSpec(name="ghost", endpoint="opc.tcp://127.0.0.1:1/none", timeout_s=1.0,
                           reconnect_min_s=0.1, points=(OpcUaPointSpec(name="x", node="ns=2;s=X"),))
    driver = OpcUaDriver(spec)
    with pytest.raises(DriverError, match=re.escape("ghost: cannot connect to opc.tcp://127.0.0.1:1/none")):
        await driver.connect()
    result = await driver.read()
    assert result.readings[0].quality is Quality.BAD and "cannot connect" in str(result.readings[0].reason)
    assert driver.comms.state is CommsState.DOWN and driver.comms.last_error
    await driver.close()


async def test_a_node_the_server_does_not_know_is_logged_once_and_is_the_last_error(
        sim: OpcUaSimServer, caplog: pytest.LogCaptureFixture) -> None:
    """A NodeId that parses but is unknown on the server (a typo) used to leave only 'degraded' with no
    error and no log line: now the device says which point and why, once until it reads again."""
    spec = OpcUaDeviceSpec(name="plc", endpoint=sim.endpoint,
                           points=(p("speed", "Motor.Speed"), OpcUaPointSpec(name="sped", node="ns=2;s=Motor.Sped")))
    driver = OpcUaDriver(spec)
    await driver.connect()
    try:
        with caplog.at_level(logging.INFO, logger="drivers.opcua.client"):
            for _ in range(3):
                await driver.read()
        assert driver.comms.state is CommsState.DEGRADED
    finally:
        await driver.close()
    assert driver.comms.last_error is not None and driver.comms.last_error.startswith("point 'sped': ")
    assert "BadNodeIdUnknown" in driver.comms.last_error
    warned = [r.getMessage() for r in caplog.records if "'sped' is BAD" in r.getMessage()]
    assert len(warned) == 1, warned
