"""Modbus value codec: registers <-> typed values, byte and word order, bits, strings, scaling, enums.

Pure functions, no I/O. Two paths with the same results:

- :func:`decode_point` / :func:`encode_point` work on one value with :mod:`struct` (clear, used for
  writes, tests and odd points);
- :class:`BlockDecoder` decodes every point of one read request from its register block at once
  with a precomputed numpy byte gather and one ``struct.unpack`` (the polling hot path).

Byte order (see :mod:`drivers.modbus.spec`): the canonical big-endian words of a value are ``AB CD``
(``AB CD EF GH`` for 64 bits). ``BADC`` and ``DCBA`` swap the two bytes of every word; ``CDAB`` and
``DCBA`` reverse the order of the words. Both operations are their own inverse, so the same step
turns wire order into canonical order and back. Strings keep their characters in register order
(two per register, first character in the high byte); ``BADC``/``DCBA`` swap the two characters of
every register, ``CDAB`` is the same as ``ABCD``.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from drivers.base import Value
from drivers.modbus.spec import BIT_TABLES, INTEGER_TYPES, TYPE_REGISTERS, ModbusPointSpec

#: struct format (big-endian) and numpy dtype of each fixed-size numeric type.
_STRUCT_FORMAT: dict[str, str] = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
    "int64": ">q", "uint64": ">Q", "float32": ">f", "float64": ">d",
}
_INTEGER_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}

Registers = Sequence[int] | npt.NDArray[np.uint16]


class UnknownEnumCode(ValueError):
    """A raw code that the point's ``enum`` does not name."""


def swaps_bytes(byte_order: str) -> bool:
    """True when ``byte_order`` swaps the two bytes inside every 16-bit word (BADC, DCBA)."""
    return byte_order in ("BADC", "DCBA")


def swaps_words(byte_order: str) -> bool:
    """True when ``byte_order`` sends the least significant word first (CDAB, DCBA)."""
    return byte_order in ("CDAB", "DCBA")


def reorder_words(words: Sequence[int], byte_order: str) -> list[int]:
    """Convert words between wire order and canonical big-endian order (the step is its own inverse)."""
    out = [((w >> 8) | (w << 8)) & 0xFFFF for w in words] if swaps_bytes(byte_order) else list(words)
    if swaps_words(byte_order):
        out.reverse()
    return out


def _string_words(words: Sequence[int], byte_order: str) -> list[int]:
    """Strings keep their characters in register order; BADC/DCBA swap the two in each register."""
    return reorder_words(words, "BADC") if swaps_bytes(byte_order) else list(words)


def _words_to_bytes(words: Sequence[int]) -> bytes:
    return b"".join(int(w).to_bytes(2, "big") for w in words)


