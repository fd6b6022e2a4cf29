"""The Modbus driver against the simulated PLC over real loopback sockets.

The simulator encodes the plant with its own encoder (``register_map.encode_entry``); the driver
decodes with ``drivers.modbus.codec``: every value check compares two independent implementations
with the plant model's truth. The plant clock is frozen so that expected values are exact.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from drivers.base import CommsState, Driver, DriverError, Quality, ReadResult
from drivers.modbus import ModbusPointSpec, ModbusRtuOverTcpSpec, ModbusTcpSpec, create_driver
from drivers.modbus.client import ModbusDriver
from drivers.sim.modbus_server import ModbusSimServer
from drivers.sim.plant import Plant
from drivers.sim.register_map import REGISTER_MAP, WAVEFORM_RATE_SOURCE, WAVEFORM_SOURCE, MapEntry

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("error::ResourceWarning")]

PLANT_T_S = 100.0
VALUE_ENTRIES = [e for e in REGISTER_MAP if e.point.kind == "value"]


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (set up first, so it checks after every other teardown)."""
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not pending, f"test leaked tasks: {pending}"


@pytest.fixture
async def server(no_leaks: None) -> AsyncIterator[ModbusSimServer]:
    srv = ModbusSimServer(Plant(seed=3), clock=lambda: PLANT_T_S)
    await srv.start()
    yield srv
    await srv.stop()


def tcp_spec(port: int, points: tuple[ModbusPointSpec, ...] | None = None, **kwargs: Any) -> ModbusTcpSpec:
    settings: dict[str, Any] = {"timeout_s": 2.0, "backoff_min_s": 0.05, "backoff_max_s": 0.5}
    settings.update(kwargs)
    pts = tuple(e.point for e in REGISTER_MAP) if points is None else points
    return ModbusTcpSpec(name="plc", host="127.0.0.1", port=port, points=pts, **settings)


@pytest.fixture
async def make_driver(no_leaks: None) -> AsyncIterator[Callable[[Any], ModbusDriver]]:
    drivers: list[ModbusDriver] = []

    def make(spec: Any) -> ModbusDriver:
        driver = create_driver(spec)
        assert isinstance(driver, ModbusDriver)
        drivers.append(driver)
        return driver

    yield make
    for d in drivers:
        await d.close()


def expected_value(plant: Plant, entry: MapEntry) -> object:
    return 5120 if entry.source == WAVEFORM_RATE_SOURCE else plant.value(entry.source)


def assert_matches_plant(result: ReadResult, plant: Plant, entries: list[MapEntry]) -> None:
    """Every reading GOOD and equal to the plant value within the register's resolution."""
    by_name = {r.point: r for r in result.readings}
    assert set(by_name) == {e.point.name for e in entries}
    for entry in entries:
        p, reading = entry.point, by_name[entry.point.name]
        assert reading.quality is Quality.GOOD, reading
        want = expected_value(plant, entry)
        got = reading.value
        if isinstance(want, bool | str) or p.enum is not None:
            assert got == want, (p.name, got, want)
        elif p.type == "float32":
            assert got == pytest.approx(want, rel=1e-6), p.name
        elif p.type == "float64":
            assert got == pytest.approx(want, rel=1e-12), p.name
        else:  # integer register: the simulator rounded to the nearest raw code
            assert isinstance(got, int | float) and isinstance(want, int | float)
            assert abs(got - want) <= p.scale / 2 + 1e-9, (p.name, got, want)


