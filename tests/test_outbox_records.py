"""The wire envelope and payload encoding (edge_agent.records)."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest

from edge_agent.records import Priority, decode_payload, encode_payload, make_envelope, new_record_id


def test_priority_order_alerts_highest_telemetry_lowest() -> None:
    assert sorted(Priority, reverse=True)[0] is Priority.ALERT
    assert sorted(Priority)[0] is Priority.TELEMETRY
    assert Priority.TELEMETRY < Priority.SUMMARY < Priority.VIBRATION < Priority.ALERT
    assert Priority.STATUS < Priority.ALERT


def test_envelope_has_version_id_utc_ms_and_agent() -> None:
    before_ms = int(time.time() * 1000)
    env = make_envelope({"asset": "pump-1", "points": {}}, "gw-demo")
    after_ms = int(time.time() * 1000)
    assert env["v"] == 1
    assert env["agent"] == "gw-demo"
    assert before_ms <= env["ts"] <= after_ms
    assert uuid.UUID(env["id"]).version == 7
    assert env["asset"] == "pump-1"
    assert list(env)[:4] == ["v", "id", "ts", "agent"]


def test_envelope_ts_can_be_given() -> None:
    assert make_envelope({}, "gw", ts_ms=1795430400000)["ts"] == 1795430400000


def test_envelope_refuses_body_fields_that_shadow_envelope_fields() -> None:
    with pytest.raises(ValueError, match=r"\['ts'\].*collide"):
        make_envelope({"ts": 5}, "gw")
    with pytest.raises(ValueError, match="agent_id"):
        make_envelope({}, "")


def test_ids_are_unique_and_sort_in_creation_order() -> None:
    ids = [new_record_id() for _ in range(20_000)]  # many per millisecond: the counter keeps the order
    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    ms = uuid.UUID(ids[0]).int >> 80
    assert abs(ms - time.time() * 1000) < 60_000


def test_payload_is_compact_utf8_json_and_round_trips() -> None:
    obj = {"v": 1, "unit": "°C", "values": [1, 2.5, None], "ok": True}
    raw = encode_payload(obj)
    assert raw == '{"v":1,"unit":"°C","values":[1,2.5,null],"ok":true}'.encode()
    assert decode_payload(raw) == obj


def test_numpy_values_are_encoded_as_plain_numbers() -> None:
    raw = encode_payload({"rms_mm_s": np.float64(2.5), "n": np.int64(3), "spectrum": np.array([1.0, 2.0])})
    assert json.loads(raw) == {"rms_mm_s": 2.5, "n": 3, "spectrum": [1.0, 2.0]}


def test_nan_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"\$\.points\.speed\.mean is NaN"):
        encode_payload({"points": {"speed": {"mean": float("nan")}}})


def test_unencodable_type_names_the_type() -> None:
    with pytest.raises(TypeError, match="cannot encode object"):
        encode_payload({"x": object()})


def test_decode_refuses_non_objects() -> None:
    with pytest.raises(ValueError, match="expected an object"):
        decode_payload(b"[1, 2]")
