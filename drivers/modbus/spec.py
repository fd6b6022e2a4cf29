"""What the Modbus driver is told to do: one device (transport, unit id, timeouts) and its points.

Frozen dataclasses that validate themselves on construction and name the device and point in every
error, so the agent can translate its config into them and report mistakes before starting anything.

Addresses are zero-based protocol addresses (holding register 0 is "40001" in the old 1-based
notation). Multi-register values are described by ``byte_order``: the letters name the bytes of the
value from most to least significant (A first) and show the order in which they travel, two bytes per
register. ``ABCD`` is big-endian (the Modbus default), ``CDAB`` swaps the 16-bit words, ``BADC`` swaps
the bytes inside each word and ``DCBA`` is little-endian. For 64-bit values the same rule extends to
four words (``CDAB`` means the last word travels first: GH EF CD AB). Strings keep their characters
in register order; ``BADC``/``DCBA`` swap the two characters inside each register.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

Table = Literal["holding", "input", "coil", "discrete"]
DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "string"
]
ByteOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
PointKind = Literal["value", "waveform"]
Parity = Literal["N", "E", "O"]

TABLES: tuple[Table, ...] = get_args(Table)
DATA_TYPES: tuple[str, ...] = get_args(DataType)
BYTE_ORDERS: tuple[str, ...] = get_args(ByteOrder)
REGISTER_TABLES = frozenset({"holding", "input"})
BIT_TABLES = frozenset({"coil", "discrete"})

#: Registers occupied by one value of each fixed-size type (strings use ``length``).
TYPE_REGISTERS: dict[str, int] = {
    "bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2,
    "int64": 4, "uint64": 4, "float32": 2, "float64": 4,
}
INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})

#: Largest read in one request: 125 registers (FC 3/4) and 2000 bits (FC 1/2), from the Modbus
#: Application Protocol Specification V1.1b3, sections 6.1-6.4.
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000
#: Highest zero-based address in any table (16-bit address field).
MAX_ADDRESS = 0xFFFF


@dataclass(frozen=True, slots=True)
class ModbusPointSpec:
    """One Modbus point: where it lives, how its registers decode, and its engineering unit.

    ``table`` holding | input | coil | discrete; ``address`` zero-based. ``type`` is the raw type in the
    device; ``bool`` in a register table needs ``bit`` (0 = least significant bit of the register).
    ``string`` needs ``length`` (registers, two ASCII characters each, NUL padding stripped).
    Numbers are converted as ``raw * scale + offset`` into ``unit``; ``enum`` maps raw integer codes to
    names (the reading's value is then the name). ``kind`` ``waveform`` reads ``count`` consecutive
    16-bit samples (int16 or uint16, times ``scale`` plus ``offset``) as one
    :class:`drivers.base.Waveform` sampled at ``sample_rate_hz`` (Hz) or at the uint16 value (Hz) held
    in register ``sample_rate_address`` of the same table.
    """

    name: str
    table: Table
    address: int
    type: DataType = "uint16"
    byte_order: ByteOrder = "ABCD"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    bit: int | None = None
    length: int | None = None
    enum: Mapping[int, str] | None = None
    kind: PointKind = "value"
    count: int | None = None
    sample_rate_hz: float | None = None
    sample_rate_address: int | None = None
    #: Type of the sample-rate register(s): uint16 (one register), uint32 or float32 (two, in ``byte_order``).
    sample_rate_type: str = "uint16"

    def __post_init__(self) -> None:
        where = f"point {self.name!r}"
        if not self.name:
            raise ValueError("a Modbus point needs a non-empty name")
        if self.table not in TABLES:
            raise ValueError(f"{where}: table {self.table!r} is not one of {', '.join(TABLES)}")
        if self.type not in DATA_TYPES:
            raise ValueError(f"{where}: type {self.type!r} is not one of {', '.join(DATA_TYPES)}")
        if self.byte_order not in BYTE_ORDERS:
            raise ValueError(
                f"{where}: byte_order {self.byte_order!r} is not one of {', '.join(BYTE_ORDERS)}"
            )
        if not isinstance(self.address, int) or not 0 <= self.address <= MAX_ADDRESS:
            raise ValueError(f"{where}: address {self.address!r} must be an integer 0..{MAX_ADDRESS} "
                             "(zero-based: register 40001 is address 0)")
        if not (math.isfinite(self.scale) and math.isfinite(self.offset)):
            raise ValueError(f"{where}: scale and offset must be finite numbers")
        if self.scale == 0:
            raise ValueError(f"{where}: scale must not be 0 (raw values would all read as the offset)")
        if self.table in BIT_TABLES:
            self._check_bit_table(where)
        else:
            self._check_register_table(where)
        if self.enum is not None:
            if self.type not in INTEGER_TYPES and self.type != "bool":
                raise ValueError(f"{where}: enum needs an integer or bool type, not {self.type}")
            if not self.enum or not all(
                isinstance(k, int) and isinstance(v, str) for k, v in self.enum.items()
            ):
                raise ValueError(
                    f"{where}: enum must map integer codes to names, e.g. {{0: stopped, 1: running}}"
                )
        if self.kind == "waveform":
            self._check_waveform(where)
        elif self.kind != "value":
            raise ValueError(f"{where}: kind {self.kind!r} must be value or waveform")
        elif (self.count, self.sample_rate_hz, self.sample_rate_address) != (None, None, None):
            raise ValueError(f"{where}: count / sample_rate_hz / sample_rate_address only apply to "
                             "kind: waveform")
        last = self.address + self.register_count - 1
        if last > MAX_ADDRESS:
            raise ValueError(f"{where}: spans addresses {self.address}..{last}, beyond {MAX_ADDRESS}")

    def _check_bit_table(self, where: str) -> None:
        if self.type != "bool":
            raise ValueError(f"{where}: {self.table} points are single bits; set type: bool")
        if self.bit is not None:
            raise ValueError(f"{where}: bit only applies to register tables, not {self.table}")
        if self.kind != "value":
            raise ValueError(f"{where}: a waveform must live in the holding or input table")
        if self.scale != 1.0 or self.offset != 0.0:
            raise ValueError(f"{where}: scale/offset do not apply to {self.table} bits")

    def _check_register_table(self, where: str) -> None:
        if self.type == "bool" and self.bit is None:
            raise ValueError(f"{where}: a bool in a {self.table} register needs bit: 0..15")
        if self.bit is not None:
            if self.type not in ("bool", "uint16", "int16"):
                raise ValueError(f"{where}: bit needs type bool (the bit's state), not {self.type}")
            if not 0 <= self.bit <= 15:
                raise ValueError(f"{where}: bit {self.bit} must be 0..15")
        if self.type == "string":
            if self.length is None or not 1 <= self.length <= MAX_REGISTERS_PER_READ:
                raise ValueError(f"{where}: a string needs length: 1..{MAX_REGISTERS_PER_READ} (registers, "
                                 "two characters each)")
        elif self.length is not None:
            raise ValueError(f"{where}: length only applies to type string")

    def _check_waveform(self, where: str) -> None:
        if self.type not in ("int16", "uint16"):
            raise ValueError(f"{where}: waveform samples are 16-bit registers; set type: int16 or uint16")
        if self.count is None or not 1 <= self.count <= MAX_ADDRESS + 1:
            raise ValueError(f"{where}: a waveform needs count: the number of samples (registers)")
        if (self.sample_rate_hz is None) == (self.sample_rate_address is None):
            raise ValueError(f"{where}: a waveform needs exactly one of sample_rate_hz (Hz) or "
                             "sample_rate_address (a uint16 register holding the rate in Hz)")
        if self.sample_rate_hz is not None and not (
            math.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0
        ):
            raise ValueError(f"{where}: sample_rate_hz {self.sample_rate_hz} must be a positive number (Hz)")
        if self.sample_rate_address is not None and not 0 <= self.sample_rate_address <= MAX_ADDRESS:
            raise ValueError(f"{where}: sample_rate_address must be 0..{MAX_ADDRESS}")

    @property
    def register_count(self) -> int:
        """Registers (or bits, for coil/discrete) this point occupies."""
        if self.kind == "waveform":
            assert self.count is not None
            return self.count
        if self.table in BIT_TABLES:
            return 1
        if self.type == "string":
            assert self.length is not None
            return self.length
        return TYPE_REGISTERS[self.type]


def _check_points(device: str, points: tuple[ModbusPointSpec, ...]) -> None:
    names: set[str] = set()
    for point in points:
        if not isinstance(point, ModbusPointSpec):
            raise TypeError(f"device {device!r}: points must be ModbusPointSpec, got {type(point).__name__}")
        if point.name in names:
            raise ValueError(
                f"device {device!r}: point name {point.name!r} is used twice; names must be unique"
            )
        names.add(point.name)


@dataclass(frozen=True, slots=True, kw_only=True)
class _ModbusDeviceSpec:
    """Settings shared by every Modbus transport."""

    name: str
    unit_id: int = 1
    timeout_s: float = 3.0
    points: tuple[ModbusPointSpec, ...] = field(default_factory=tuple)
    max_gap: int = 0
    max_registers: int = MAX_REGISTERS_PER_READ
    max_bits: int = MAX_BITS_PER_READ
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0

    def _validate_common(self) -> None:
        where = f"device {self.name!r}"
        if not self.name:
            raise ValueError("a Modbus device needs a non-empty name")
        object.__setattr__(self, "points", tuple(self.points))
        if not 0 <= self.unit_id <= 255:
            raise ValueError(f"{where}: unit_id {self.unit_id} must be 0..255 (1..247 for serial lines)")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"{where}: timeout_s {self.timeout_s} must be a positive number of seconds")
        if self.max_gap < 0:
            raise ValueError(f"{where}: max_gap {self.max_gap} must be >= 0 (registers)")
        if not 1 <= self.max_registers <= MAX_REGISTERS_PER_READ:
            raise ValueError(
                f"{where}: max_registers {self.max_registers} must be 1..{MAX_REGISTERS_PER_READ}"
            )
        if not 1 <= self.max_bits <= MAX_BITS_PER_READ:
            raise ValueError(f"{where}: max_bits {self.max_bits} must be 1..{MAX_BITS_PER_READ}")
        if not 0 < self.backoff_min_s <= self.backoff_max_s:
            raise ValueError(f"{where}: need 0 < backoff_min_s ({self.backoff_min_s}) <= backoff_max_s "
                             f"({self.backoff_max_s})")
        _check_points(self.name, self.points)
        for point in self.points:
            if point.kind == "value" and point.register_count > self.max_registers:
                raise ValueError(f"{where}: point {point.name!r} spans {point.register_count} registers, "
                                 f"more than max_registers={self.max_registers}")


def _check_host_port(where: str, host: str, port: int) -> None:
    if not host:
        raise ValueError(f"{where}: host must not be empty")
    if not 1 <= port <= 65535:
        raise ValueError(f"{where}: port {port} must be 1..65535")


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusTcpSpec(_ModbusDeviceSpec):
    """A Modbus TCP device at ``host``:``port``. ``concurrency`` is the number of TCP connections used
    to keep requests in flight at the same time (1 = strictly one request after another)."""

    host: str
    port: int = 502
    concurrency: int = 1

    def __post_init__(self) -> None:
        self._validate_common()
        _check_host_port(f"device {self.name!r}", self.host, self.port)
        if not 1 <= self.concurrency <= 16:
            raise ValueError(
                f"device {self.name!r}: concurrency {self.concurrency} must be 1..16 connections"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusRtuOverTcpSpec(_ModbusDeviceSpec):
    """A Modbus RTU line behind a transparent serial-to-TCP gateway: RTU frames (with CRC) over TCP."""

    host: str
    port: int = 502

    def __post_init__(self) -> None:
        self._validate_common()
        _check_host_port(f"device {self.name!r}", self.host, self.port)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModbusRtuSpec(_ModbusDeviceSpec):
    """A Modbus RTU device on a serial line (``serial_port`` such as /dev/ttyUSB0)."""

    serial_port: str
    baudrate: int = 19200
    parity: Parity = "E"  # even parity is the default of Modbus over Serial Line V1.02, section 2.5.1
    stopbits: int = 1
    bytesize: int = 8
    timeout_s: float = 1.0

    def __post_init__(self) -> None:
        self._validate_common()
        where = f"device {self.name!r}"
        if not self.serial_port:
            raise ValueError(f"{where}: serial_port must name a serial device, e.g. /dev/ttyUSB0")
        if self.baudrate <= 0:
            raise ValueError(f"{where}: baudrate {self.baudrate} must be positive")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"{where}: parity {self.parity!r} must be N, E or O")
        if self.stopbits not in (1, 2):
            raise ValueError(f"{where}: stopbits {self.stopbits} must be 1 or 2")
        if self.bytesize not in (7, 8):
            raise ValueError(f"{where}: bytesize {self.bytesize} must be 7 or 8")


ModbusDeviceSpec = ModbusTcpSpec | ModbusRtuOverTcpSpec | ModbusRtuSpec
