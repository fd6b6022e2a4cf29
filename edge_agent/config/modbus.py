"""Modbus devices (TCP, RTU, RTU over TCP) and their points.

Addresses are zero-based protocol addresses (what goes on the wire). The classic data-model notation
("Modicon" numbering: ``40001`` = holding register 0) is accepted as a quoted string and converted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, Protocol

from edge_agent.config._base import (
    Compacted,
    ConfigModel,
    Host,
    Issue,
    Name,
    Port,
    duplicate_issues,
    issues_error,
    waveform_unit_issues,
)
from edge_agent.config._pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PydanticCustomError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from edge_agent.config.units import Duration, Frequency

ModbusTable = Literal["holding", "input", "coil", "discrete"]
ModbusType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
PointKind = Literal["value", "waveform"]
PublishRaw = bool | Literal["on_change"]

REGISTER_TABLES: frozenset[str] = frozenset({"holding", "input"})
BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete"})
#: 16-bit registers one value of each type occupies (string: ``length`` registers).
REGISTERS_PER_VALUE: dict[str, int] = {
    "bool": 1,
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}
#: Modbus Application Protocol V1.1b3 §6.3/6.4: at most 125 registers per read request.
MAX_REGISTERS_PER_READ = 125

# Classic notation: the leading digit names the table (0 coil, 1 discrete input, 3 input register,
# 4 holding register), the rest is the one-based register number.
_CLASSIC_TABLES: dict[str, ModbusTable] = {"0": "coil", "1": "discrete", "3": "input", "4": "holding"}
_CLASSIC_RE = re.compile(r"^\s*([0134])(\d{4}|\d{5})\s*$")
CLASSIC_ADDRESS_RULE = (
    "a zero-based address as a number (address: 0), or classic notation as a quoted string: "
    "'40001' = holding 0, '30001' = input 0, '00001' = coil 0, '10001' = discrete 0; "
    "six digits ('400001'..'465536') reach addresses above 9998"
)


def parse_classic_address(text: str) -> tuple[ModbusTable, int] | None:
    """Return (table, zero-based address) for classic notation like ``"40001"`` or ``"465536"``, else None.

    Five digits cover registers 1-9999, six digits 1-65536; register number n is zero-based address n - 1.
    """
    match = _CLASSIC_RE.match(text)
    if match is None:
        return None
    number = int(match.group(2))
    if number < 1 or number > 65536:
        return None
    return _CLASSIC_TABLES[match.group(1)], number - 1


def _publish_raw(value: object) -> object:
    if isinstance(value, bool) or value == "on_change":
        return value
    raise PydanticCustomError(
        "publish_raw", "invalid publish_raw {value}: use false, true or on_change", {"value": repr(value)}
    )


PublishRawField = Annotated[PublishRaw, BeforeValidator(_publish_raw)]


#: Raw telemetry with ``publish_raw: on_change`` re-sends unchanged values after this long (seconds).
DEFAULT_RAW_HEARTBEAT_S = 60.0
PublishDeadband = Annotated[float, Field(ge=0)] | None
PublishDeadbandPercent = Annotated[float, Field(ge=0, le=100)] | None


class RawDeadband(Protocol):
    """The per-point raw-telemetry deadband fields (Modbus and OPC UA points both have them)."""

    @property
    def kind(self) -> str:
        """value or waveform."""
        ...

    @property
    def publish_deadband(self) -> float | None:
        """Absolute deadband (engineering units)."""
        ...

    @property
    def publish_deadband_percent(self) -> float | None:
        """Deadband in percent of the last sent value."""
        ...


def point_deadband_issues(point: RawDeadband) -> list[Issue]:
    """Problems of a point's own raw-telemetry deadband (absolute and percent exclude each other)."""
    issues: list[Issue] = []
    if point.publish_deadband is not None and point.publish_deadband_percent is not None:
        issues.append(
            (
                ("publish_deadband_percent",),
                "give publish_deadband (absolute) or publish_deadband_percent, not both",
            )
        )
    if point.kind == "waveform":
        for field in ("publish_deadband", "publish_deadband_percent"):
            if getattr(point, field) is not None:
                issues.append(((field,), f"{field} applies to value points; waveforms are not raw telemetry"))
    return issues


