"""The simulated PLC's Modbus register map: ONE table from plant values to tables, addresses and types.

The simulated server encodes the plant into registers from :data:`REGISTER_MAP`; tests decode them
with the driver from the same entries' :class:`~drivers.modbus.spec.ModbusPointSpec`; and
``docs/register-map.md`` is rendered from it by :func:`render_register_map_markdown` (a test keeps the
committed file equal to it). The map deliberately exercises the codec: uint16/int16/uint32/int32/
uint64/float32/float64, all four byte orders, a bool taken from a register bit, an enum, an ASCII
string, coils, discrete inputs, a hole of unmapped registers (holding 13..19, which answer ILLEGAL
DATA ADDRESS) and a vibration waveform block.

:func:`encode_entry` turns a plant value into registers with its own small implementation
(``struct`` plus a literal byte permutation per byte order), independent of
:mod:`drivers.modbus.codec`, so that end-to-end tests compare two implementations rather than one
with itself.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from drivers.modbus.spec import BIT_TABLES, TABLES, ModbusPointSpec
from drivers.sim.plant import MOTOR_STATES, PlantValue

P = ModbusPointSpec

#: Sources that are not plant values but the simulated accelerometer (see modbus_server).
WAVEFORM_SOURCE = "vibration.de_accel_g"
WAVEFORM_RATE_SOURCE = "vibration.sample_rate_hz"
WAVEFORM_SAMPLE_RATE_HZ = 5120
WAVEFORM_SAMPLES = 2048


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One mapped point: the plant value ``source`` exposed as ``point``, described for the docs."""

    source: str
    point: ModbusPointSpec
    description: str

    @property
    def is_bit_view(self) -> bool:
        """True for a bool read from a bit of a register that another entry writes."""
        return self.point.bit is not None


REGISTER_MAP: tuple[MapEntry, ...] = (
    # ---- holding registers: motor
    MapEntry("motor.speed_rpm", P("speed", "holding", 0, "uint16", unit="rpm"), "Motor speed"),
    MapEntry("motor.current_a", P("current", "holding", 1, "uint16", scale=0.01, unit="A"), "Motor current"),
    MapEntry("ambient.temp_c", P("ambient_temp", "holding", 2, "int16", scale=0.1, unit="degC"),
             "Ambient temperature (can be negative)"),
    MapEntry("motor.status_word", P("status_word", "holding", 3, "uint16"),
             "Status bits: 0 running, 1 bearing overheat (>= 85 degC), 2 stopped"),
    MapEntry("motor.running", P("running_bit", "holding", 3, "bool", bit=0), "Bit 0 of the status word"),
    MapEntry("motor.run_hours", P("run_hours", "holding", 4, "uint32", scale=0.1, unit="h"),
             "Running hours counter"),
    MapEntry("motor.starts", P("starts", "holding", 6, "uint32", "CDAB"), "Start counter (word-swapped)"),
    MapEntry("motor.bearing_temp_c", P("bearing_temp", "holding", 8, "float32", unit="degC"),
             "Drive-end bearing temperature"),
    MapEntry("motor.power_kw", P("power", "holding", 10, "float32", "CDAB", unit="kW"),
             "Shaft power (word-swapped float)"),
    MapEntry("motor.state", P("state", "holding", 12, "uint16", enum=MOTOR_STATES),
             "Motor state: 0 stopped, 1 running, 2 overheat"),
    MapEntry("motor.serial", P("serial", "holding", 20, "string", length=10), "Motor serial number (ASCII)"),
    MapEntry("motor.energy_kwh", P("energy", "holding", 30, "float64", unit="kWh"), "Energy counter"),
    MapEntry("motor.load_pct", P("load", "holding", 34, "float32", "BADC", unit="%"),
             "Motor load (byte-swapped float)"),
    # ---- input registers: tank
    MapEntry("tank.level_pct", P("level", "input", 0, "uint16", scale=0.1, unit="%"), "Tank level"),
    MapEntry("tank.pressure_bar", P("pressure", "input", 1, "uint16", scale=0.001, unit="bar"),
             "Tank bottom pressure"),
    MapEntry("tank.volume_l", P("volume", "input", 2, "float32", "DCBA", unit="L"),
             "Tank volume (little-endian float)"),
    MapEntry("tank.inflow_total_l", P("inflow_total", "input", 4, "uint32", "DCBA", unit="L"),
             "Total inflow counter (little-endian)"),
    MapEntry("ambient.temp_c", P("ambient_temp_fine", "input", 6, "int32", "BADC", scale=0.001, unit="degC"),
             "Ambient temperature, mK resolution (byte-swapped)"),
    MapEntry("motor.energy_kwh", P("energy_wh", "input", 8, "uint64", "CDAB", scale=0.001, unit="kWh"),
             "Energy counter in Wh (word-swapped)"),
    MapEntry("motor.bearing_temp_c", P("bearing_temp_f64", "input", 12, "float64", "DCBA", unit="degC"),
             "Bearing temperature (little-endian double)"),
    MapEntry(WAVEFORM_RATE_SOURCE, P("vib_de_rate", "input", 999, "uint16", unit="Hz"),
             "Sample rate of the vibration block"),
    MapEntry(WAVEFORM_SOURCE, P("vib_de", "input", 1000, "int16", scale=0.001, unit="g", kind="waveform",
                                count=WAVEFORM_SAMPLES, sample_rate_address=999),
             "Drive-end acceleration, 2048 samples, 1 mg per count"),
    # ---- coils and discrete inputs
    MapEntry("tank.filling", P("inlet_valve", "coil", 0, "bool"), "Tank inlet valve open"),
    MapEntry("motor.running", P("run_command", "coil", 1, "bool"), "Motor run command"),
    MapEntry("motor.running", P("running", "discrete", 0, "bool"), "Motor running feedback"),
    MapEntry("tank.high_level", P("high_level", "discrete", 1, "bool"), "Tank level >= 75 %"),
    MapEntry("tank.low_level", P("low_level", "discrete", 2, "bool"), "Tank level <= 25 %"),
)

