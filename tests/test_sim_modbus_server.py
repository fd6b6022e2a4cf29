"""The simulated PLC seen by a bare pymodbus client: map, unmapped addresses, faults, restarts."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable

import pytest
from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus.codec import decode_point
from drivers.sim.modbus_server import ModbusSimServer, serve_modbus
from drivers.sim.plant import Plant
from drivers.sim.register_map import REGISTER_MAP

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("error::ResourceWarning")]


@pytest.fixture
async def no_leaks() -> AsyncIterator[None]:
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    assert not pending, f"test leaked tasks: {pending}"


@pytest.fixture
async def client_for(no_leaks: None) -> AsyncIterator[list[AsyncModbusTcpClient]]:
    clients: list[AsyncModbusTcpClient] = []
    yield clients
    for c in clients:
        c.close()
    await asyncio.sleep(0)


async def eventually(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        if condition():
            return
        if loop.time() > deadline:
            pytest.fail(f"condition not reached within {timeout_s} s")
        await asyncio.sleep(0.01)


async def connect(clients: list[AsyncModbusTcpClient], port: int) -> AsyncModbusTcpClient:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0, reconnect_delay=0)
    clients.append(client)
    assert await client.connect()
    return client


async def test_port_zero_picks_a_free_port_and_values_follow_the_map(
        client_for: list[AsyncModbusTcpClient]) -> None:
    plant = Plant(seed=1)
    async with serve_modbus(plant, port=0, update_interval_s=None) as srv:
        assert srv.port > 0
        client = await connect(client_for, srv.port)
        speed = next(e.point for e in REGISTER_MAP if e.point.name == "speed")
        response = await client.read_holding_registers(0, count=1, device_id=1)
        assert decode_point(speed, response.registers) == round(float(plant.value("motor.speed_rpm")))
        serial = next(e.point for e in REGISTER_MAP if e.point.name == "serial")
        response = await client.read_holding_registers(serial.address, count=serial.register_count, device_id=1)
        assert decode_point(serial, response.registers) == plant.value("motor.serial")
        response = await client.read_discrete_inputs(0, count=3, device_id=1)
        assert response.bits[:3] == [plant.value("motor.running"), plant.value("tank.high_level"),
                                     plant.value("tank.low_level")]


async def test_unmapped_addresses_and_writes_are_refused(client_for: list[AsyncModbusTcpClient]) -> None:
    async with serve_modbus(Plant(), update_interval_s=None) as srv:
        client = await connect(client_for, srv.port)
        hole = await client.read_holding_registers(13, count=1, device_id=1)
        assert hole.isError() and hole.exception_code == 2  # ILLEGAL DATA ADDRESS
        across = await client.read_holding_registers(10, count=12, device_id=1)
        assert across.isError() and across.exception_code == 2
        beyond = await client.read_input_registers(5000, count=1, device_id=1)
        assert beyond.isError() and beyond.exception_code == 2
        write = await client.write_register(0, 1, device_id=1)
        assert write.isError() and write.exception_code == 1  # ILLEGAL FUNCTION: read-only PLC


async def test_exception_faults_apply_to_their_range_only(client_for: list[AsyncModbusTcpClient]) -> None:
    async with serve_modbus(Plant(), update_interval_s=None) as srv:
        client = await connect(client_for, srv.port)
        srv.set_exception(6, "holding", 0, 5)
        busy = await client.read_holding_registers(4, count=2, device_id=1)
        assert busy.isError() and busy.exception_code == 6
        assert not (await client.read_holding_registers(8, count=2, device_id=1)).isError()
        assert not (await client.read_input_registers(0, count=2, device_id=1)).isError()
        srv.clear_faults()
        assert not (await client.read_holding_registers(4, count=2, device_id=1)).isError()
        with pytest.raises(ValueError):
            srv.set_exception(99)


async def test_periodic_updates_follow_the_clock(no_leaks: None) -> None:
    now = [10.0]
    srv = ModbusSimServer(Plant(seed=2), update_interval_s=0.01, clock=lambda: now[0])
    async with srv:
        before = srv.registers("input", 0, 1)
        now[0] = 60.0  # the tank level moves 0.15..0.2 %/s: 50 s later it differs by > 7 %
        await eventually(lambda: srv.plant.t_s == 60.0)
        assert srv.registers("input", 0, 1) != before


async def test_drop_and_restart_on_the_same_port(client_for: list[AsyncModbusTcpClient]) -> None:
    srv = ModbusSimServer(Plant(), update_interval_s=None)
    await srv.start()
    try:
        port = srv.port
        client = await connect(client_for, port)
        assert srv.drop_connections() == 1
        await eventually(lambda: not client.connected)
        await srv.stop()
        assert not srv.running
        await srv.start()
        assert srv.port == port
        again = await connect(client_for, port)
        assert not (await again.read_holding_registers(0, count=1, device_id=1)).isError()
    finally:
        await srv.stop()
    await eventually(lambda: not again.connected)  # stop() closes the connections it accepted


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="framer 'ascii' must be socket"):
        ModbusSimServer(Plant(), framer="ascii")
    with pytest.raises(ValueError, match="update_interval_s=0 must be positive"):
        ModbusSimServer(Plant(), update_interval_s=0)


async def test_command_line_server_serves_the_map(client_for: list[AsyncModbusTcpClient]) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "drivers.sim.modbus_server", "--port", "0", "--seed", "4",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line.startswith("listening 127.0.0.1:"), line
        client = await connect(client_for, int(line.rsplit(":", 1)[1]))
        response = await client.read_holding_registers(20, count=10, device_id=1)
        serial = next(e.point for e in REGISTER_MAP if e.point.name == "serial")
        assert decode_point(serial, response.registers) == "MTR-7781-2024-0042"
    finally:
        proc.terminate()
        await proc.wait()