def _bytes_to_words(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def _check_words(registers: Registers, expected: int, what: str) -> list[int]:
    words = [int(r) for r in registers]
    if len(words) != expected:
        raise ValueError(f"{what} needs {expected} registers, got {len(words)}")
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise ValueError(f"register value {w} is not a 16-bit word (0..65535)")
    return words


def decode_raw(registers: Registers, type_: str, byte_order: str = "ABCD") -> int | float | str:
    """Decode the raw (unscaled) value of ``type_`` from its registers in wire order.

    Integers come back as ``int``, floats as ``float``, strings as ASCII text with NUL padding removed.
    """
    if type_ == "string":
        words = _string_words(_check_words(registers, len(registers), "string"), byte_order)
        return _words_to_bytes(words).decode("ascii", errors="replace").strip("\x00")
    if type_ not in _STRUCT_FORMAT:
        raise ValueError(f"type {type_!r} has no register encoding; use one of {', '.join(_STRUCT_FORMAT)}")
    words = reorder_words(_check_words(registers, TYPE_REGISTERS[type_], type_), byte_order)
    value: int | float = struct.unpack(_STRUCT_FORMAT[type_], _words_to_bytes(words))[0]
    return value


def encode_raw(value: int | float | str, type_: str, byte_order: str = "ABCD",
               length: int | None = None) -> list[int]:
    """Encode a raw (unscaled) value of ``type_`` into registers in wire order.

    Integers must fit the type; strings must be ASCII and fit ``length`` registers (NUL-padded).
    """
    if type_ == "string":
        if not isinstance(value, str):
            raise ValueError(f"a string point needs a str value, got {value!r}")
        if length is None:
            raise ValueError("encoding a string needs length (registers)")
        try:
            data = value.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"string {value!r} is not ASCII") from None
        if len(data) > 2 * length:
            raise ValueError(f"string {value!r} has {len(data)} characters, more than {2 * length} "
                             f"that fit in {length} registers")
        return _string_words(_bytes_to_words(data.ljust(2 * length, b"\x00")), byte_order)
    if type_ not in _STRUCT_FORMAT:
        raise ValueError(f"type {type_!r} has no register encoding; use one of {', '.join(_STRUCT_FORMAT)}")
    if isinstance(value, str):
        raise ValueError(f"type {type_} needs a number, got {value!r}")
    if type_ in _INTEGER_RANGE:
        low, high = _INTEGER_RANGE[type_]
        if not float(value).is_integer() or not low <= int(value) <= high:
            raise ValueError(f"{value!r} does not fit {type_} ({low}..{high})")
        value = int(value)
    return reorder_words(_bytes_to_words(struct.pack(_STRUCT_FORMAT[type_], value)), byte_order)


def scale_value(raw: int | float, scale: float, offset: float) -> int | float:
    """Engineering value ``raw * scale + offset``; integers stay integers when scale is 1 and offset 0."""
    if scale == 1.0 and offset == 0.0:
        return raw
    return raw * scale + offset


def unscale_value(value: float, scale: float, offset: float) -> float:
    """Raw value for an engineering ``value``: ``(value - offset) / scale``."""
    return (value - offset) / scale


def _enum_name(point: ModbusPointSpec, raw: int) -> str:
    assert point.enum is not None
    name = point.enum.get(raw)
    if name is None:
        raise UnknownEnumCode(f"code {raw} is not in the enum of point {point.name!r} "
                              f"(known: {sorted(point.enum)})")
    return name


def decode_point(point: ModbusPointSpec, raw: Registers | Sequence[bool]) -> Value:
    """Decode one point from its registers (or its one bit for coil/discrete) in wire order.

    Returns a bool for bits, the enum name when the point has an ``enum`` (raises
    :class:`UnknownEnumCode` for a code it does not name), a str for strings, otherwise the scaled
    number. Raises ValueError when the number of registers does not match the point.
    """
    if point.kind != "value":
        raise ValueError(f"point {point.name!r} is a waveform; decode it with decode_waveform")
    if point.table in BIT_TABLES or point.bit is not None:
        if point.table in BIT_TABLES:
            if len(raw) != 1:
                raise ValueError(f"point {point.name!r} needs 1 bit, got {len(raw)}")
            state = bool(raw[0])
        else:
            (word,) = _check_words(raw, 1, f"point {point.name!r}")
            assert point.bit is not None
            state = bool((word >> point.bit) & 1)
        return _enum_name(point, int(state)) if point.enum is not None else state
    value = decode_raw(raw, point.type, point.byte_order)
    if isinstance(value, str):
        return value
    if point.enum is not None:
        return _enum_name(point, int(value))
    return scale_value(value, point.scale, point.offset)