async def read_until(driver: Driver, done: Callable[[ReadResult], bool], timeout_s: float = 30.0,
                     what: str = "condition") -> ReadResult:
    """Poll read() until ``done`` holds; fail after ``timeout_s`` (generous, for loaded machines)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await driver.read()
        if done(result):
            return result
        if loop.time() > deadline:
            pytest.fail(f"{what} not reached within {timeout_s} s; last: {driver.comms}")
        await asyncio.sleep(0.05)


def all_good(result: ReadResult) -> bool:
    return all(r.quality is Quality.GOOD for r in result.readings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------------------- values
async def test_reads_every_mapped_value_of_the_plant(server: ModbusSimServer,
                                                     make_driver: Callable[[Any], ModbusDriver]) -> None:
    driver = make_driver(tcp_spec(server.port))
    await driver.connect()
    result = await driver.read()
    assert_matches_plant(result, server.plant, VALUE_ENTRIES)
    assert driver.comms.state is CommsState.OK and driver.comms.reconnects == 0
    assert result.requests == driver.comms.requests_last_cycle == len(driver.plan) + 1 + 17
    by_name = {r.point: r.value for r in result.readings}
    assert by_name["serial"] == "MTR-7781-2024-0042" and by_name["state"] == "running"
    assert by_name["running_bit"] is True and by_name["speed"] == round(server.plant.value("motor.speed_rpm"))


async def test_waveform_block_arrives_as_one_waveform(server: ModbusSimServer,
                                                      make_driver: Callable[[Any], ModbusDriver]) -> None:
    driver = make_driver(tcp_spec(server.port))
    await driver.connect()
    (wf,) = (await driver.read()).waveforms
    assert wf.point == "vib_de" and wf.quality is Quality.GOOD and wf.unit == "g"
    assert wf.sample_rate_hz == 5120.0 and wf.samples.shape == (2048,)
    raw = np.array(server.registers("input", 1000, 2048), dtype=np.uint16).view(np.int16)
    np.testing.assert_allclose(wf.samples, raw * 0.001)
    assert 0.01 < float(np.std(wf.samples)) < 0.2  # healthy machine: a few hundredths of a g RMS


def every_type_and_order_map() -> list[MapEntry]:
    entries: list[MapEntry] = []
    address = 0
    signed = {"int16": 0.01, "int32": 0.001, "int64": 1e-6}
    unsigned = {"uint16": 0.1, "uint32": 0.001, "uint64": 1e-6}
    for order in ("ABCD", "CDAB", "BADC", "DCBA"):
        for type_, scale in [*signed.items(), *unsigned.items(), ("float32", 1.0), ("float64", 1.0)]:
            source = ("ambient.temp_c" if type_ in signed else "tank.volume_l" if type_ in unsigned
                      else "motor.bearing_temp_c")
            point = ModbusPointSpec(f"{type_}_{order}", "holding", address, type_, order,  # type: ignore[arg-type]
                                    scale=scale)
            entries.append(MapEntry(source, point, ""))
            address += point.register_count
        serial = ModbusPointSpec(f"string_{order}", "holding", address, "string", order,  # type: ignore[arg-type]
                                 length=10)
        entries.append(MapEntry("motor.serial", serial, ""))
        address += 10
    return entries


async def test_every_type_and_byte_order_end_to_end(no_leaks: None,
                                                    make_driver: Callable[[Any], ModbusDriver]) -> None:
    entries = every_type_and_order_map()
    plant = Plant(seed=5)
    plant.update(PLANT_T_S)
    async with ModbusSimServer(plant, register_map=entries, clock=lambda: PLANT_T_S) as srv:
        driver = make_driver(tcp_spec(srv.port, tuple(e.point for e in entries)))
        await driver.connect()
        result = await driver.read()
        assert_matches_plant(result, plant, entries)
        assert result.requests == 1  # 4 x (20 numeric + 10 string) = 120 registers


async def test_negative_values_survive_every_signed_type(no_leaks: None,
                                                         make_driver: Callable[[Any], ModbusDriver]) -> None:
    # At t = 17 h the daily ambient sine of seed 0 is at its minimum, below zero.
    t_s = 17 * 3600.0
    plant = Plant(seed=0)
    plant.update(t_s)
    assert float(plant.value("ambient.temp_c")) < 0
    entries = [e for e in every_type_and_order_map() if e.source == "ambient.temp_c"]
    async with ModbusSimServer(plant, register_map=entries, clock=lambda: t_s) as srv:
        driver = make_driver(tcp_spec(srv.port, tuple(e.point for e in entries)))
        await driver.connect()
        assert_matches_plant(await driver.read(), plant, entries)


async def test_rtu_framing_over_tcp(no_leaks: None, make_driver: Callable[[Any], ModbusDriver]) -> None:
    plant = Plant(seed=3)
    async with ModbusSimServer(plant, framer="rtu", unit_id=7, clock=lambda: PLANT_T_S) as srv:
        spec = ModbusRtuOverTcpSpec(name="gw", host="127.0.0.1", port=srv.port, unit_id=7, timeout_s=2.0,
                                    points=tuple(e.point for e in VALUE_ENTRIES))
        driver = make_driver(spec)
        await driver.connect()
        assert_matches_plant(await driver.read(), plant, VALUE_ENTRIES)


async def test_concurrent_connections_read_the_same_values(server: ModbusSimServer,
                                                           make_driver: Callable[[Any], ModbusDriver]) -> None:
    points = tuple(ModbusPointSpec(f"r{i}", "input", 1000 + i, "int16", scale=0.001) for i in range(2048))
    driver = make_driver(tcp_spec(server.port, points, concurrency=4))
    await driver.connect()
    result = await driver.read()
    assert result.requests == 17 and all_good(result)
    raw = np.array(server.registers("input", 1000, 2048), dtype=np.uint16).view(np.int16)
    np.testing.assert_allclose([r.value for r in result.readings], raw * 0.001)


# ----------------------------------------------------------------------------------------- faults
async def test_illegal_address_splits_the_merged_request_and_remembers(
        server: ModbusSimServer, make_driver: Callable[[Any], ModbusDriver]) -> None:
    points = tuple(e.point for e in VALUE_ENTRIES if e.point.table == "holding")
    driver = make_driver(tcp_spec(server.port, points, max_gap=10))
    assert [(r.address, r.count) for r in driver.plan] == [(0, 36)]  # bridges the unmapped 13..19
    await driver.connect()
    first = await driver.read()
    assert all_good(first) and first.requests == 3  # refused merged read + two hole-free runs
    assert [(r.address, r.count) for r in driver.plan] == [(0, 13), (20, 16)]
    second = await driver.read()
    assert all_good(second) and second.requests == 2
    assert driver.comms.state is CommsState.OK


async def test_after_a_split_part_times_out_no_more_parts_are_sent(
        server: ModbusSimServer, make_driver: Callable[[Any], ModbusDriver]) -> None:
    points = tuple(e.point for e in VALUE_ENTRIES if e.point.table == "holding")
    driver = make_driver(tcp_spec(server.port, points, max_gap=10, timeout_s=0.5))
    await driver.connect()
    server.set_delay(3.0, address=0)  # the merged read is refused, then its first part gets no answer
    started = asyncio.get_running_loop().time()
    result = await driver.read()
    took = asyncio.get_running_loop().time() - started
    assert result.requests == 2 and took < 1.5  # the refused read and the part that timed out, nothing more
    later = [r for r in result.readings if r.point in {p.name for p in points if p.address >= 20}]
    assert later and all(r.quality is Quality.BAD and str(r.reason).startswith("not read: ") for r in later)
    assert driver.comms.state is CommsState.DOWN
    assert [(r.address, r.count) for r in driver.plan] == [(0, 13), (20, 16)]  # the split is kept


async def test_exception_marks_only_its_points_bad_and_degrades(server: ModbusSimServer,
                                                                make_driver: Callable[[Any], ModbusDriver]) -> None:
    driver = make_driver(tcp_spec(server.port, tuple(e.point for e in VALUE_ENTRIES)))
    await driver.connect()
    server.set_exception(4, "input")
    result = await driver.read()
    bad = {r.point: r.reason for r in result.readings if r.quality is Quality.BAD}
    input_points = {e.point.name for e in VALUE_ENTRIES if e.point.table == "input"}
    assert set(bad) == input_points
    assert set(bad.values()) == {"exception 4 SERVER DEVICE FAILURE"}
    assert driver.comms.state is CommsState.DEGRADED
    assert driver.comms.last_error == "exception 4 SERVER DEVICE FAILURE"
    server.clear_faults()
    assert all_good(await driver.read())
    assert driver.comms.state is CommsState.OK and driver.comms.reconnects == 0


async def test_server_killed_and_restarted(server: ModbusSimServer,
                                           make_driver: Callable[[Any], ModbusDriver]) -> None:
    driver = make_driver(tcp_spec(server.port))
    await driver.connect()
    assert all_good(await driver.read())
    await server.stop()
    down = await read_until(driver, lambda r: driver.comms.state is CommsState.DOWN, what="comms DOWN")
    assert all(r.quality is Quality.BAD and r.value is None and r.reason for r in down.readings)
    assert all(w.quality is Quality.BAD for w in down.waveforms)
    # while the device is away, read() answers from memory without touching the network
    waiting = await driver.read()
    assert waiting.requests == 0 and all(r.quality is Quality.BAD for r in waiting.readings)
    assert driver.comms.reconnects == 0
    await server.start()
    recovered = await read_until(driver, all_good, what="recovery after restart")
    assert_matches_plant(recovered, server.plant, VALUE_ENTRIES)
    assert driver.comms.state is CommsState.OK and driver.comms.reconnects == 1


async def test_dropped_connection_is_reported_and_reconnected(server: ModbusSimServer,
                                                              make_driver: Callable[[Any], ModbusDriver]) -> None:
    driver = make_driver(tcp_spec(server.port))
    await driver.connect()
    assert all_good(await driver.read())
    assert server.drop_connections() == 1
    result = await read_until(driver, lambda r: not all_good(r), what="a failed read after the drop")
    reasons = {r.reason for r in result.readings}
    assert any("connection" in (reason or "") for reason in reasons), reasons
    assert driver.comms.state is CommsState.DOWN
    await read_until(driver, all_good, what="recovery after the drop")
    assert driver.comms.reconnects == 1 and driver.comms.state is CommsState.OK


async def test_slow_device_times_out_then_recovers(server: ModbusSimServer,
                                                   make_driver: Callable[[Any], ModbusDriver]) -> None:
    driver = make_driver(tcp_spec(server.port, tuple(e.point for e in VALUE_ENTRIES), timeout_s=0.5))
    await driver.connect()
    server.set_delay(2.0)
    result = await driver.read()
    assert result.requests == 1  # the first timeout closes the link; the rest are not sent
    assert {r.reason for r in result.readings} >= {"no response within 0.5 s"}
    assert all(r.quality is Quality.BAD for r in result.readings)
    assert driver.comms.state is CommsState.DOWN
    server.clear_faults()
    await read_until(driver, all_good, what="recovery after the delay is removed")
    assert driver.comms.reconnects == 1


async def test_connect_to_nothing_raises_driver_error_naming_the_device(
        make_driver: Callable[[Any], ModbusDriver]) -> None:
    port = free_port()
    driver = make_driver(tcp_spec(port, timeout_s=1.0))
    with pytest.raises(DriverError, match=f"device 'plc': cannot connect to 127.0.0.1:{port}"):
        await driver.connect()
    result = await driver.read()  # read() never raises: it tries, fails, schedules a retry
    assert all(r.quality is Quality.BAD for r in result.readings)
    assert "next attempt in" in (result.readings[0].reason or "")
    assert driver.comms.state is CommsState.DOWN and driver.retry_in_s > 0


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    from drivers.modbus.backoff import Backoff

    backoff = Backoff(0.5, 30.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    bases = [min(30.0, 0.5 * 2**i) for i in range(12)]
    assert all(base / 2 <= d < base for d, base in zip(delays, bases, strict=True))
    assert math.isclose(max(bases), 30.0)
    backoff.reset()
    assert backoff.next_delay() < 0.5


async def test_close_is_idempotent_and_driver_satisfies_the_protocol(
        server: ModbusSimServer, make_driver: Callable[[Any], ModbusDriver]) -> None:
    driver = make_driver(tcp_spec(server.port))
    assert isinstance(driver, Driver) and driver.supports_subscribe is False
    await driver.connect()
    await driver.close()
    await driver.close()
    assert driver.comms.state is CommsState.DOWN
    with pytest.raises(DriverError, match="cannot push"):
        await driver.subscribe(lambda readings: None)


async def test_a_failure_is_logged_once_and_the_recovery_once(
        server: ModbusSimServer, make_driver: Callable[[Any], ModbusDriver],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.modbus.client")
    driver = make_driver(tcp_spec(server.port))
    await driver.connect()
    await server.stop()
    for _ in range(5):
        await driver.read()
        await asyncio.sleep(0.06)
    await server.start()
    await read_until(driver, all_good, what="recovery")
    ours = [r for r in caplog.records if r.name == "drivers.modbus.client"]
    warnings = [r for r in ours if r.levelno == logging.WARNING]
    recoveries = [r for r in ours if r.levelno == logging.INFO and "restored" in r.getMessage()]
    assert len(warnings) == 1 and "device 'plc'" in warnings[0].getMessage()
    assert len(recoveries) == 1
    assert all(r.levelno <= logging.DEBUG for r in ours if r not in warnings and r not in recoveries)


@pytest.mark.parametrize("max_gap", [0, 3, 8, 20, 125])
@pytest.mark.parametrize("seed", [1, 2])
async def test_any_gap_setting_ends_with_every_point_good(
        server: ModbusSimServer, make_driver: Callable[[Any], ModbusDriver], max_gap: int, seed: int) -> None:
    rng = random.Random(seed)
    entries = rng.sample(VALUE_ENTRIES, k=len(VALUE_ENTRIES) * 2 // 3)
    driver = make_driver(tcp_spec(server.port, tuple(e.point for e in entries), max_gap=max_gap))
    await driver.connect()
    first = await driver.read()
    assert_matches_plant(first, server.plant, entries)
    second = await driver.read()
    assert_matches_plant(second, server.plant, entries)
    assert second.requests == len(driver.plan) <= first.requests
    assert driver.comms.state is CommsState.OK


async def test_unknown_unit_behind_a_gateway_is_down_without_reconnecting(
        server: ModbusSimServer, make_driver: Callable[[Any], ModbusDriver]) -> None:
    driver = make_driver(tcp_spec(server.port, tuple(e.point for e in VALUE_ENTRIES), unit_id=42))
    await driver.connect()
    result = await driver.read()
    assert {r.reason for r in result.readings} == {"exception 11 GATEWAY TARGET DEVICE FAILED TO RESPOND"}
    assert driver.comms.state is CommsState.DOWN and driver.connected
    assert driver.comms.last_ok_ts is None and driver.comms.reconnects == 0


async def test_a_connection_dropped_mid_request_fails_at_once_not_after_the_timeout(
        server: ModbusSimServer, make_driver: Callable[[Any], ModbusDriver]) -> None:
    # timeout_s is 60 s: the read can only finish early if the drop itself fails the pending request
    driver = make_driver(tcp_spec(server.port, tuple(e.point for e in VALUE_ENTRIES), timeout_s=60.0))
    await driver.connect()
    server.set_delay(120.0)
    reading = asyncio.create_task(driver.read())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while server.held_requests == 0:
        assert loop.time() < deadline, "the request never reached the server"
        await asyncio.sleep(0.01)
    server.drop_connections()
    result = await asyncio.wait_for(reading, 30)
    reasons = {r.reason or "" for r in result.readings}
    assert reasons and all("connection lost" in reason for reason in reasons), reasons
    assert driver.comms.state is CommsState.DOWN


async def test_a_waveform_read_in_17_requests_comes_from_one_capture(
        no_leaks: None, make_driver: Callable[[Any], ModbusDriver]) -> None:
    # The simulator takes a new capture on every 5 ms update, so a block read over 17 requests would
    # mix captures if the server did not hold its capture while a reader is part-way through.
    wf_entries = [e for e in REGISTER_MAP if e.point.name in ("vib_de", "vib_de_rate")]
    srv = ModbusSimServer(Plant(seed=6), update_interval_s=0.005, waveform_interval_s=0.0,
                          register_map=wf_entries)
    async with srv:
        driver = make_driver(tcp_spec(srv.port, tuple(e.point for e in wf_entries)))
        await driver.connect()
        wf_point = next(e.point for e in wf_entries if e.point.kind == "waveform")
        for _ in range(5):
            (wf,) = (await driver.read()).waveforms
            assert wf.quality is Quality.GOOD
            candidates = (np.clip(np.round(srv.vibration.capture(t, 2048, shaft_hz=hz) / wf_point.scale),
                                  -32768, 32767) * wf_point.scale for t, hz in reversed(srv.waveform_captures))
            assert any(np.array_equal(wf.samples, c) for c in candidates), "waveform mixes two captures"
            await asyncio.sleep(0.02)
        assert len(srv.waveform_captures) > 5  # captures did change between the reads


@pytest.mark.parametrize("rate_type", ["uint16", "uint32", "float32"])
async def test_the_sample_rate_register_is_read_as_its_configured_type(
        no_leaks: None, make_driver: Callable[[Any], ModbusDriver], rate_type: str) -> None:
    from edge_agent.config import load_config_text
    from edge_agent.driver_factory import modbus_device_spec

    rate = ModbusPointSpec("rate", "input", 998, rate_type)
    entries = [MapEntry(WAVEFORM_RATE_SOURCE, rate, ""),
               MapEntry(WAVEFORM_SOURCE, ModbusPointSpec("vib", "input", 1000, "int16", scale=0.001, kind="waveform",
                                                         count=256, sample_rate_address=998), "")]
    server = ModbusSimServer(Plant(seed=3), clock=lambda: PLANT_T_S, register_map=entries)
    await server.start()
    try:
        config = load_config_text(
            "agent: {id: gw, site: s}\nmqtt: {url: mqtt://127.0.0.1:1883}\ndevices:\n"
            f"  - {{name: plc, protocol: modbus_tcp, host: 127.0.0.1, port: {server.port}, points: [\n"
            "      {name: vib, table: input, address: 1000, type: int16, scale: 0.001, unit: g, kind: waveform,\n"
            f"       count: 256, sample_rate_address: 998, sample_rate_type: {rate_type}}}]}}\n", "cfg.yaml")
        driver = make_driver(modbus_device_spec(config.devices[0]))  # type: ignore[arg-type]
        await driver.connect()
        (waveform,) = (await driver.read()).waveforms
        assert waveform.quality is Quality.GOOD
        assert waveform.sample_rate_hz == server.vibration.fs_hz > 0
    finally:
        await server.stop()


async def _misbehaving_device(mode: str) -> tuple[asyncio.Server, int]:
    """A hand-written Modbus TCP device (register n holds 1000 + n) whose answer to reads at address 0 is
    malformed in one way."""
    import struct

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                fc, address, count = struct.unpack(">BHH", (await reader.readexactly(length - 1))[:5])
                registers = [1000 + address + i for i in range(count)]
                body = bytes([fc, 2 * count]) + b"".join(r.to_bytes(2, "big") for r in registers)
                if address == 0 and mode == "odd byte count":
                    body = bytes([fc, 3]) + body[2:5]
                elif address == 0 and mode == "byte count past the packet":
                    body = bytes([fc, 2 * count + 2]) + body[2:]
                writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("mode", ["odd byte count", "byte count past the packet"])
async def test_a_malformed_answer_fails_its_request_only(no_leaks: None, mode: str) -> None:
    server, port = await _misbehaving_device(mode)
    points = (ModbusPointSpec("a", "holding", 0, "uint32"), ModbusPointSpec("b", "holding", 10))
    driver = create_driver(tcp_spec(port, points, timeout_s=0.5, max_gap=0))
    try:
        await driver.connect()
        readings = {r.point: r for r in (await driver.read()).readings}
        assert readings["a"].quality is Quality.BAD and "malformed answer: byte count" in str(readings["a"].reason)
        assert readings["b"].quality is Quality.GOOD and readings["b"].value == 1010  # the link stayed up
        assert driver.comms.state is CommsState.DEGRADED and driver.connected
    finally:
        await driver.close()
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("framer", ["socket", "rtu"])
async def test_answers_from_another_unit_name_the_unit_not_a_timeout(
        no_leaks: None, make_driver: Callable[[Any], ModbusDriver], framer: str) -> None:
    """A device at unit 3 answering a config that says unit 1: the reason points at the config, not cabling."""
    plant = Plant(seed=3)
    async with ModbusSimServer(plant, framer=framer, unit_id=3, answer_unit=3, clock=lambda: PLANT_T_S) as srv:
        points = tuple(e.point for e in VALUE_ENTRIES)
        spec = (tcp_spec(srv.port, points, unit_id=1, timeout_s=0.5) if framer == "socket" else
                ModbusRtuOverTcpSpec(name="gw", host="127.0.0.1", port=srv.port, unit_id=1, timeout_s=0.5,
                                     points=points))
        driver = make_driver(spec)
        await driver.connect()
        result = await driver.read()
        reason = "answers come from unit 3, not unit 1: check `unit` in the config"
        assert {r.reason for r in result.readings} <= {reason, f"not read: {reason}"}, result.readings
        assert driver.comms.state is CommsState.DOWN and driver.comms.last_error == reason
        # the same device with the right unit reads every value
        right = make_driver(replace(spec, name="right", unit_id=3))
        await right.connect()
        assert_matches_plant(await right.read(), plant, VALUE_ENTRIES)
