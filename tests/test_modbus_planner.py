"""Read planner: fewest requests within the protocol limits, gaps, splitting, waveform chunks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.planner import ReadRequest, plan_reads, plan_waveform_reads, split_request
from drivers.modbus.spec import ModbusPointSpec

P = ModbusPointSpec


def spans(requests: list[ReadRequest]) -> list[tuple[str, int, int]]:
    return [(r.table, r.address, r.count) for r in requests]


def test_contiguous_points_merge_into_one_request_per_table() -> None:
    points = [P("a", "holding", 0), P("b", "holding", 1, "float32"), P("c", "holding", 3),
              P("d", "input", 5), P("e", "coil", 2, "bool"), P("f", "coil", 3, "bool"),
              P("g", "discrete", 0, "bool")]
    assert spans(plan_reads(points)) == [("holding", 0, 4), ("input", 5, 1), ("coil", 2, 2), ("discrete", 0, 1)]


def test_gaps_are_bridged_only_up_to_max_gap() -> None:
    points = [P("a", "holding", 0), P("b", "holding", 5), P("c", "holding", 20)]
    assert spans(plan_reads(points)) == [("holding", 0, 1), ("holding", 5, 1), ("holding", 20, 1)]
    assert spans(plan_reads(points, max_gap=4)) == [("holding", 0, 6), ("holding", 20, 1)]
    assert spans(plan_reads(points, max_gap=14)) == [("holding", 0, 21)]


def test_125_register_limit_never_cuts_a_value() -> None:
    points = [P(f"r{i}", "holding", i) for i in range(124)] + [P("f", "holding", 124, "float32")]
    assert spans(plan_reads(points)) == [("holding", 0, 124), ("holding", 124, 2)]
    many = [P(f"r{i}", "input", i) for i in range(300)]
    assert spans(plan_reads(many)) == [("input", 0, 125), ("input", 125, 125), ("input", 250, 50)]
    assert spans(plan_reads(many, max_registers=100)) == [("input", 0, 100), ("input", 100, 100),
                                                          ("input", 200, 100)]


def test_2000_bit_limit() -> None:
    coils = [P(f"c{i}", "coil", i, "bool") for i in range(4500)]
    assert spans(plan_reads(coils)) == [("coil", 0, 2000), ("coil", 2000, 2000), ("coil", 4000, 500)]


def test_bits_of_one_status_word_share_its_register() -> None:
    points = [P("word", "holding", 3), P("b0", "holding", 3, "bool", bit=0), P("b5", "holding", 3, "bool", bit=5)]
    (request,) = plan_reads(points)
    assert (request.address, request.count, len(request.points)) == (3, 1, 3)


def test_split_cuts_holes_first_then_per_point() -> None:
    points = [P("a", "holding", 0), P("b", "holding", 1, "uint32"), P("s", "holding", 3, "bool", bit=1),
              P("s2", "holding", 3, "bool", bit=2), P("c", "holding", 10)]
    (merged,) = plan_reads(points, max_gap=10)
    runs = split_request(merged)
    assert spans(runs) == [("holding", 0, 4), ("holding", 10, 1)]
    per_point = split_request(runs[0])
    assert spans(per_point) == [("holding", 0, 1), ("holding", 1, 2), ("holding", 3, 1)]
    assert [p.name for p in per_point[2].points] == ["s", "s2"]
    assert split_request(per_point[2]) == [per_point[2]]


def test_waveform_is_read_in_chunks_of_at_most_max_registers() -> None:
    wf = P("vib", "input", 1000, "int16", kind="waveform", count=2048, sample_rate_hz=5120.0)
    chunks = plan_waveform_reads(wf)
    assert len(chunks) == 17 and sum(c.count for c in chunks) == 2048
    assert chunks[0].address == 1000 and chunks[-1].count == 2048 - 16 * 125
    assert all(b.address == a.end for a, b in itertools.pairwise(chunks))
    with pytest.raises(ValueError, match="waveform; plan it with plan_waveform_reads"):
        plan_reads([wf])


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"max_registers=126 must be 1\.\.125"):
        plan_reads([], max_registers=126)
    with pytest.raises(ValueError, match=r"max_bits=2001 must be 1\.\.2000"):
        plan_reads([], max_bits=2001)
    with pytest.raises(ValueError, match="spans 10 registers, more than one request may read"):
        plan_reads([P("s", "holding", 0, "string", length=10)], max_registers=8)


@st.composite
def _points(draw: st.DrawFn) -> list[ModbusPointSpec]:
    out = []
    for i in range(draw(st.integers(0, 60))):
        table = draw(st.sampled_from(["holding", "input", "coil", "discrete"]))
        address = draw(st.integers(0, 400))
        if table in ("coil", "discrete"):
            out.append(P(f"p{i}", table, address, "bool"))
        else:
            type_ = draw(st.sampled_from(["uint16", "float32", "float64"]))
            out.append(P(f"p{i}", table, address, type_))
    return out


@settings(max_examples=300, deadline=None)
@given(points=_points(), max_gap=st.integers(0, 20), max_registers=st.integers(4, 125),
       max_bits=st.integers(1, 2000))
def test_plan_covers_every_point_once_within_limits(points: list[ModbusPointSpec], max_gap: int,
                                                     max_registers: int, max_bits: int) -> None:
    requests = plan_reads(points, max_registers, max_bits, max_gap)
    served = [p.name for r in requests for p in r.points]
    assert sorted(served) == sorted(p.name for p in points)
    for r in requests:
        assert r.count <= (max_bits if r.is_bits else max_registers)
        for p in r.points:
            assert p.table == r.table and r.address <= p.address and p.address + p.register_count <= r.end
        # holes inside a request are never longer than max_gap
        covered = sorted({a for p in r.points for a in range(p.address, p.address + p.register_count)})
        assert covered[0] == r.address and covered[-1] == r.end - 1
        assert all(b - a - 1 <= max_gap for a, b in itertools.pairwise(covered))
    # splitting never loses a point
    for r in requests:
        assert sorted(p.name for s in split_request(r) for p in s.points) == sorted(p.name for p in r.points)