def encode_point(point: ModbusPointSpec, value: Value) -> list[int]:
    """Registers (wire order) holding engineering ``value`` of ``point``: the inverse of decode_point.

    Bit points (coils, discrete inputs, register bits) encode as ``[0]`` or ``[1]``; integers are
    rounded to the nearest raw code after removing scale and offset.
    """
    if value is None:
        raise ValueError(f"point {point.name!r}: cannot encode None")
    if point.enum is not None and isinstance(value, str):
        codes = [code for code, name in point.enum.items() if name == value]
        if not codes:
            raise ValueError(f"point {point.name!r}: {value!r} is not one of {sorted(point.enum.values())}")
        value = codes[0]
    if point.table in BIT_TABLES or point.bit is not None:
        return [1 if value else 0]
    if point.type == "string":
        return encode_raw(str(value), "string", point.byte_order, point.length)
    if isinstance(value, str):
        raise ValueError(f"point {point.name!r} of type {point.type} needs a number, got {value!r}")
    raw = unscale_value(float(value), point.scale, point.offset)
    if point.type in INTEGER_TYPES:
        exact = int(value) if point.scale == 1.0 and point.offset == 0.0 and isinstance(value, int) else None
        return encode_raw(exact if exact is not None else round(raw), point.type, point.byte_order)
    return encode_raw(raw, point.type, point.byte_order)


def decode_waveform(point: ModbusPointSpec, registers: Registers) -> npt.NDArray[np.float64]:
    """Samples of a waveform point in its engineering unit: 16-bit words times scale plus offset."""
    if point.kind != "waveform":
        raise ValueError(f"point {point.name!r} is not a waveform")
    words = np.asarray(registers, dtype=np.uint16)
    if words.shape != (point.register_count,):
        raise ValueError(f"waveform {point.name!r} needs {point.register_count} registers, got {words.shape}")
    if swaps_bytes(point.byte_order):
        words = words.byteswap()
    samples = words.view(np.int16) if point.type == "int16" else words
    return samples.astype(np.float64) * point.scale + point.offset


# ---------------------------------------------------------------------------------------- block path
#: numpy dtype (big-endian, canonical byte order) of each fixed-size numeric type.
_NUMPY_DTYPE: dict[str, str] = {
    "int16": ">i2", "uint16": ">u2", "int32": ">i4", "uint32": ">u4",
    "int64": ">i8", "uint64": ">u8", "float32": ">f4", "float64": ">f8",
}


@dataclass(frozen=True, slots=True)
class _Group:
    """Points of one type and one conversion, decoded together with one numpy gather."""

    positions: tuple[int, ...]  # point indices in the block decoder's ``points``
    byte_index: npt.NDArray[np.intp]  # canonical big-endian bytes of every point, back to back
    dtype: np.dtype[Any]
    keep_int: bool  # integers with scale 1 and offset 0 stay Python ints
    is_float: bool  # float types: non-finite values are refused
    scale: npt.NDArray[np.float64] | None  # None: no scaling (scale 1, offset 0)
    offset: npt.NDArray[np.float64] | None


