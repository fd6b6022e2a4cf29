"""Modbus RTU on a serial line: the driver and the simulator on the two ends of a socat pty pair."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from drivers.base import CommsState, DriverError, Quality
from drivers.modbus import ModbusRtuSpec, create_driver
from drivers.modbus.client import ModbusDriver
from drivers.sim.modbus_server import ModbusSimServer
from drivers.sim.plant import Plant
from drivers.sim.register_map import REGISTER_MAP

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat for a virtual serial line"),
]

VALUE_POINTS = tuple(e.point for e in REGISTER_MAP if e.point.kind == "value")


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals, like the two ends of a null-modem cable (ptys refuse parity E/O)."""
    a, b = tmp_path / "ttyPLC", tmp_path / "ttyGW"
    proc = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not (a.exists() and b.exists()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("socat did not create the pty pair")
            time.sleep(0.02)
        yield os.fspath(a), os.fspath(b)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (checked after every other teardown)."""
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not pending, f"test leaked tasks: {pending}"


@pytest.fixture
async def rtu_server(no_leaks: None, serial_pair: tuple[str, str]) -> AsyncIterator[ModbusSimServer]:
    srv = ModbusSimServer(Plant(seed=3), unit_id=5, serial_port=serial_pair[0], baudrate=115200,
                          parity="N", clock=lambda: 100.0)
    await srv.start()
    yield srv
    await srv.stop()


async def test_rtu_driver_reads_the_plant_over_a_serial_line(rtu_server: ModbusSimServer,
                                                             serial_pair: tuple[str, str]) -> None:
    spec = ModbusRtuSpec(name="rtu-plc", serial_port=serial_pair[1], baudrate=115200, parity="N", unit_id=5,
                         timeout_s=2.0, points=VALUE_POINTS, max_gap=10)
    driver = create_driver(spec)
    assert isinstance(driver, ModbusDriver)
    try:
        await driver.connect()
        result = await driver.read()
        values = {r.point: r for r in result.readings}
        assert all(r.quality is Quality.GOOD for r in result.readings), result.readings
        plant = rtu_server.plant
        assert values["serial"].value == plant.value("motor.serial")
        assert values["bearing_temp"].value == pytest.approx(plant.value("motor.bearing_temp_c"), rel=1e-6)
        assert values["volume"].value == pytest.approx(plant.value("tank.volume_l"), rel=1e-6)
        assert values["running"].value is plant.value("motor.running")
        assert driver.comms.state is CommsState.OK
        # the illegal-address split works over RTU too: holding 0..35 became two hole-free reads
        assert [(r.table, r.address, r.count) for r in driver.plan][:2] == [("holding", 0, 13), ("holding", 20, 16)]
    finally:
        await driver.close()
        await asyncio.sleep(0)


async def test_silent_device_times_out_reports_down_then_recovers(rtu_server: ModbusSimServer,
                                                                  serial_pair: tuple[str, str]) -> None:
    spec = ModbusRtuSpec(name="rtu-plc", serial_port=serial_pair[1], baudrate=115200, parity="N", unit_id=5,
                         timeout_s=0.3, points=VALUE_POINTS[:2], backoff_min_s=0.05, backoff_max_s=0.2)
    driver = create_driver(spec)
    try:
        await driver.connect()
        rtu_server.set_delay(1.0)
        result = await driver.read()
        assert {r.reason for r in result.readings} == {"no response within 0.3 s"}
        assert driver.comms.state is CommsState.DOWN
        rtu_server.clear_faults()
        deadline = asyncio.get_running_loop().time() + 20
        while driver.comms.state is not CommsState.OK:
            assert asyncio.get_running_loop().time() < deadline, driver.comms
            await asyncio.sleep(0.05)
            result = await driver.read()
        assert all(r.quality is Quality.GOOD for r in result.readings)
        assert driver.comms.reconnects == 1
    finally:
        await driver.close()
        await asyncio.sleep(0)


async def test_two_devices_share_one_line_and_a_dead_third_does_not_disturb_them(
        no_leaks: None, serial_pair: tuple[str, str]) -> None:
    plant = Plant(seed=3)
    srv = ModbusSimServer(plant, unit_id=(1, 2), serial_port=serial_pair[0], baudrate=115200, parity="N",
                          clock=lambda: 100.0)
    await srv.start()
    common = {"serial_port": serial_pair[1], "baudrate": 115200, "parity": "N", "timeout_s": 0.5,
              "backoff_min_s": 0.05, "backoff_max_s": 0.2}
    speed = next(p for p in VALUE_POINTS if p.name == "speed")
    level = next(p for p in VALUE_POINTS if p.name == "level")
    drivers = [create_driver(ModbusRtuSpec(name=f"dev{u}", unit_id=u, points=(speed, level), **common))
               for u in (1, 2, 9)]
    try:
        for d in drivers:
            await d.connect()
        for _ in range(3):
            results = await asyncio.gather(*(d.read() for d in drivers))
            for result in results[:2]:
                assert all(r.quality is Quality.GOOD for r in result.readings), result.readings
                assert {r.point: r.value for r in result.readings}["speed"] == round(
                    float(plant.value("motor.speed_rpm")))
            assert all(r.quality is Quality.BAD for r in results[2].readings)
        assert [d.comms.state for d in drivers] == [CommsState.OK, CommsState.OK, CommsState.DOWN]
        with pytest.raises(DriverError, match="already used by another device with other settings"):
            await create_driver(ModbusRtuSpec(name="odd", unit_id=3, points=(speed,),
                                              **{**common, "baudrate": 9600})).connect()
    finally:
        for d in drivers:
            await d.close()
        await srv.stop()


async def test_a_late_answer_is_never_taken_for_the_next_requests_answer(
        no_leaks: None, serial_pair: tuple[str, str]) -> None:
    # RTU frames carry no transaction id: after a timeout, a late answer must not be read as the answer to
    # the next request (another register's value, marked good)
    holding = [p for p in VALUE_POINTS if p.table == "holding" and p.type in ("uint16", "int16")]
    first, second = holding[0], next(p for p in holding[1:] if p.address > holding[0].address + 1)
    server = ModbusSimServer(Plant(seed=3), unit_id=1, serial_port=serial_pair[0], baudrate=115200, parity="N",
                             clock=lambda: 100.0, update_interval_s=None)
    await server.start()
    spec = ModbusRtuSpec(name="rtu-plc", serial_port=serial_pair[1], baudrate=115200, parity="N", unit_id=1,
                         timeout_s=0.5, backoff_min_s=0.1, backoff_max_s=0.1, points=(first, second), max_gap=0)
    driver = create_driver(spec)
    try:
        await driver.connect()
        truth = {r.point: r.value for r in (await driver.read()).readings}
        assert truth[first.name] != truth[second.name]
        server.set_delay(0.4, address=first.address)   # answered in time
        server.set_delay(0.9, address=second.address)  # answered after the timeout
        wrong: list[tuple[str, object]] = []
        for _ in range(6):
            for r in (await driver.read()).readings:
                if r.quality is Quality.GOOD and r.value != truth[r.point]:
                    wrong.append((r.point, r.value))
            await asyncio.sleep(0.02)
        assert wrong == []
    finally:
        await driver.close()
        await server.stop()
