"""Summary statistics against hand-computed answers."""

from __future__ import annotations

import statistics

import pytest

from drivers.base import Quality, Reading
from edge_agent.summaries import SummaryAggregator


def _r(point: str, value: object, ts: float, quality: Quality = Quality.GOOD) -> Reading:
    return Reading(point=point, value=value, quality=quality, receive_ts=ts)  # type: ignore[arg-type]


def test_interval_statistics_per_asset() -> None:
    agg = SummaryAggregator(
        {"pump-1": ["plc/speed", "plc/temp"], "tank": ["plc/level"]},
        {"plc/speed": "rpm", "plc/temp": "degC", "plc/level": "%"},
        ["count", "good", "min", "max", "mean", "std", "last", "twa"],
        start_s=100.0,
    )
    speeds = [1490, 1500, 1502, 1497]
    for i, v in enumerate(speeds):
        agg.add("plc", [_r("speed", v, 100.0 + i), _r("temp", 40.0 + i, 100.0 + i)])
    agg.add("plc", [_r("temp", None, 104.0, Quality.BAD), _r("unknown", 1, 104.0)])
    out = dict(agg.close(110.0))
    speed = out["pump-1"]["points"]["plc/speed"]  # type: ignore[index]
    assert speed["count"] == 4 and speed["good"] == 4
    assert speed["min"] == 1490 and speed["max"] == 1502 and speed["last"] == 1497
    assert speed["mean"] == pytest.approx(statistics.mean(speeds))
    assert speed["std"] == pytest.approx(statistics.stdev(speeds), rel=1e-6)
    assert speed["unit"] == "rpm"
    # Sample-and-hold over [100, 110): 1490,1500,1502 for 1 s each, 1497 held for 7 s.
    assert speed["twa"] == pytest.approx((1490 + 1500 + 1502 + 1497 * 7) / 10)
    temp = out["pump-1"]["points"]["plc/temp"]  # type: ignore[index]
    assert temp["count"] == 5 and temp["good"] == 4 and temp["last"] == 43.0
    level = out["tank"]["points"]["plc/level"]  # type: ignore[index]
    assert level["count"] == 0 and level["min"] is None and level["mean"] is None
    assert out["pump-1"]["start"] == 100_000 and out["pump-1"]["end"] == 110_000


def test_next_interval_starts_empty() -> None:
    agg = SummaryAggregator({"a": ["d/p"]}, {"d/p": ""}, ["count", "mean"], start_s=0.0)
    agg.add("d", [_r("p", 5.0, 1.0)])
    agg.close(10.0)
    agg.add("d", [_r("p", 7.0, 11.0)])
    (asset, body), = agg.close(20.0)
    assert asset == "a"
    assert body["points"] == {"d/p": {"count": 1, "mean": 7.0, "unit": ""}}
    assert body["start"] == 10_000
