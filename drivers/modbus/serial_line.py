"""One serial port shared by every Modbus RTU device on it (a multi-drop RS-485 bus).

Several devices (unit ids) usually hang on one line. Opening the port once per device would let two
readers race for every answer, so drivers of the same port share one pymodbus serial client:
pymodbus serialises its requests with a lock, and each driver addresses its own unit id. The port
opens with the first driver that connects and closes when the last one lets go. Devices on one line
must agree on its settings (baud rate, parity, stop bits, byte size).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusSerialClient

from drivers.base import DriverError
from drivers.modbus.spec import ModbusRtuSpec

#: pymodbus's own per-request limit on a shared line: only a backstop, each driver applies its own
#: ``timeout_s`` around every request.
LINE_BACKSTOP_TIMEOUT_S = 60.0


@dataclass(slots=True)
class SerialLine:
    """An open (or opening) serial port and the number of drivers holding it."""

    port: str
    settings: tuple[int, str, int, int]  # baudrate, parity, stopbits, bytesize
    client: AsyncModbusSerialClient
    users: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # guards opening the port
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # one request on the wire at a time

    def describe(self) -> str:
        """``/dev/ttyUSB0 at 19200 8E1`` style description."""
        baudrate, parity, stopbits, bytesize = self.settings
        return f"{self.port} at {baudrate} {bytesize}{parity}{stopbits}"


# Lines are bound to the event loop their transports live in.
_LINES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SerialLine]] = (
    weakref.WeakKeyDictionary()
)


def _settings(spec: ModbusRtuSpec) -> tuple[int, str, int, int]:
    return (spec.baudrate, spec.parity, spec.stopbits, spec.bytesize)


def acquire_line(spec: ModbusRtuSpec, make_client: Callable[[], AsyncModbusSerialClient]) -> SerialLine:
    """Hold the line of ``spec.serial_port``, creating its client with ``make_client`` on first use.

    Pair every call with :func:`release_line`. Raises :class:`DriverError` when the port is already
    held with other settings.
    """
    lines = _LINES.setdefault(asyncio.get_running_loop(), {})
    line = lines.get(spec.serial_port)
    if line is None:
        line = SerialLine(spec.serial_port, _settings(spec), make_client())
        lines[spec.serial_port] = line
    elif line.settings != _settings(spec):
        raise DriverError(
            f"device {spec.name!r}: serial port {line.describe()} is already used by another device with "
            f"other settings ({spec.baudrate} {spec.bytesize}{spec.parity}{spec.stopbits}); devices on one "
            "line must share baudrate, parity, stopbits and bytesize"
        )
    line.users += 1
    return line


async def open_line(line: SerialLine) -> bool:
    """Open the port unless another driver already did; True when it is open."""
    async with line.lock:
        if line.client.connected:
            return True
        return bool(await line.client.connect())


def release_line(line: SerialLine) -> None:
    """Let go of ``line``; the port closes when its last user lets go."""
    line.users -= 1
    if line.users > 0:
        return
    line.client.close()
    for lines in _LINES.values():
        if lines.get(line.port) is line:
            del lines[line.port]