class BlockDecoder:
    """Decodes every value point of one register read request at once.

    Built once per request (``points`` all in one register table, ``start`` the request's first
    address). Construction groups the numeric points by type and conversion and precomputes, per
    group, a numpy byte permutation that gathers the canonical (big-endian) bytes of its points out of
    the block, whatever their byte order. :meth:`decode` is then, per group, one gather, one view with
    the group's dtype, one vectorised scale and offset and one ``tolist``: no Python work per value
    beyond placing it in the output list. Register bits are read with a shift; strings and enums take
    the per-point path. Results equal :func:`decode_point` exactly (same IEEE operations).
    """

    def __init__(self, points: Sequence[ModbusPointSpec], start: int) -> None:
        self.points = tuple(points)
        self.start = start
        self.length = max((p.address + p.register_count for p in self.points), default=start) - start
        members: dict[tuple[str, bool], list[tuple[int, list[int], float, float]]] = {}
        self._bits: list[tuple[int, int, int]] = []  # (point index, register offset, bit)
        self._slow: list[int] = []
        for i, p in enumerate(self.points):
            if p.table in BIT_TABLES or p.kind != "value":
                raise ValueError(f"point {p.name!r}: BlockDecoder handles register value points only")
            if p.address < start:
                raise ValueError(f"point {p.name!r} at {p.address} is before the block start {start}")
            first = p.address - start
            if p.bit is not None and p.enum is None:
                self._bits.append((i, first, p.bit))
            elif p.type == "string" or p.enum is not None:
                self._slow.append(i)
            else:
                k = TYPE_REGISTERS[p.type]
                byte_index: list[int] = []
                for word in range(k):
                    wire_word = first + (k - 1 - word if swaps_words(p.byte_order) else word)
                    high, low = (2 * wire_word + 1, 2 * wire_word) if swaps_bytes(p.byte_order) else (
                        2 * wire_word, 2 * wire_word + 1)
                    byte_index += [high, low]
                keep_int = p.type in INTEGER_TYPES and p.scale == 1.0 and p.offset == 0.0
                members.setdefault((p.type, keep_int), []).append((i, byte_index, p.scale, p.offset))
        self._groups: list[_Group] = []
        for (type_, keep_int), group in members.items():
            scaled = not keep_int and any(scale != 1.0 or offset != 0.0 for _, _, scale, offset in group)
            self._groups.append(_Group(
                positions=tuple(i for i, _, _, _ in group),
                byte_index=np.array([b for _, idx, _, _ in group for b in idx], dtype=np.intp),
                dtype=np.dtype(_NUMPY_DTYPE[type_]),
                keep_int=keep_int,
                is_float=type_.startswith("float"),
                scale=np.array([s for _, _, s, _ in group], dtype=np.float64) if scaled else None,
                offset=np.array([o for _, _, _, o in group], dtype=np.float64) if scaled else None,
            ))
        n = len(self.points)
        only = self._groups[0] if len(self._groups) == 1 and not self._bits and not self._slow else None
        self._identity = only is not None and only.positions == tuple(range(n))

    def decode(self, block: Registers) -> tuple[list[Value], dict[int, str]]:
        """Decode all points from ``block`` (registers from ``start``, wire order).

        Returns the values in the order of ``points`` and a map from point index to the reason its
        value is unusable (value ``None``): a NaN or infinite float, an enum code with no name.
        """
        if len(block) < self.length:
            raise ValueError(f"block has {len(block)} registers, the points need {self.length}")
        problems: dict[int, str] = {}
        out: list[Value] = [None] * len(self.points)
        if self._groups:
            wire = np.asarray(block, dtype=">u2").view(np.uint8)
            for g in self._groups:
                raw = wire[g.byte_index].view(g.dtype)
                values: list[Value]
                if g.keep_int:
                    values = raw.tolist()
                else:
                    x = raw.astype(np.float64)
                    if g.scale is not None and g.offset is not None:
                        x = x * g.scale + g.offset
                    values = x.tolist()
                    if g.is_float and not np.isfinite(x).all():
                        for j in np.flatnonzero(~np.isfinite(x)).tolist():
                            problems[g.positions[j]] = f"device sent a non-finite float ({values[j]})"
                            values[j] = None
                if self._identity:
                    return values, problems
                deque(map(out.__setitem__, g.positions, values), maxlen=0)
        for i, first, bit in self._bits:
            out[i] = bool((int(block[first]) >> bit) & 1)
        for i in self._slow:
            p = self.points[i]
            first = p.address - self.start
            try:
                out[i] = decode_point(p, block[first : first + p.register_count])
            except UnknownEnumCode as exc:
                problems[i] = str(exc)
        return out, problems


def decode_bits(points: Sequence[ModbusPointSpec], start: int,
                bits: Sequence[bool]) -> tuple[list[Value], dict[int, str]]:
    """Values of coil/discrete ``points`` from a bit block read from address ``start``.

    Returns the values in the order of ``points`` and a map from point index to the reason its value
    is unusable (an enum with no name for the bit's state).
    """
    out: list[Value] = []
    problems: dict[int, str] = {}
    for i, p in enumerate(points):
        try:
            out.append(decode_point(p, [bits[p.address - start]]))
        except UnknownEnumCode as exc:
            out.append(None)
            problems[i] = str(exc)
    return out, problems
