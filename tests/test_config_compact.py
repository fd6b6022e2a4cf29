"""Config points after compaction: same values and behaviour as pydantic built them, in less memory.

A 10 000-point gateway keeps 10 000 point models for its whole life; ``compact_model`` rebuilds them with a
key-sharing ``__dict__`` and shared fields-sets, and names are interned so that every runtime map keyed by
them holds one string per point.
"""

from __future__ import annotations

import platform
import sys

import pytest
from pydantic import BaseModel, ValidationError

from edge_agent.config import AgentConfig
from edge_agent.config._base import compact_model
from edge_agent.config.modbus import ModbusPoint
from edge_agent.driver_factory import point_key

RAW_POINTS = [
    {"name": "speed", "address": "40001", "type": "uint16", "unit": "rpm"},
    {"name": "temp", "address": 1, "type": "float32", "byte_order": "CDAB", "scale": 0.1, "unit": "degC"},
    {"name": "run", "table": "coil", "address": 3},
    {"name": "state", "address": 3, "enum": {0: "off", 1: "on"}},
    {"name": "wave", "address": 100, "kind": "waveform", "count": 64, "sample_rate": "2kHz"},
    {"name": "level", "address": 4, "type": "int16", "publish_deadband": 0.5},
]


def config_with(points: list[dict[str, object]]) -> AgentConfig:
    return AgentConfig.model_validate({
        "agent": {"id": "gw", "site": "plant"}, "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "publish_raw": "on_change",
                     "points": points}],
    })


def test_compacted_points_equal_freshly_validated_ones() -> None:
    compacted = config_with(RAW_POINTS).devices[0].points
    for raw, point in zip(RAW_POINTS, compacted, strict=True):
        fresh = ModbusPoint.model_validate(raw)
        assert point == fresh
        assert point.model_dump() == fresh.model_dump()
        assert point.model_dump(exclude_unset=True) == fresh.model_dump(exclude_unset=True)
        assert point.model_fields_set == fresh.model_fields_set
        assert repr(point) == repr(fresh)


def test_points_are_frozen_and_copies_do_not_share_fields_set() -> None:
    a, b = config_with([{"name": "a", "address": 0}, {"name": "b", "address": 1}]).devices[0].points
    assert a.model_fields_set is b.model_fields_set  # same fields written: one shared set
    with pytest.raises(ValidationError, match="frozen"):
        a.unit = "bar"
    changed = a.model_copy(update={"unit": "bar"})
    assert changed.unit == "bar" and "unit" in changed.model_fields_set
    assert "unit" not in a.model_fields_set and "unit" not in b.model_fields_set


@pytest.mark.skipif(platform.python_implementation() != "CPython", reason="key-sharing dicts are CPython's")
def test_compacted_point_dict_is_smaller_than_pydantics() -> None:
    point = config_with(RAW_POINTS[:1]).devices[0].points[0]
    fresh = ModbusPoint.model_validate(RAW_POINTS[0])
    assert point.__dict__ == fresh.__dict__
    assert sys.getsizeof(point.__dict__) < sys.getsizeof(fresh.__dict__)


def test_only_frozen_models_are_compacted() -> None:
    class Loose(BaseModel):
        x: int

    with pytest.raises(TypeError, match="Loose must be frozen"):
        compact_model(Loose(x=1))


def test_names_and_point_keys_are_interned() -> None:
    point = config_with(RAW_POINTS[:1]).devices[0].points[0]
    assert point.name is sys.intern("".join(["spe", "ed"]))
    assert point_key("plc", "speed") is point_key("".join(["pl", "c"]), "speed")


def test_shared_fields_sets_go_with_the_last_config_that_uses_them() -> None:
    import gc

    from edge_agent.config._base import _SHARED_FIELDS_SETS

    gc.collect()
    before = len(_SHARED_FIELDS_SETS)
    # a pushed config whose points each write a different combination of optional fields
    optional = ["unit", "scale", "offset", "table", "publish_deadband", "byte_order"]
    values: dict[str, object] = {"unit": "bar", "scale": 2.0, "offset": 1.0, "table": "input",
                                 "publish_deadband": 0.5, "byte_order": "CDAB"}
    points = [{"name": f"p{i}", "address": 2 * i, "type": "float32",
               **{f: values[f] for k, f in enumerate(optional) if i >> k & 1}} for i in range(64)]
    cfg = config_with(points)
    assert len(_SHARED_FIELDS_SETS) >= before + 32
    kept = cfg.devices[0].points[5]
    del cfg, points
    gc.collect()
    assert len(_SHARED_FIELDS_SETS) <= before + 1  # only the set the kept point still uses
    assert kept.model_fields_set == {"name", "address", "type", "unit", "offset"}
