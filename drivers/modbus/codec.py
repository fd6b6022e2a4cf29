"""Modbus value codec: registers <-> typed values, byte and word order, bits, strings, scaling, enums.

Pure functions, no I/O. Two paths with the same results:

- :func:`decode_point` / :func:`encode_point` work on one value with :mod:`struct` (clear, used for
  writes, tests and odd points);
- :class:`BlockDecoder` decodes every point of one read request from its register block at once
  with precompiled :class:`struct.Struct` layouts and C-level byte gathers (the polling hot path).

No numpy here: a Modbus-only agent never imports it. Only :func:`decode_waveform` (vibration
waveform points) imports numpy, when it is first called.

Byte order (see :mod:`drivers.modbus.spec`): the canonical big-endian words of a value are ``AB CD``
(``AB CD EF GH`` for 64 bits). ``BADC`` and ``DCBA`` swap the two bytes of every word; ``CDAB`` and
``DCBA`` reverse the order of the words. Both operations are their own inverse, so the same step
turns wire order into canonical order and back. Strings keep their characters in register order
(two per register, first character in the high byte); ``BADC``/``DCBA`` swap the two characters of
every register, ``CDAB`` is the same as ``ABCD``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from math import isfinite
from operator import add, itemgetter, mul
from typing import TYPE_CHECKING, Any, TypeAlias, overload

from drivers.base import Value
from drivers.modbus.spec import BIT_TABLES, INTEGER_TYPES, TYPE_REGISTERS, ModbusPointSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

#: struct format (big-endian) of each fixed-size numeric type.
_STRUCT_FORMAT: dict[str, str] = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
    "int64": ">q", "uint64": ">Q", "float32": ">f", "float64": ">d",
}
_INTEGER_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}

#: 16-bit register words in wire order: a list, a :class:`RegisterBlock`, or a uint16 numpy array.
Registers: TypeAlias = "Sequence[int] | npt.NDArray[np.uint16]"


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
    """Samples of a waveform point in its engineering unit: 16-bit words times scale plus offset.

    Imports numpy on first use (waveform points only exist in vibration configs).
    """
    import numpy as np  # lazy: a Modbus-only agent must not load numpy

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
#: struct code (one value, no byte order prefix) of each fixed-size numeric type.
_STRUCT_CODE: dict[str, str] = {type_: fmt[1] for type_, fmt in _STRUCT_FORMAT.items()}


class RegisterBlock(Sequence[int]):
    """The registers of one read answer, kept as their raw big-endian wire bytes (two per register).

    Indexing and iteration give the 16-bit words; :class:`BlockDecoder` reads :attr:`data` directly,
    so a read answer never turns into one Python int per register.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        if len(data) % 2:
            raise ValueError(f"registers are 2 bytes each, got {len(data)} bytes")
        self.data = bytes(data)

    def __len__(self) -> int:
        return len(self.data) >> 1

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[int, ...]: ...

    def __getitem__(self, index: int | slice) -> int | tuple[int, ...]:
        if isinstance(index, slice):
            return self.words()[index]
        n = len(self)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(f"register {index} is outside a block of {n}")
        data = self.data
        return (data[2 * i] << 8) | data[2 * i + 1]

    def __iter__(self) -> Iterator[int]:
        return iter(self.words())

    def words(self) -> tuple[int, ...]:
        """All registers as 16-bit words (0..65535), in wire order."""
        return struct.unpack(f">{len(self)}H", self.data)

    def __repr__(self) -> str:
        return f"RegisterBlock({len(self)} registers)"


def _register_bytes(block: Registers) -> bytes:
    """The big-endian wire bytes of ``block`` (a :class:`RegisterBlock` or any sequence of words)."""
    if type(block) is RegisterBlock:
        return block.data
    try:
        return struct.pack(f">{len(block)}H", *block)
    except struct.error:
        bad = next((w for w in block if not hasattr(w, "__index__") or not 0 <= int(w) <= 0xFFFF), None)
        raise ValueError(f"register value {bad!r} is not a 16-bit word (0..65535)") from None


