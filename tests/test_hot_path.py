"""The Modbus hot path's shortcuts give exactly what the slow paths give."""

from __future__ import annotations

import struct

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse

from drivers.modbus.client import _HoldingRegistersAnswer, _InputRegistersAnswer
from drivers.modbus.codec import BlockDecoder, RegisterBlock
from drivers.sim.register_map import synthetic_register_map


def answer_bytes(words: list[int]) -> bytes:
    """The PDU data of a function 3/4 answer after the function code: byte count, then the words."""
    return bytes([2 * len(words)]) + b"".join(struct.pack(">H", w) for w in words)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 0xFFFF), min_size=1, max_size=125))
def test_raw_answer_equals_pymodbus_decoding(words: list[int]) -> None:
    ours, theirs = _HoldingRegistersAnswer(), ReadHoldingRegistersResponse()
    ours.decode(answer_bytes(words))
    theirs.decode(answer_bytes(words))
    assert isinstance(ours.registers, RegisterBlock)
    assert list(ours.registers) == theirs.registers == words
    assert len(ours.registers) == len(words) and ours.registers[-1] == words[-1]
    assert list(ours.registers[1:3]) == words[1:3]
    assert _InputRegistersAnswer.function_code == 4 and _HoldingRegistersAnswer.function_code == 3
    assert "registers[" in str(ours)  # logging a PDU does not print the whole array


def test_a_truncated_answer_carries_no_registers_and_says_why() -> None:
    # not raised: inside pymodbus's data_received that would abort the connection (see the driver test)
    for data, count in ((bytes([8, 0, 1, 0, 2]), 8), (bytes([3, 0, 1, 0]), 3)):
        answer = _HoldingRegistersAnswer()
        answer.decode(data)
        assert len(answer.registers) == 0
        assert answer.malformed == f"malformed answer: byte count {count} does not fit a packet of {len(data)} bytes"


def test_block_decoder_reads_the_raw_answer_like_a_list() -> None:
    points = [e.point for e in synthetic_register_map(83)]
    length = points[-1].address + points[-1].register_count
    rng = np.random.default_rng(3)
    words = rng.integers(0, 0x10000, size=length).tolist()
    answer = _HoldingRegistersAnswer()
    answer.decode(answer_bytes(words))
    decoder = BlockDecoder(points, 0)
    from_array = decoder.decode(answer.registers)
    from_list = decoder.decode(words)
    assert from_array == from_list
    assert [type(v) for v in from_array[0]] == [type(v) for v in from_list[0]]
