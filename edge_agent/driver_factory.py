"""Translate config models into driver specs and create the drivers (one explicit table by protocol).

The drivers never see the config models: they get frozen specs, so ``drivers`` stays independent of
``edge_agent``. Protocol stacks are imported only when a device uses them (a Modbus-only gateway never
loads asyncua).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from drivers.base import Driver
from edge_agent.config import (
    Device,
    ModbusDeviceBase,
    ModbusPoint,
    ModbusRtuDevice,
    ModbusRtuOverTcpDevice,
    ModbusTcpDevice,
    OpcuaDevice,
    OpcuaPoint,
)


def modbus_point_spec(device: ModbusDeviceBase, point: ModbusPoint) -> Any:
    """The driver's spec of one Modbus point (byte order inherited from the device when unset)."""
    from drivers.modbus.spec import ModbusPointSpec

    return ModbusPointSpec(
        name=point.name,
        table=point.table,
        address=point.address,
        type=point.type,
        byte_order=point.byte_order or device.byte_order,
        scale=point.scale,
        offset=point.offset,
        unit=point.unit,
        bit=point.bit,
        length=point.length,
        enum=dict(point.enum) if point.enum else None,
        kind=point.kind,
        count=point.count,
        sample_rate_hz=point.sample_rate,
        sample_rate_address=point.sample_rate_address,
        sample_rate_type=point.sample_rate_type,
    )


def modbus_device_spec(device: ModbusDeviceBase) -> Any:
    """The driver's spec of one Modbus device of any transport."""
    from drivers.modbus import spec

    points = tuple(modbus_point_spec(device, p) for p in device.points)
    common: dict[str, Any] = {
        "name": device.name,
        "unit_id": device.unit_id,
        "timeout_s": device.timeout,
        "points": points,
        "max_gap": device.max_gap,
        "max_registers": device.max_registers,
    }
    if isinstance(device, ModbusTcpDevice):
        return spec.ModbusTcpSpec(host=device.host, port=device.port, concurrency=device.concurrency, **common)
    if isinstance(device, ModbusRtuOverTcpDevice):
        return spec.ModbusRtuOverTcpSpec(host=device.host, port=device.port, **common)
    if isinstance(device, ModbusRtuDevice):
        return spec.ModbusRtuSpec(serial_port=device.serial_port, baudrate=device.baudrate, parity=device.parity,
                                  stopbits=device.stopbits, bytesize=device.bytesize, **common)
    raise TypeError(f"{device.name}: not a Modbus device")


def opcua_point_spec(device: OpcuaDevice, point: OpcuaPoint) -> Any:
    """The driver's spec of one OPC UA point."""
    from drivers.opcua.spec import OpcUaPointSpec

    return OpcUaPointSpec(
        name=point.name,
        node=point.node,
        # The config's browse path starts below the Objects folder; the driver's starts at the Root.
        browse_path="/".join(["0:Objects", *point.browse_path]) if point.browse_path else None,
        mode=point.mode,
        sampling_interval_s=point.sampling_interval if point.sampling_interval is not None
        else device.poll_interval,
        queue_size=point.queue_size,
        deadband_type=point.deadband.type if point.deadband else None,
        deadband_value=point.deadband.value if point.deadband else 0.0,
        kind=point.kind,
        sample_rate_hz=point.sample_rate,
        sample_rate_node=point.sample_rate_node,
        unit=point.unit,
        scale=point.scale,
        offset=point.offset,
    )


def opcua_device_spec(device: OpcuaDevice) -> Any:
    """The driver's spec of one OPC UA device (the password is read here, from its file or variable)."""
    from drivers.opcua.spec import OpcUaDeviceSpec

    return OpcUaDeviceSpec(
        name=device.name,
        endpoint=device.endpoint,
        points=tuple(opcua_point_spec(device, p) for p in device.points),
        poll_interval_s=device.poll_interval,
        timeout_s=device.timeout,
        security_policy=device.security_policy,
        security_mode=device.security_mode,
        certificate=str(device.certificate) if device.certificate else None,
        private_key=str(device.private_key) if device.private_key else None,
        server_certificate=str(device.server_certificate) if device.server_certificate else None,
        username=device.username,
        password=device.read_password(),
    )


def _create_modbus(device: Device) -> Driver:
    from drivers.modbus import create_driver as create_modbus_driver

    assert isinstance(device, ModbusDeviceBase)
    driver: Driver = create_modbus_driver(modbus_device_spec(device))
    return driver


def _create_opcua(device: Device) -> Driver:
    from drivers.opcua import create_driver as create_opcua_driver

    assert isinstance(device, OpcuaDevice)
    driver: Driver = create_opcua_driver(opcua_device_spec(device))
    return driver


#: Protocol name -> driver constructor: the one place a protocol is registered.
DRIVERS: dict[str, Callable[[Device], Driver]] = {
    "modbus_tcp": _create_modbus,
    "modbus_rtu": _create_modbus,
    "modbus_rtu_over_tcp": _create_modbus,
    "opcua": _create_opcua,
}


def create_driver(device: Device) -> Driver:
    """Create the driver for ``device`` from the protocol table."""
    return DRIVERS[device.protocol](device)


def device_units(device: Device) -> dict[str, str]:
    """Map ``device/point`` to each point's unit."""
    return {point_key(device.name, p.name): p.unit for p in device.points if getattr(p, "kind", "value") == "value"}


def point_key(device: str, point: str) -> str:
    """``device/point``, interned: the same key object in every map of the runtime (one string per point)."""
    return sys.intern(f"{device}/{point}")
