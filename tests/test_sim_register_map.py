"""The register map: the committed doc matches the code, the map is consistent, encoder == codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.modbus.codec import decode_point
from drivers.modbus.spec import ModbusPointSpec
from drivers.sim.plant import Plant
from drivers.sim.register_map import (
    REGISTER_MAP,
    WAVEFORM_SOURCE,
    MapEntry,
    check_register_map,
    encode_entry,
    render_register_map_markdown,
    synthetic_register_map,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "register-map.md"


def test_committed_doc_equals_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == render_register_map_markdown(), (
        "docs/register-map.md is stale: run python -m drivers.sim.register_map > docs/register-map.md"
    )


def test_map_covers_the_types_and_byte_orders_it_promises() -> None:
    points = [e.point for e in REGISTER_MAP]
    types = {p.type for p in points}
    assert {"uint16", "int16", "int32", "uint32", "uint64", "float32", "float64", "string", "bool"} <= types
    assert {p.byte_order for p in points if p.type == "float32"} >= {"ABCD", "CDAB", "BADC"}
    assert {p.table for p in points} == {"holding", "input", "coil", "discrete"}
    assert any(p.bit is not None for p in points) and any(p.enum for p in points)
    assert any(p.kind == "waveform" for p in points)


def test_overlaps_and_dangling_bit_views_are_rejected() -> None:
    a = MapEntry("motor.speed_rpm", ModbusPointSpec("a", "holding", 0, "float32"), "")
    b = MapEntry("motor.speed_rpm", ModbusPointSpec("b", "holding", 1), "")
    with pytest.raises(ValueError, match="holding 1 is written by both 'a' and 'b'"):
        check_register_map([a, b])
    view = MapEntry("motor.running", ModbusPointSpec("v", "holding", 9, "bool", bit=0), "")
    with pytest.raises(ValueError, match="'v' reads holding 9, which no entry writes"):
        check_register_map([a, view])


@pytest.mark.parametrize("t_s", [0.0, 100.0, 3030.0, 61200.0])
def test_simulator_encoder_agrees_with_the_driver_codec(t_s: float) -> None:
    plant = Plant(seed=11)
    plant.update(t_s)
    for entry in REGISTER_MAP:
        p = entry.point
        if entry.is_bit_view or entry.source == WAVEFORM_SOURCE or entry.source.startswith("vibration"):
            continue
        want = plant.value(entry.source)
        got = decode_point(p, encode_entry(p, want))
        if isinstance(want, bool | str) or p.enum is not None:
            assert got == want
        elif p.type.startswith("float"):
            assert got == pytest.approx(want, rel=1e-6)
        else:
            assert isinstance(got, int | float)
            assert abs(got - float(want)) <= p.scale / 2 + 1e-9, p.name


def test_integers_saturate_like_a_plc_instead_of_wrapping() -> None:
    p = ModbusPointSpec("x", "holding", 0, "int16", scale=0.1)
    assert encode_entry(p, 1e6) == [0x7FFF]
    assert encode_entry(p, -1e6) == [0x8000]


def test_synthetic_map_packs_points_back_to_back() -> None:
    entries = synthetic_register_map(1000)
    check_register_map(entries)
    assert len(entries) == 1000
    last = entries[-1].point
    assert last.address + last.register_count == 250 * (1 + 1 + 2 + 2)
    with pytest.raises(ValueError, match="do not fit"):
        synthetic_register_map(50000)
