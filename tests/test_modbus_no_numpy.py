"""A Modbus-only agent never loads numpy (issue 9: numpy alone costs ~12 MB of RSS).

The simulated PLC itself uses numpy, so it runs in its own process; a second process imports
:mod:`drivers.modbus`, polls every value point of the register map once (every type, every byte
order, register bits, an enum, a string, coils and discrete inputs) and reports its readings and
whether numpy got loaded. The readings must equal an independent decoding of the same registers.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict

import pytest
from pymodbus.client import AsyncModbusTcpClient

from drivers.modbus.codec import decode_point
from drivers.modbus.spec import ModbusPointSpec
from drivers.sim.register_map import REGISTER_MAP

try:
    from tests.plc_process import simulated_plc
except ImportError:  # tests/ is not a package: pytest put the tests directory itself on sys.path
    from plc_process import simulated_plc  # type: ignore[no-redef]

POINTS = [e.point for e in REGISTER_MAP if e.point.kind == "value"]

POLL_ONCE = """
import asyncio, json, sys
from drivers.modbus import ModbusPointSpec, ModbusTcpSpec, create_driver


def point(fields):
    if fields["enum"] is not None:
        fields["enum"] = {int(code): name for code, name in fields["enum"].items()}
    return ModbusPointSpec(**fields)

async def main():
    port, fields = int(sys.argv[1]), json.loads(sys.stdin.read())
    spec = ModbusTcpSpec(name="plc", host="127.0.0.1", port=port, points=tuple(point(f) for f in fields))
    driver = create_driver(spec)
    await driver.connect()
    result = await driver.read()
    await driver.close()
    readings = [[r.point, r.value, type(r.value).__name__, r.quality.value, r.reason] for r in result.readings]
    loaded = sorted(m for m in sys.modules if m == "numpy" or m.startswith("numpy."))
    print(json.dumps({"readings": readings, "numpy_modules": loaded}))

asyncio.run(main())
"""


@pytest.fixture
def plc_port() -> Iterator[int]:
    """A simulated PLC with a frozen register image (no updates), in its own process."""
    with simulated_plc("--update-interval", "0") as port:
        yield port


async def read_registers(port: int, point: ModbusPointSpec) -> list[int] | list[bool]:
    """The raw registers (or bit) of ``point``, read with plain pymodbus."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0, reconnect_delay=0)
    await client.connect()
    try:
        call = {"holding": client.read_holding_registers, "input": client.read_input_registers,
                "coil": client.read_coils, "discrete": client.read_discrete_inputs}[point.table]
        response = await call(point.address, count=point.register_count, device_id=1)
        assert not response.isError(), response
        return list(response.bits[:1]) if point.table in ("coil", "discrete") else list(response.registers)
    finally:
        client.close()


def test_polling_every_point_type_loads_no_numpy(plc_port: int) -> None:
    assert {p.type for p in POINTS} >= {"int16", "uint16", "int32", "uint32", "uint64", "float32", "float64",
                                        "string", "bool"}
    assert {p.byte_order for p in POINTS} == {"ABCD", "CDAB", "BADC", "DCBA"}
    fields = [{**asdict(p), "enum": None if p.enum is None else dict(p.enum)} for p in POINTS]
    child = subprocess.run([sys.executable, "-c", POLL_ONCE, str(plc_port)], input=json.dumps(fields),
                           capture_output=True, text=True, timeout=60, check=False)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)

    assert report["numpy_modules"] == []
    expected = {p.name: decode_point(p, asyncio.run(read_registers(plc_port, p))) for p in POINTS}
    bad = {name: reason for name, _, _, quality, reason in report["readings"] if quality != "good"}
    assert bad == {}
    got = {name: (value, type_name) for name, value, type_name, _, _ in report["readings"]}
    assert got == {name: (value, type(value).__name__) for name, value in expected.items()}
