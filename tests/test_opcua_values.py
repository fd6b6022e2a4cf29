"""DataValues become Readings and Waveforms: quality from status codes, scaling, clear reasons (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from asyncua import ua

from drivers.base import Quality, Reading, Waveform
from drivers.opcua.spec import OpcUaPointSpec
from drivers.opcua.values import epoch_s, status_quality, to_reading, to_waveform


def dv(value: object, vtype: ua.VariantType, status: int | None = None) -> ua.DataValue:
    ts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    if status is None:
        return ua.DataValue(ua.Variant(value, vtype), SourceTimestamp=ts)  # type: ignore[arg-type]
    return ua.DataValue(ua.Variant(value, vtype), StatusCode=ua.StatusCode(status),  # type: ignore[arg-type]
                        SourceTimestamp=ts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "quality"),
    [
        (ua.StatusCodes.Good, Quality.GOOD),
        (ua.StatusCodes.GoodClamped, Quality.GOOD),
        (ua.StatusCodes.UncertainLastUsableValue, Quality.UNCERTAIN),
        (ua.StatusCodes.UncertainSensorNotAccurate, Quality.UNCERTAIN),
        (ua.StatusCodes.BadNodeIdUnknown, Quality.BAD),
        (ua.StatusCodes.BadCommunicationError, Quality.BAD),
    ],
)
def test_status_code_severity_maps_to_quality(code: int, quality: Quality) -> None:
    assert status_quality(ua.StatusCode(code)) is quality


def test_reading_conversion_scales_numbers_and_keeps_uncertain_reason() -> None:
    point = OpcUaPointSpec(name="t", node="ns=2;s=T", scale=0.1, offset=-40.0)
    dv = ua.DataValue(ua.Variant(1000, ua.VariantType.Int32),
                      StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue))
    r = to_reading(point, dv, 123.0)
    assert r.value == pytest.approx(60.0) and r.quality is Quality.UNCERTAIN
    assert r.reason is not None and "UncertainLastUsableValue" in r.reason and r.receive_ts == 123.0
    bad = to_reading(point, ua.DataValue(StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure)), 1.0)
    assert bad.quality is Quality.BAD and bad.value is None and "BadSensorFailure" in str(bad.reason)


def test_source_timestamp_is_utc_epoch_seconds() -> None:
    r = to_reading(OpcUaPointSpec(name="x", node="i=1"), dv(1.5, ua.VariantType.Double), 0.0)
    assert r.source_ts == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()
    assert epoch_s(datetime(1970, 1, 1, 0, 0, 10)) == 10.0  # naive means UTC in OPC UA


def test_the_minimum_datetime_means_no_time() -> None:
    # OPC 10000-6 §5.2.2.5: DateTime 0 (1601-01-01) is "no time"; the server timestamp is used instead
    assert epoch_s(datetime(1601, 1, 1, tzinfo=UTC)) is None
    now = datetime.now(UTC)
    dv = ua.DataValue(ua.Variant(1.0, ua.VariantType.Double), SourceTimestamp=datetime(1601, 1, 1, tzinfo=UTC),
                      ServerTimestamp=now)
    assert to_reading(OpcUaPointSpec(name="x", node="i=1"), dv, 0.0).source_ts == now.timestamp()


def test_types_come_through_and_arrays_need_kind_waveform() -> None:
    point = OpcUaPointSpec(name="x", node="i=1")
    assert to_reading(point, dv(True, ua.VariantType.Boolean), 0.0).value is True
    assert to_reading(point, dv("run", ua.VariantType.String), 0.0).value == "run"
    assert to_reading(point, dv(7, ua.VariantType.UInt32), 0.0).value == 7
    text = to_reading(point, dv(ua.LocalizedText("hi"), ua.VariantType.LocalizedText), 0.0)
    assert text.value == "hi"
    arr = to_reading(point, dv([1.0, 2.0], ua.VariantType.Double), 0.0)
    assert arr.quality is Quality.BAD and "array of 2 values; set kind: waveform" in str(arr.reason)


def wave_point(**kw: object) -> OpcUaPointSpec:
    args: dict[str, object] = {"name": "w", "node": "i=1", "kind": "waveform", "sample_rate_node": "i=2"}
    args.update(kw)
    return OpcUaPointSpec(**args)  # type: ignore[arg-type]


def test_waveform_takes_the_rate_from_the_sibling_node_and_scales() -> None:
    point = wave_point(scale=2.0, offset=1.0, unit="m/s2")
    w = to_waveform(point, dv([0.0, 1.0, 2.0], ua.VariantType.Double), dv(5120, ua.VariantType.UInt32), 0.0)
    assert isinstance(w, Waveform) and w.sample_rate_hz == 5120.0 and w.unit == "m/s2"
    np.testing.assert_array_equal(w.samples, [1.0, 3.0, 5.0])


@pytest.mark.parametrize(
    ("samples", "rate", "message"),
    [
        (3.0, dv(100.0, ua.VariantType.Double), "returned float, not a non-empty array"),
        ([], dv(100.0, ua.VariantType.Double), "not a non-empty array"),
        (["a", "b"], dv(100.0, ua.VariantType.Double), "not numbers"),
        ([1.0, 2.0], dv(0.0, ua.VariantType.Double), "gave 0.0 (Good), not a positive rate in Hz"),
        ([1.0, 2.0], dv(True, ua.VariantType.Boolean), "not a positive rate"),
        ([1.0, 2.0], dv(None, ua.VariantType.Null, ua.StatusCodes.BadNodeIdUnknown), "BadNodeIdUnknown"),
    ],
)
def test_waveform_problems_become_bad_readings_with_the_reason(samples: object, rate: ua.DataValue,
                                                              message: str) -> None:
    vtype = ua.VariantType.String if samples == ["a", "b"] else ua.VariantType.Double
    out = to_waveform(wave_point(), dv(samples, vtype), rate, 0.0)
    assert isinstance(out, Reading) and out.quality is Quality.BAD and message in str(out.reason)
