"""Modbus TCP / RTU / RTU-over-TCP driver: specs, pure codec and read planner, and the driver itself.

The agent builds a :class:`~drivers.modbus.spec.ModbusTcpSpec` (or ``ModbusRtuSpec``,
``ModbusRtuOverTcpSpec``) from its config and calls :func:`create_driver`.
"""

from __future__ import annotations

from drivers.base import Driver
from drivers.modbus.client import ModbusDriver
from drivers.modbus.spec import (
    ModbusDeviceSpec,
    ModbusPointSpec,
    ModbusRtuOverTcpSpec,
    ModbusRtuSpec,
    ModbusTcpSpec,
)

__all__ = [
    "ModbusDeviceSpec",
    "ModbusDriver",
    "ModbusPointSpec",
    "ModbusRtuOverTcpSpec",
    "ModbusRtuSpec",
    "ModbusTcpSpec",
    "create_driver",
]


def create_driver(spec: ModbusDeviceSpec) -> Driver:
    """A driver for the Modbus device ``spec`` (TCP, RTU on a serial port, or RTU over TCP)."""
    if not isinstance(spec, ModbusTcpSpec | ModbusRtuSpec | ModbusRtuOverTcpSpec):
        raise TypeError(f"create_driver needs a Modbus device spec, got {type(spec).__name__}")
    return ModbusDriver(spec)