#: Wire byte positions of each byte order, as indexes into the value's big-endian bytes.
_WIRE_PATTERNS: dict[str, dict[int, str]] = {
    "ABCD": {2: "AB", 4: "ABCD", 8: "ABCDEFGH"},
    "CDAB": {2: "AB", 4: "CDAB", 8: "GHEFCDAB"},
    "BADC": {2: "BA", 4: "BADC", 8: "BADCFEHG"},
    "DCBA": {2: "BA", 4: "DCBA", 8: "HGFEDCBA"},
}
_STRUCT = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
           "float32": ">f", "float64": ">d"}


def _saturate(raw: float, type_: str) -> int:
    """Round to the nearest integer and clamp to the type's range, as a PLC's conversion would."""
    bits = int(type_.removeprefix("u").removeprefix("int"))
    low, high = (0, 2**bits - 1) if type_.startswith("u") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return int(max(low, min(high, round(raw))))


def encode_entry(point: ModbusPointSpec, value: PlantValue) -> list[int] | list[bool]:
    """Registers (wire order) or the one bit that show plant ``value`` as ``point``."""
    if point.table in BIT_TABLES:
        return [bool(value)]
    if point.bit is not None:
        raise ValueError(f"{point.name}: a bit view is written by the entry that owns the register")
    if point.type == "string":
        assert point.length is not None
        data = str(value).encode("ascii")[: 2 * point.length].ljust(2 * point.length, b"\x00")
        swapped = point.byte_order in ("BADC", "DCBA")  # the two characters of each register swap
        return [int.from_bytes(data[i : i + 2], "little" if swapped else "big") for i in range(0, len(data), 2)]
    if point.enum is not None:
        codes = {name: code for code, name in point.enum.items()}
        value = codes[str(value)]
    if isinstance(value, str):
        raise ValueError(f"{point.name}: plant value {value!r} is not a number")
    raw = (float(value) - point.offset) / point.scale
    number: float | int = raw if point.type.startswith("float") else _saturate(raw, point.type)
    packed = struct.pack(_STRUCT[point.type], number)
    pattern = _WIRE_PATTERNS[point.byte_order][len(packed)]
    wire = bytes(packed[ord(letter) - ord("A")] for letter in pattern)
    return [int.from_bytes(wire[i : i + 2], "big") for i in range(0, len(wire), 2)]


def check_register_map(entries: Iterable[MapEntry]) -> None:
    """Raise ValueError when two entries write the same register or bit, or a bit view has no word."""
    owners: dict[tuple[str, int], str] = {}
    views: list[MapEntry] = []
    names: set[str] = set()
    for entry in entries:
        p = entry.point
        if p.name in names:
            raise ValueError(f"register map: point name {p.name!r} is used twice")
        names.add(p.name)
        if entry.is_bit_view:
            views.append(entry)
            continue
        if p.sample_rate_address is not None and (p.table, p.sample_rate_address) not in owners:
            # checked again below once every owner is known
            views.append(entry)
        for address in range(p.address, p.address + p.register_count):
            key = (p.table, address)
            if key in owners:
                raise ValueError(f"register map: {p.table} {address} is written by both {owners[key]!r} "
                                 f"and {p.name!r}")
            owners[key] = p.name
    for entry in views:
        p = entry.point
        address = p.address if p.sample_rate_address is None else p.sample_rate_address
        if (p.table, address) not in owners:
            raise ValueError(f"register map: {p.name!r} reads {p.table} {address}, which no entry writes")