class DeviceBase(ConfigModel):
    """Fields every device has, whatever its protocol."""

    empty_means_default = frozenset({"points"})
    name: Name = Field(description="Device name, unique in the config; points are named 'device/point'.")
    poll_interval: Annotated[Duration, Field(gt=0)] = Field(default=1.0, description="Time between polls.")
    timeout: Annotated[Duration, Field(gt=0)] = Field(default=1.0, description="Time limit of one request.")
    publish_raw: PublishRawField = Field(
        default=False,
        description="Raw values on {prefix}/telemetry/{device}: false, true (every poll) or on_change.",
    )
    raw_qos: Literal[0, 1] = Field(default=1, description="MQTT QoS of raw telemetry: 0 or 1.")
    deadband: PublishDeadband = Field(
        default=None,
        description="With publish_raw: on_change, the change (engineering units) that counts.",
    )
    deadband_percent: PublishDeadbandPercent = Field(
        default=None,
        description="With publish_raw: on_change, the change in percent of the last sent value.",
    )
    heartbeat: Annotated[Duration, Field(gt=0)] | None = Field(
        default=None,
        description="With publish_raw: on_change, send unchanged values after this long (default 60s).",
    )

    def raw_issues(self, points: Sequence[RawDeadband]) -> list[Issue]:
        """Problems of the raw-telemetry settings of this device and its ``points``."""
        issues: list[Issue] = []
        if self.deadband is not None and self.deadband_percent is not None:
            issues.append((("deadband_percent",), "give deadband (absolute) or deadband_percent, not both"))
        if self.publish_raw is True:
            why = "applies with publish_raw: on_change (true sends every value every poll)"
            for field in ("deadband", "deadband_percent", "heartbeat"):
                if getattr(self, field) is not None:
                    issues.append(((field,), f"{field} {why}"))
            for i, point in enumerate(points):
                for field in ("publish_deadband", "publish_deadband_percent"):
                    if getattr(point, field) is not None:
                        issues.append((("points", i, field), f"{field} {why}"))
        return issues

    @property
    def raw_heartbeat(self) -> float | None:
        """Seconds after which unchanged values are sent anyway; None unless publish_raw is on_change."""
        if self.publish_raw != "on_change":
            return None
        return self.heartbeat if self.heartbeat is not None else DEFAULT_RAW_HEARTBEAT_S

    def raw_deadband_of(self, point: RawDeadband) -> tuple[float, float]:
        """(absolute, percent) change that counts for ``point`` with on_change; the point's own wins.

        ``(0.0, 0.0)`` means every change is sent. Percent is of the last sent value's magnitude.
        """
        if point.publish_deadband is not None or point.publish_deadband_percent is not None:
            return point.publish_deadband or 0.0, point.publish_deadband_percent or 0.0
        return self.deadband or 0.0, self.deadband_percent or 0.0


