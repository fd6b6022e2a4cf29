"""Modbus codec: known register vectors, round trips of every type and byte order, block == per-point."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.codec import (
    BlockDecoder,
    RegisterBlock,
    UnknownEnumCode,
    decode_bits,
    decode_point,
    decode_raw,
    decode_waveform,
    encode_point,
    encode_raw,
)
from drivers.modbus.spec import BYTE_ORDERS, TYPE_REGISTERS, ModbusPointSpec, ModbusTcpSpec

ORDERS = list(BYTE_ORDERS)
INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1), "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1), "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
}

# ------------------------------------------------------------------------------------ known vectors
KNOWN = [
    # (value, type, byte order, registers on the wire)
    (1.0, "float32", "ABCD", [0x3F80, 0x0000]),
    (1.0, "float32", "CDAB", [0x0000, 0x3F80]),
    (1.0, "float32", "BADC", [0x803F, 0x0000]),
    (1.0, "float32", "DCBA", [0x0000, 0x803F]),
    (-2.5, "float32", "ABCD", [0xC020, 0x0000]),
    (1.0, "float64", "ABCD", [0x3FF0, 0, 0, 0]),
    (1.0, "float64", "DCBA", [0, 0, 0, 0xF03F]),
    (0x01020304, "uint32", "ABCD", [0x0102, 0x0304]),
    (0x01020304, "uint32", "CDAB", [0x0304, 0x0102]),
    (0x01020304, "uint32", "BADC", [0x0201, 0x0403]),
    (0x01020304, "uint32", "DCBA", [0x0403, 0x0201]),
    (-2, "int32", "ABCD", [0xFFFF, 0xFFFE]),
    (-2, "int32", "CDAB", [0xFFFE, 0xFFFF]),
    (0x0102030405060708, "uint64", "ABCD", [0x0102, 0x0304, 0x0506, 0x0708]),
    (0x0102030405060708, "uint64", "CDAB", [0x0708, 0x0506, 0x0304, 0x0102]),
    (0x0102030405060708, "uint64", "BADC", [0x0201, 0x0403, 0x0605, 0x0807]),
    (0x0102030405060708, "uint64", "DCBA", [0x0807, 0x0605, 0x0403, 0x0201]),
    (-1, "int64", "ABCD", [0xFFFF] * 4),
    (-2, "int16", "ABCD", [0xFFFE]),
    (-2, "int16", "CDAB", [0xFFFE]),
    (-2, "int16", "BADC", [0xFEFF]),
    (0x1234, "uint16", "DCBA", [0x3412]),
    (65535, "uint16", "ABCD", [0xFFFF]),
]


@pytest.mark.parametrize(("value", "type_", "order", "registers"), KNOWN)
def test_known_vectors(value: float, type_: str, order: str, registers: list[int]) -> None:
    assert encode_raw(value, type_, order) == registers
    assert decode_raw(registers, type_, order) == value


def test_string_ascii_nul_stripped_and_byte_swapped() -> None:
    assert encode_raw("AB", "string", "ABCD", length=2) == [0x4142, 0x0000]
    assert decode_raw([0x4142, 0x4300, 0x0000], "string") == "ABC"
    assert decode_raw([0x4241, 0x0043], "string", "BADC") == "ABC"
    with pytest.raises(ValueError, match="more than 4"):
        encode_raw("ABCDE", "string", length=2)
    with pytest.raises(ValueError, match="not ASCII"):
        encode_raw("Ä", "string", length=2)


def test_integer_out_of_range_is_rejected_with_the_range() -> None:
    with pytest.raises(ValueError, match=r"does not fit uint16 \(0..65535\)"):
        encode_raw(70000, "uint16")
    with pytest.raises(ValueError, match="needs 2 registers, got 1"):
        decode_raw([1], "float32")


# ------------------------------------------------------------------------------------ round trips
def _values_for(type_: str) -> st.SearchStrategy[float]:
    if type_ in INT_RANGES:
        low, high = INT_RANGES[type_]
        return st.integers(low, high)  # type: ignore[return-value]
    width = 32 if type_ == "float32" else 64
    return st.floats(allow_nan=False, width=width)


@pytest.mark.parametrize("type_", list(TYPE_REGISTERS.keys() - {"bool"}))
@pytest.mark.parametrize("order", ORDERS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip_every_type_and_byte_order(type_: str, order: str, data: st.DataObject) -> None:
    value = data.draw(_values_for(type_))
    registers = encode_raw(value, type_, order)
    assert len(registers) == TYPE_REGISTERS[type_]
    assert all(0 <= r <= 0xFFFF for r in registers)
    decoded = decode_raw(registers, type_, order)
    assert decoded == value and type(decoded) is type(value)
    # the byte orders differ only by a permutation of the same bytes
    canonical = encode_raw(value, type_, "ABCD")
    as_bytes = sorted(b"".join(r.to_bytes(2, "big") for r in registers))
    assert as_bytes == sorted(b"".join(r.to_bytes(2, "big") for r in canonical))


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=20),
       order=st.sampled_from(ORDERS))
def test_round_trip_strings(text: str, order: str) -> None:
    registers = encode_raw(text, "string", order, length=10)
    assert len(registers) == 10
    assert decode_raw(registers, "string", order) == text


# ------------------------------------------------------------------------------------ points
def test_scale_offset_enum_and_bits() -> None:
    temp = ModbusPointSpec("t", "holding", 0, "int16", scale=0.1, offset=-50.0, unit="degC")
    assert decode_point(temp, [725]) == pytest.approx(22.5)
    assert encode_point(temp, 22.5) == [725]
    plain = ModbusPointSpec("n", "holding", 0, "uint32")
    assert decode_point(plain, [0, 7]) == 7 and isinstance(decode_point(plain, [0, 7]), int)
    state = ModbusPointSpec("s", "input", 0, "uint16", enum={0: "stopped", 1: "running"})
    assert decode_point(state, [1]) == "running"
    assert encode_point(state, "stopped") == [0]
    with pytest.raises(UnknownEnumCode, match="code 7 is not in the enum"):
        decode_point(state, [7])
    bit3 = ModbusPointSpec("b", "holding", 0, "bool", bit=3)
    assert decode_point(bit3, [0b1000]) is True
    assert decode_point(bit3, [0b0111]) is False
    coil = ModbusPointSpec("c", "coil", 5, "bool")
    assert decode_bits([coil], 4, [False, True, False]) == ([True], {})


def test_waveform_samples_are_scaled_int16() -> None:
    wf = ModbusPointSpec("w", "input", 0, "int16", scale=0.001, unit="g", kind="waveform", count=4,
                         sample_rate_hz=1000.0)
    samples = decode_waveform(wf, [1000, 0xFFFF, 0x8000, 0x7FFF])
    np.testing.assert_allclose(samples, [1.0, -0.001, -32.768, 32.767])


POINT_TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]


@st.composite
def _layout(draw: st.DrawFn) -> tuple[list[ModbusPointSpec], list[int]]:
    """Random points packed (with random holes and overlaps of bit views) into one block."""
    points: list[ModbusPointSpec] = []
    address = 0
    for i in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["num", "num", "num", "bit", "string", "enum"]))
        address += draw(st.integers(0, 2))
        if kind == "bit":
            points.append(ModbusPointSpec(f"p{i}", "holding", address, "bool", bit=draw(st.integers(0, 15))))
            address += 1
        elif kind == "string":
            points.append(ModbusPointSpec(f"p{i}", "holding", address, "string",
                                          draw(st.sampled_from(ORDERS)), length=3))  # type: ignore[arg-type]
            address += 3
        elif kind == "enum":
            points.append(ModbusPointSpec(f"p{i}", "holding", address, "uint16", enum={0: "a", 1: "b"}))
            address += 1
        else:
            type_ = draw(st.sampled_from(POINT_TYPES))
            scale = draw(st.sampled_from([1.0, 0.1, 2.5]))
            points.append(ModbusPointSpec(f"p{i}", "holding", address, type_,  # type: ignore[arg-type]
                                          draw(st.sampled_from(ORDERS)), scale=scale,  # type: ignore[arg-type]
                                          offset=draw(st.sampled_from([0.0, -3.0]))))
            address += TYPE_REGISTERS[type_]
    block = draw(st.lists(st.integers(0, 0xFFFF), min_size=address, max_size=address))
    return points, block


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return a == b and type(a) is type(b)


@settings(max_examples=200, deadline=None)
@given(layout=_layout())
def test_block_decoder_equals_per_point_decoder(layout: tuple[list[ModbusPointSpec], list[int]]) -> None:
    points, block = layout
    values, problems = BlockDecoder(points, 0).decode(np.array(block, dtype=np.uint16))
    for i, p in enumerate(points):
        window = block[p.address : p.address + p.register_count]
        try:
            expected = decode_point(p, window)
        except UnknownEnumCode:
            assert values[i] is None and "not in the enum" in problems[i]
            continue
        if isinstance(expected, float) and not math.isfinite(expected):
            assert values[i] is None and "non-finite" in problems[i]
            continue
        assert _same(values[i], expected), (p, window, values[i], expected)
        assert i not in problems


def test_block_decoder_accepts_plain_lists_and_reports_short_blocks() -> None:
    points = [ModbusPointSpec("f", "input", 10, "float32", "CDAB")]
    decoder = BlockDecoder(points, 10)
    assert decoder.decode([0, 0x3F80]) == ([1.0], {})
    assert decoder.decode([0x7FC0, 0x0000][::-1])[1] == {0: "device sent a non-finite float (nan)"}
    with pytest.raises(ValueError, match="block has 1 registers, the points need 2"):
        decoder.decode([0])


def test_block_decoder_reads_overlapping_views_from_raw_answer_bytes() -> None:
    # the same two registers as uint32, float32 and two int16 halves, plus a byte-swapped copy
    points = [
        ModbusPointSpec("u", "holding", 100, "uint32"),
        ModbusPointSpec("f", "holding", 100, "float32"),
        ModbusPointSpec("hi", "holding", 100, "int16", scale=0.5),
        ModbusPointSpec("lo", "holding", 101, "int16"),
        ModbusPointSpec("g", "holding", 102, "float32", "DCBA", offset=1.0),
        ModbusPointSpec("run", "holding", 101, "bool", bit=15),
    ]
    block = RegisterBlock(bytes.fromhex("41BC 8000 0000 BC41".replace(" ", "")))
    assert list(block) == [0x41BC, 0x8000, 0x0000, 0xBC41] and len(block) == 4 and block[-1] == 0xBC41
    values, problems = BlockDecoder(points, 100).decode(block)
    assert values == [0x41BC8000, 23.5625, 0x41BC * 0.5, -0x8000, 24.5, True]  # 0x41BC8000 = 23.5 + 2**-4
    assert [type(v) for v in values] == [int, float, float, int, float, bool] and problems == {}


def test_block_decoder_refuses_words_that_are_not_16_bit() -> None:
    decoder = BlockDecoder([ModbusPointSpec("a", "holding", 0, "uint16")], 0)
    with pytest.raises(ValueError, match="register value 70000 is not a 16-bit word"):
        decoder.decode([70000])
    with pytest.raises(ValueError, match="register value -1 is not a 16-bit word"):
        decoder.decode([-1])


def test_float32_matches_struct_for_a_known_bit_pattern() -> None:
    (expected,) = struct.unpack(">f", bytes.fromhex("41BC0000"))
    assert decode_raw([0x0000, 0x41BC], "float32", "CDAB") == expected == 23.5


# ------------------------------------------------------------------------------------ spec checks
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"table": "holding", "address": 0, "type": "bool"}, "needs bit: 0..15"),
        ({"table": "coil", "address": 0, "type": "uint16"}, "set type: bool"),
        ({"table": "holding", "address": 70000}, "must be an integer 0..65535"),
        ({"table": "holding", "address": 65535, "type": "float32"}, "beyond 65535"),
        ({"table": "holding", "address": 0, "type": "string"}, "needs length"),
        ({"table": "hold", "address": 0}, "table 'hold' is not one of"),
        ({"table": "holding", "address": 0, "byte_order": "ACBD"}, "byte_order 'ACBD'"),
        ({"table": "holding", "address": 0, "kind": "waveform", "count": 10}, "exactly one of sample_rate_hz"),
        ({"table": "holding", "address": 0, "scale": 0.0}, "scale must not be 0"),
        ({"table": "holding", "address": 0, "type": "float32", "enum": {1: "x"}}, "enum needs an integer"),
    ],
)
def test_point_spec_errors_name_the_point_and_the_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        ModbusPointSpec("speed", **kwargs)  # type: ignore[arg-type]
    assert "'speed'" in str(info.value)


def test_device_spec_errors_name_the_device() -> None:
    p = ModbusPointSpec("a", "holding", 0)
    with pytest.raises(ValueError, match="device 'plc': point name 'a' is used twice"):
        ModbusTcpSpec(name="plc", host="127.0.0.1", points=(p, p))
    with pytest.raises(ValueError, match=r"device .plc.: max_registers 200 must be 1\.\.125"):
        ModbusTcpSpec(name="plc", host="127.0.0.1", max_registers=200)
    with pytest.raises(ValueError, match=r"device .plc.: port 0 must be 1\.\.65535"):
        ModbusTcpSpec(name="plc", host="127.0.0.1", port=0)