def render_register_map_markdown(entries: Sequence[MapEntry] = REGISTER_MAP) -> str:
    """The register map as Markdown, one table per Modbus table (the text of docs/register-map.md)."""
    lines = [
        "# Simulated PLC register map",
        "",
        "Generated from `drivers/sim/register_map.py` by `render_register_map_markdown()`; do not edit by",
        "hand (a test compares this file with the code). Regenerate with",
        "`python -m drivers.sim.register_map > docs/register-map.md`.",
        "",
        "Addresses are zero-based protocol addresses (holding register 0 is 40001 in 1-based notation).",
        "Engineering value = raw * scale + offset. Byte order names the bytes of the value from most to",
        "least significant (A first) in the order they travel, two per register: ABCD big-endian,",
        "CDAB word-swapped, BADC byte-swapped, DCBA little-endian (64-bit: the same rule over four words).",
        "Unmapped register addresses answer exception 2, ILLEGAL DATA ADDRESS. The server is read-only:",
        "writes answer exception 1, ILLEGAL FUNCTION.",
    ]
    titles = {"holding": "Holding registers (FC 3)", "input": "Input registers (FC 4)",
              "coil": "Coils (FC 1)", "discrete": "Discrete inputs (FC 2)"}
    for table in TABLES:
        rows = sorted((e for e in entries if e.point.table == table),
                      key=lambda e: (e.point.address, e.point.bit or 0))
        if not rows:
            continue
        lines += ["", f"## {titles[table]}", ""]
        if table in BIT_TABLES:
            lines += ["| address | point | source | description |", "|---|---|---|---|"]
            lines += [f"| {e.point.address} | `{e.point.name}` | `{e.source}` | {e.description} |"
                      for e in rows]
            continue
        lines += ["| address | registers | point | type | byte order | scale | unit | source | description |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for e in rows:
            p = e.point
            last = p.address + p.register_count - 1
            span = f"{p.address}" if p.register_count == 1 else f"{p.address}..{last}"
            type_: str = p.type
            if p.bit is not None:
                type_ = f"bool (bit {p.bit})"
            elif p.type == "string":
                type_ = f"string ({2 * (p.length or 0)} chars)"
            elif p.kind == "waveform":
                type_ = f"{p.type} x {p.count} samples"
            if p.enum is not None:
                type_ += " enum " + ", ".join(f"{k}={v}" for k, v in sorted(p.enum.items()))
            order = p.byte_order if p.register_count > 1 and p.type != "string" and p.kind == "value" else ""
            scale = "" if p.scale == 1.0 else f"{p.scale:g}"
            lines.append(f"| {span} | {p.register_count} | `{p.name}` | {type_} | {order} | {scale} | "
                         f"{p.unit} | `{e.source}` | {e.description} |")
    return "\n".join(lines) + "\n"


def synthetic_register_map(n_points: int) -> tuple[MapEntry, ...]:
    """A large map for load tests: ``n_points`` numeric points packed back to back in the holding table.

    Types cycle through uint16, int16, int32 (ABCD), float32 (CDAB); sources cycle through the plant's
    numeric values. Raises ValueError when the points do not fit in 65536 registers.
    """
    if n_points < 1:
        raise ValueError(f"{n_points=} must be at least 1")
    cycle = (("uint16", "ABCD", 1), ("int16", "ABCD", 1), ("int32", "ABCD", 2), ("float32", "CDAB", 2))
    numeric = ["motor.speed_rpm", "motor.current_a", "ambient.temp_c", "tank.level_pct", "tank.pressure_bar",
               "motor.bearing_temp_c"]
    entries: list[MapEntry] = []
    address = 0
    for i in range(n_points):
        type_, order, size = cycle[i % len(cycle)]
        if address + size > 65536:
            raise ValueError(f"{n_points=} synthetic points do not fit in the 65536 holding registers")
        scale = 1.0 if type_ == "float32" else 0.01
        entries.append(MapEntry(numeric[i % len(numeric)],
                                P(f"p{i:05d}", "holding", address, type_, order, scale=scale),  # type: ignore[arg-type]
                                "synthetic"))
        address += size
    return tuple(entries)


check_register_map(REGISTER_MAP)

if __name__ == "__main__":
    print(render_register_map_markdown(), end="")