class ModbusPoint(ConfigModel):
    """One value (or waveform block) read from a Modbus table."""

    model_config = ConfigDict(extra="forbid", defer_build=True, frozen=True)  # frozen: see compact_model

    name: Name = Field(description="Point name, unique within its device.")
    table: ModbusTable = Field(
        default="holding", description="holding | input | coil | discrete (implied by classic notation)."
    )
    address: Annotated[
        int,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 65535},
                    {"type": "string", "pattern": r"^\s*[0134](\d{4}|\d{5})\s*$"},
                ]
            }
        ),
    ] = Field(ge=0, le=65535, description=f"Where the point starts: {CLASSIC_ADDRESS_RULE}.")
    type: ModbusType = Field(
        default="uint16", description="Value type; coil and discrete points are bool (their default)."
    )
    bit: int | None = Field(default=None, ge=0, le=15, description="Bit of a register for a bool (0 = LSB).")
    length: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REGISTERS_PER_READ,
        description="Registers of a string (2 characters each).",
    )
    byte_order: ByteOrder | None = Field(
        default=None, description="ABCD | CDAB | BADC | DCBA; inherits the device's byte_order when absent."
    )
    scale: float = Field(default=1.0, description="Engineering value = raw * scale + offset.")
    offset: float = 0.0
    unit: str = Field(default="", description="Engineering unit (rpm, degC, mm/s, g ...).")
    enum: dict[int, str] | None = Field(default=None, description="Names of integer states, e.g. {0: off}.")
    kind: PointKind = Field(default="value", description="value | waveform (a block of samples).")
    count: int | None = Field(default=None, ge=1, description="Samples in a waveform block.")
    sample_rate: Annotated[Frequency, Field(gt=0)] | None = Field(
        default=None, description="Waveform sample rate (Hz), or give sample_rate_address."
    )
    sample_rate_address: int | None = Field(
        default=None, ge=0, le=65535, description="Register (same table) that holds the sample rate in Hz."
    )
    sample_rate_type: Literal["uint16", "uint32", "float32"] = "uint16"
    writable: bool = Field(default=False, description="Allow writes to this point (local config only).")
    publish_deadband: PublishDeadband = Field(
        default=None,
        description="With publish_raw: on_change, the change (engineering units) that counts for this point.",
    )
    publish_deadband_percent: PublishDeadbandPercent = Field(
        default=None,
        description="With publish_raw: on_change, the change in percent of the last sent value.",
    )

    @model_validator(mode="before")
    @classmethod
    def _classic_notation(cls, data: Any) -> Any:
        """Turn ``address: "40001"`` into ``table: holding, address: 0``; default bit tables to type bool."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        address = data.get("address")
        if isinstance(address, str):
            classic = parse_classic_address(address)
            if classic is not None and data.get("table") in (None, classic[0]):
                data["table"], data["address"] = classic
        if "type" not in data and isinstance(data.get("table"), str) and data["table"] in BIT_TABLES:
            data["type"] = "bool"
        return data

    @field_validator("address", mode="before")
    @classmethod
    def _address_is_number(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        classic = parse_classic_address(value)
        if classic is not None:  # left as text by _classic_notation: it conflicts with an explicit table
            raise PydanticCustomError(
                "address_table_conflict",
                "classic address {value} is in the {implied} table but table is {table}; "
                "drop 'table' or write the zero-based address",
                {"value": repr(value), "implied": classic[0], "table": repr(info.data.get("table"))},
            )
        raise PydanticCustomError(
            "address_text",
            "invalid address {value}: use {rule}",
            {"value": repr(value), "rule": CLASSIC_ADDRESS_RULE},
        )

    @model_validator(mode="after")
    def _consistent(self) -> ModbusPoint:
        issues = self._issues()
        if issues:
            raise issues_error(issues)
        return self

    def _issues(self) -> list[Issue]:
        issues: list[Issue] = []
        if self.table in BIT_TABLES:
            if self.type != "bool":
                issues.append((("type",), f"a {self.table} point holds one bit, so its type must be bool"))
            if self.bit is not None:
                issues.append(
                    (("bit",), f"bit selects a bit of a register; a {self.table} point is already a bit")
                )
            if self.kind == "waveform":
                issues.append(
                    (("kind",), "waveforms are read from holding or input registers, not bit tables")
                )
        elif self.bit is not None and self.type != "bool":
            issues.append((("bit",), f"bit applies to type bool only (this point is {self.type})"))
        if self.type == "string" and self.length is None:
            issues.append((("length",), "a string point needs 'length' (registers, 2 characters each)"))
        if self.length is not None and self.type != "string":
            issues.append((("length",), f"length applies to type string only (this point is {self.type})"))
        if self.enum is not None and self.type in ("float32", "float64", "string"):
            issues.append((("enum",), f"enum names integer states; it does not apply to type {self.type}"))
        issues.extend(point_deadband_issues(self))
        if self.kind == "waveform":
            issues.extend(self._waveform_issues())
        else:
            for field in ("count", "sample_rate", "sample_rate_address"):
                if getattr(self, field) is not None:
                    issues.append(((field,), f"{field} applies to kind waveform only"))
        if not issues and self.address + self.register_span() > 65536:
            issues.append(
                (
                    ("address",),
                    f"the point runs past the end of the table (address {self.address} "
                    f"+ {self.register_span()} registers > 65536)",
                )
            )
        return issues

    def _waveform_issues(self) -> list[Issue]:
        issues: list[Issue] = []
        if self.type in ("bool", "string"):
            issues.append((("type",), f"waveform samples must be numeric, not {self.type}"))
        if self.count is None:
            issues.append((("count",), "a waveform point needs 'count' (samples per block)"))
        if (self.sample_rate is None) == (self.sample_rate_address is None):
            issues.append(
                (
                    ("sample_rate",),
                    "a waveform point needs exactly one of sample_rate (e.g. 12800Hz) or sample_rate_address",
                )
            )
        issues.extend(waveform_unit_issues(self.unit))
        return issues

    def register_span(self) -> int:
        """Registers (bits for coil/discrete) the point occupies from ``address``, all samples included."""
        if self.table in BIT_TABLES:
            return 1
        per_value = (self.length or 1) if self.type == "string" else REGISTERS_PER_VALUE[self.type]
        return per_value * ((self.count or 1) if self.kind == "waveform" else 1)


def _describe_registers(point: ModbusPoint) -> str:
    if point.bit is not None:
        return f"bit {point.bit} of {point.table} {point.address}"
    last = point.address + point.register_span() - 1
    return f"{point.table} {point.address}" + (f"-{last}" if last > point.address else "")


def _overlap_issues(points: list[ModbusPoint]) -> list[Issue]:
    """Points whose registers overlap; bools that pick different bits of one register do not conflict."""
    issues: list[Issue] = []
    order = sorted(range(len(points)), key=lambda i: (points[i].table, points[i].address))
    for n, i in enumerate(order):
        a = points[i]
        a_end = a.address + a.register_span()
        for j in order[n + 1 :]:
            b = points[j]
            if b.table != a.table or b.address >= a_end:
                break
            if (a.bit is None) != (b.bit is None):
                continue  # a bit of a register read as a whole elsewhere: a deliberate second view
            if a.bit is not None and (a.bit != b.bit or a.address != b.address):
                continue
            issues.append(
                (
                    ("points", j, "address"),
                    f"point '{b.name}' ({_describe_registers(b)}) overlaps point '{a.name}' "
                    f"({_describe_registers(a)})",
                )
            )
    return issues


class ModbusDeviceBase(DeviceBase):
    """Fields shared by every Modbus transport."""

    unit_id: int = Field(default=1, ge=0, le=255, description="Modbus unit (slave) id.")
    byte_order: ByteOrder = Field(
        default="ABCD", description="Default order of the bytes of multi-register values (ABCD = big-endian)."
    )
    max_gap: int = Field(
        default=0,
        ge=0,
        le=MAX_REGISTERS_PER_READ,
        description="Bridge gaps of up to this many unused registers when merging reads into one request.",
    )
    max_registers: int = Field(
        default=MAX_REGISTERS_PER_READ,
        ge=1,
        le=MAX_REGISTERS_PER_READ,
        description="Most registers per read request (the protocol allows 125; some devices fewer).",
    )
    points: list[Annotated[ModbusPoint, Compacted]] = Field(default_factory=list)

    def byte_order_of(self, point: ModbusPoint) -> ByteOrder:
        """The byte order that applies to ``point``: its own, else the device's."""
        return point.byte_order or self.byte_order

    @model_validator(mode="after")
    def _points_consistent(self) -> ModbusDeviceBase:
        issues: list[Issue] = []
        issues.extend(duplicate_issues([p.name for p in self.points], ("points",), "point"))
        issues.extend(_overlap_issues(self.points))
        issues.extend(self.raw_issues(self.points))
        if issues:
            raise issues_error(issues)
        return self


class ModbusTcpDevice(ModbusDeviceBase):
    """A Modbus TCP server (PLC, gateway)."""

    protocol: Literal["modbus_tcp"]
    host: Host
    port: Port = 502
    concurrency: int = Field(
        default=1, ge=1, le=16, description="Requests in flight at once (1 = sequential)."
    )


# Modbus over Serial Line V1.02 §2.2: individual device addresses are 1-247 (0 is broadcast, write-only).
SerialUnitId = Annotated[
    int, Field(ge=1, le=247, description="Modbus unit (slave) address on the bus, 1-247.")
]


class ModbusRtuDevice(ModbusDeviceBase):
    """A Modbus RTU device on a serial line."""

    protocol: Literal["modbus_rtu"]
    serial_port: str = Field(min_length=1, description="Serial device, e.g. /dev/ttyUSB0 or COM3.")
    baudrate: int = Field(default=9600, gt=0, le=4_000_000)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: SerialUnitId = 1


class ModbusRtuOverTcpDevice(ModbusDeviceBase):
    """RTU frames tunnelled through TCP (serial device servers)."""

    protocol: Literal["modbus_rtu_over_tcp"]
    host: Host
    port: Port
    unit_id: SerialUnitId = 1