def _picker(indices: Sequence[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """A C-level function returning the items at ``indices`` as a tuple (one index included)."""
    if len(indices) == 1:
        index = indices[0]
        return lambda seq: (seq[index],)
    getter: Callable[[Sequence[Any]], tuple[Any, ...]] = itemgetter(*indices)
    return getter


def _canonical_byte_index(point: ModbusPointSpec, first: int) -> list[int]:
    """Positions in the block's bytes of the canonical (big-endian) bytes of ``point``.

    ``first`` is the point's first register relative to the block start.
    """
    k = TYPE_REGISTERS[point.type]
    index: list[int] = []
    for word in range(k):
        wire_word = first + (k - 1 - word if swaps_words(point.byte_order) else word)
        if swaps_bytes(point.byte_order):
            index += [2 * wire_word + 1, 2 * wire_word]
        else:
            index += [2 * wire_word, 2 * wire_word + 1]
    return index


class BlockDecoder:
    """Decodes every value point of one register read request at once, with the stdlib only.

    Built once per request (``points`` all in one register table, ``start`` the request's first
    address). Construction compiles the numeric points into at most two :class:`struct.Struct`:

    - *direct*: big-endian points (and 16-bit points of any word order) that do not overlap, read in
      address order straight from the wire bytes, with pad bytes over everything else;
    - *gathered*: the rest (swapped bytes or words, overlaps), whose canonical bytes are first
      collected with one :func:`operator.itemgetter` over the wire bytes.

    :meth:`decode` is then one unpack per struct, ``raw * scale + offset`` for the scaled points
    only (two C-level ``map`` calls), one finiteness check over the floats and one ``itemgetter``
    putting every value in point order: no Python bytecode per value. Register bits are read with a
    mask; strings and enums take the per-point path. Results equal :func:`decode_point` exactly.
    """

    def __init__(self, points: Sequence[ModbusPointSpec], start: int) -> None:
        self.points = tuple(points)
        self.start = start
        self.length = max((p.address + p.register_count for p in self.points), default=start) - start
        numeric: list[int] = []
        self._bits: list[tuple[int, int]] = []  # (byte position, mask), in order of ``bit_points``
        bit_points: list[int] = []
        self._slow: list[tuple[int, int, struct.Struct]] = []  # (point index, byte offset, words)
        for i, p in enumerate(self.points):
            if p.table in BIT_TABLES or p.kind != "value":
                raise ValueError(f"point {p.name!r}: BlockDecoder handles register value points only")
            if p.address < start:
                raise ValueError(f"point {p.name!r} at {p.address} is before the block start {start}")
            first = p.address - start
            if p.bit is not None and p.enum is None:
                # bits 8..15 live in the word's first (high) byte
                self._bits.append((2 * first + (0 if p.bit >= 8 else 1), 1 << (p.bit % 8)))
                bit_points.append(i)
            elif p.type == "string" or p.enum is not None:
                self._slow.append((i, 2 * first, struct.Struct(f">{p.register_count}H")))
            else:
                numeric.append(i)

        # struct layouts: direct (no byte moves) first, then gathered
        direct: list[int] = []
        direct_format = ">"
        end = 0  # first byte after the direct layout so far
        gathered: list[int] = []
        gather_index: list[int] = []
        for i in sorted(numeric, key=lambda i: self.points[i].address):
            p = self.points[i]
            first = 2 * (p.address - start)
            index = _canonical_byte_index(p, p.address - start)
            if first >= end and index == list(range(first, first + len(index))):
                direct_format += (f"{first - end}x" if first > end else "") + _STRUCT_CODE[p.type]
                end = first + len(index)
                direct.append(i)
            else:
                gathered.append(i)
                gather_index += index
        self._direct = struct.Struct(direct_format) if direct else None
        self._gathered = struct.Struct(">" + "".join(_STRUCT_CODE[self.points[i].type] for i in gathered))
        self._gather = _picker(gather_index) if gathered else None
        order = direct + gathered  # point index of each unpacked value

        # where each point's final value sits in ``unpacked + scaled + bits + slow``
        place = dict(zip(order, range(len(order)), strict=True))
        scaled = [j for j, i in enumerate(order)
                  if self.points[i].scale != 1.0 or self.points[i].offset != 0.0]
        self._scaled = _picker(scaled) if scaled else None
        self._scales = tuple(self.points[order[j]].scale for j in scaled)
        self._offsets = tuple(self.points[order[j]].offset for j in scaled)
        place.update(zip((order[j] for j in scaled), range(len(order), len(order) + len(scaled)), strict=True))
        after = len(order) + len(scaled)
        place.update(zip(bit_points, range(after, after + len(bit_points)), strict=True))
        after += len(bit_points)
        place.update(zip((i for i, _, _ in self._slow), range(after, after + len(self._slow)), strict=True))
        n = len(self.points)
        self._identity = not scaled and not bit_points and not self._slow and order == list(range(n))
        self._out = _picker([place[i] for i in range(n)]) if n else None
        self._float_points = [i for i in numeric if self.points[i].type.startswith("float")]
        self._floats = _picker([place[i] for i in self._float_points]) if self._float_points else None

    def decode(self, block: Registers) -> tuple[list[Value], dict[int, str]]:
        """Decode all points from ``block`` (registers from ``start``, wire order).

        ``block`` is a :class:`RegisterBlock` (raw answer bytes, the fast path) or any sequence of
        16-bit words. Returns the values in the order of ``points`` and a map from point index to
        the reason its value is unusable (value ``None``): a NaN or infinite float, an enum code
        with no name.
        """
        data = _register_bytes(block)
        if len(data) < 2 * self.length:
            raise ValueError(f"block has {len(data) // 2} registers, the points need {self.length}")
        problems: dict[int, str] = {}
        values: tuple[Any, ...] = self._direct.unpack_from(data) if self._direct is not None else ()
        if self._gather is not None:
            values += self._gathered.unpack(bytes(self._gather(data)))
        if self._identity:
            out: list[Value] = list(values)
        else:
            if self._scaled is not None:
                values += tuple(map(add, map(mul, self._scaled(values), self._scales), self._offsets))
            if self._bits:
                values += tuple([data[at] & mask != 0 for at, mask in self._bits])
            if self._slow:
                values += tuple(self._decode_slow(data, problems))
            out = list(self._out(values)) if self._out is not None else []
        if self._floats is not None:
            floats = self._floats(values)
            if not isfinite(sum(floats)):
                for i, x in zip(self._float_points, floats, strict=True):
                    if not isfinite(x):
                        problems[i] = f"device sent a non-finite float ({x})"
                        out[i] = None
        return out, problems

    def _decode_slow(self, data: bytes, problems: dict[int, str]) -> list[Value]:
        """Strings and enums, one by one with :func:`decode_point`."""
        out: list[Value] = []
        for i, offset, words in self._slow:
            try:
                out.append(decode_point(self.points[i], words.unpack_from(data, offset)))
            except UnknownEnumCode as exc:
                out.append(None)
                problems[i] = str(exc)
        return out


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
