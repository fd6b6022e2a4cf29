"""The list-based accumulators and frames against plain per-value definitions; the close in slices; the hot
path without numpy."""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import Quality, Reading
from edge_agent.pipeline import Pipeline
from edge_agent.records import Priority, RawJson
from edge_agent.summaries import SLICE_POINTS, SummaryAggregator
from edge_agent.telemetry import ChangeFilter, CycleFrame, RawTelemetrySettings, TelemetryEncoder

G, U, B = Quality.GOOD, Quality.UNCERTAIN, Quality.BAD
ALL = ["count", "good", "min", "max", "mean", "std", "last", "twa"]


class Reference:
    """One point's statistics, value by value, as the module doc defines them."""

    def __init__(self) -> None:
        self.count = self.good = 0
        self.xs: list[float] = []
        self.last: object = None
        self.prev: tuple[float, float] | None = None
        self.area = self.span = 0.0

    def add(self, value: object, quality: Quality, ts: float) -> None:
        self.count += 1
        if quality is not G or value is None:
            return
        self.good += 1
        if isinstance(value, float) and not math.isfinite(value):
            return
        self.last = value if isinstance(value, (bool, str)) else float(value)  # type: ignore[arg-type]
        if isinstance(value, str):
            return
        x = float(value)  # type: ignore[arg-type]
        if self.prev is not None and ts - self.prev[1] > 0:  # a step back in time weighs nothing
            self.area += self.prev[0] * (ts - self.prev[1])
            self.span += ts - self.prev[1]
        self.prev = (x, ts)
        self.xs.append(x)

    def twa(self, end_s: float) -> float | None:
        if self.prev is None:
            return None
        hold = max(0.0, end_s - self.prev[1])
        area, span = self.area + self.prev[0] * hold, self.span + hold
        return area / span if span > 0 else round(statistics.fmean(self.xs), 6)


def check(body: dict[str, Any], ref: Reference, end_s: float, key: str) -> None:
    assert (body["count"], body["good"], body["last"]) == (ref.count, ref.good, ref.last), key
    assert type(body["last"]) is type(ref.last), key
    if not ref.xs:
        assert body["min"] is None and body["max"] is None and body["mean"] is None and body["twa"] is None, key
        return
    assert body["min"] == min(ref.xs) and body["max"] == max(ref.xs), key
    assert body["mean"] == pytest.approx(statistics.fmean(ref.xs), rel=1e-9, abs=1e-6), key
    if len(ref.xs) > 1:
        assert body["std"] == pytest.approx(statistics.stdev(ref.xs), rel=1e-9, abs=1e-6), key
    else:
        assert body["std"] is None, key
    assert body["twa"] == pytest.approx(ref.twa(end_s), rel=1e-9, abs=1e-6), key


value_st = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-1000, 1000), st.booleans(),
                     st.sampled_from(["auto", "manual", math.inf, math.nan]), st.none())
# mostly regular cycles (every point, in order, good numbers), sometimes anything else
cycle_st = st.one_of(
    st.tuples(st.just("regular"), st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4), st.just(1.0)),
    st.tuples(st.just("regular"), st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4), st.just(1.0)),
    st.tuples(st.just("regular"), st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=4), st.just(-0.5)),
    st.tuples(st.just("mixed"), st.lists(st.tuples(value_st, st.sampled_from([G, G, U, B])), min_size=4,
                                          max_size=4), st.just(1.0)),
    st.tuples(st.just("some"), st.permutations(["a", "b", "c", "d"]), st.integers(1, 3)),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(cycle_st, min_size=1, max_size=30))
def test_accumulators_match_the_per_value_definition(cycles: list[Any]) -> None:
    names = ["a", "b", "c", "d"]
    keys = [f"d/{n}" for n in names]
    agg = SummaryAggregator({"asset": keys}, dict.fromkeys(keys, "u"), ALL, start_s=0.0)
    ref = {n: Reference() for n in names}
    ts = 100.0
    rng = random.Random(len(cycles))
    for kind, data, step in cycles:
        ts += step if kind != "some" else 0.25
        if kind == "regular":
            readings = [Reading(n, v, G, ts) for n, v in zip(names, data, strict=True)]
        elif kind == "mixed":
            readings = [Reading(n, v, q, ts) for n, (v, q) in zip(names, data, strict=True)]
        else:  # a subset in another order, each with its own time
            readings = [Reading(n, rng.uniform(-5, 5), G, ts + 0.01 * i) for i, n in enumerate(data[:step])]
        agg.add("d", readings)
        for r in readings:
            ref[r.point].add(r.value, r.quality, r.receive_ts)
    end = ts + 3.0
    (_, body), = agg.close(end)
    for n, key in zip(names, keys, strict=True):
        check(body["points"][key], ref[n], end, key)  # type: ignore[index]


@pytest.mark.parametrize("offset", [0.0, 1e9])
def test_std_and_mean_of_a_large_offset_with_small_noise(offset: float) -> None:
    rng = random.Random(7)
    xs = [offset + rng.gauss(0.0, 0.5) for _ in range(200)]
    xs[0] += 40.0  # the first value (the shift) far from the rest
    agg = SummaryAggregator({"a": ["d/p"]}, {"d/p": ""}, ["mean", "std"], start_s=0.0)
    for k, x in enumerate(xs):
        agg.add("d", [Reading("p", x, G, 1.0 + k)])
    (_, body), = agg.close(1000.0)
    point: dict[str, Any] = body["points"]["d/p"]  # type: ignore[index]
    assert point["std"] == pytest.approx(statistics.stdev(xs), abs=1e-6)  # exact: Fractions inside
    assert point["mean"] == pytest.approx(statistics.fmean(xs), abs=1e-6)


def test_mixed_deadband_is_the_larger_of_absolute_and_percent() -> None:
    flt = ChangeFilter(RawTelemetrySettings("d", "on_change", 1, 60.0, (1.0, 10.0)))
    seq = [5.0, 5.9, 6.1, 50.0, 54.0, 55.1, 55.1]
    # 5 first; 5.9 within 1; 6.1 moves 1.1 (> 1 and > 0.5); 50 yes; 54 within 5.0 (10 %); 55.1 moves 5.1; same
    sent = [bool(flt.select(CycleFrame("d", [Reading("x", v, G, t)]), t)) for t, v in enumerate(seq)]
    assert sent == [True, False, True, True, False, True, False]


def test_frame_columns_of_odd_values() -> None:
    f = CycleFrame("d", [Reading("a", 1, G, 1.0), Reading("b", True, G, 1.0), Reading("c", "txt", G, 1.0),
                         Reading("d", None, B, 1.0), Reading("e", math.inf, G, 1.0), Reading("f", 2.5, G, 2.0,
                                                                                             source_ts=3.0)])
    assert f.exceptions() == [2, 3, 4]
    assert f.not_good() == [3]
    assert f.bool_positions() == [1]
    assert f.timestamps() == [1.0, 1.0, 1.0, 1.0, 1.0, 3.0]
    numbers = f.numbers()
    assert numbers[:2] == [1.0, 1.0] and numbers[5] == 2.5 and all(math.isnan(v) for v in numbers[2:5])


@pytest.mark.parametrize("values", [[1.5, -2.0, 1e300, 5e-324, 0.1], [1, 2.5, -7, 10**18, 0.0]])
def test_plain_payload_is_byte_identical_to_the_dict_one(values: list[Any]) -> None:
    names = ["a", 'q"uote', "pct%d", "ünï", "back\\slash"]
    encoder = TelemetryEncoder("gw", "d")
    plain = encoder.encode(1.0, names, values, {}, ts_ms=5, plain=True)
    generic = encoder.encode(1.0, names, values, {}, ts_ms=5)
    assert json.loads(plain)["id"] != json.loads(generic)["id"]
    assert plain.split(b'","ts"')[1] == generic.split(b'","ts"')[1]


def test_the_close_is_built_in_slices_and_polls_run_between_them() -> None:
    names = [f"p{i:04d}" for i in range(4 * SLICE_POINTS)]
    keys = [f"plc/{n}" for n in names]
    emitted: list[dict[str, object]] = []

    async def emit(topic: str, body: dict[str, object], priority: Priority) -> None:
        emitted.append(body)

    pipeline = Pipeline(SummaryAggregator({"plc": keys}, dict.fromkeys(keys, "bar"), ALL, 0.0),
                        dict.fromkeys(keys, "bar"), emit)
    for k in range(3):
        pipeline.on_readings("plc", [Reading(n, float(i + k), G, 1.0 + k) for i, n in enumerate(names)])

    async def run() -> int:
        close = asyncio.create_task(pipeline.close_summary_interval(10.0))
        await asyncio.sleep(0)  # the close has taken the interval out and yielded
        assert not close.done() and not emitted
        # the poll tick on the boundary: its readings belong to the next interval
        pipeline.on_readings("plc", [Reading(n, -1.0, G, 10.0) for n in names])
        ticks = 0
        while not close.done():  # a poll loop that only counts how often it got the loop during the close
            ticks += 1
            await asyncio.sleep(0)
        assert await close == 1
        return ticks

    ticks = asyncio.run(run())
    assert ticks >= 4  # at least one pass through the loop per slice of SLICE_POINTS points
    points = emitted[0]["points"]
    assert isinstance(points, RawJson)  # the points leave the pipeline as JSON text
    point: dict[str, Any] = points.value()["plc/p0001"]
    assert (point["count"], point["min"], point["max"], point["last"]) == (3, 1.0, 3.0, 3.0)
    (_, nxt), = pipeline.summaries.close(20.0)
    assert nxt["points"]["plc/p0001"]["count"] == 1 and nxt["points"]["plc/p0001"]["min"] == -1.0  # type: ignore[index]


def test_the_hot_path_does_not_import_numpy() -> None:
    code = ("import sys\nimport drivers.base\nbase = 'numpy' in sys.modules\n"
            "import edge_agent.pipeline, edge_agent.telemetry, edge_agent.summaries\n"
            "print(base, 'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    if out[0] == "True":
        pytest.skip("drivers.base still imports numpy (the Modbus codec change has not landed)")
    assert out == ["False", "False"], "edge_agent.pipeline, telemetry or summaries imports numpy"


@pytest.mark.parametrize("layout", ["regular", "general"])
def test_a_step_back_in_time_weighs_nothing(layout: str) -> None:
    agg = SummaryAggregator({"a": ["d/p", "d/q"]}, {"d/p": "", "d/q": ""}, ["twa"], start_s=0.0)
    q = "text" if layout == "general" else 1.0  # a string in the cycle takes the general path
    for ts, v in [(0.0, 10.0), (1.0, 20.0), (0.5, 30.0)]:
        agg.add("d", [Reading("p", v, G, ts), Reading("q", q, G, ts)])
    (_, body), = agg.close(2.0)
    # 10 held 1 s; 20 -> 30 steps back 0.5 s: no weight; 30 held from 0.5 s to the end (1.5 s)
    assert body["points"]["d/p"]["twa"] == pytest.approx((10 * 1 + 30 * 1.5) / 2.5)  # type: ignore[index]


def test_tiny_values_keep_their_digits() -> None:
    """Means and spreads of 1e-7-scale values (a leak current in A) were rounded to 0.0, the mean falling
    outside [min, max]; large ones keep their six decimals."""
    agg = SummaryAggregator({"a": ["d/p", "d/q"]}, {"d/p": "A", "d/q": ""}, ["min", "max", "mean", "std", "twa"],
                            start_s=0.0)
    for k, (p, q) in enumerate([(2.0e-7, 1e9 + 0.25), (2.6e-7, 1e9 + 0.5), (2.3e-7, 1e9 + 0.75)]):
        agg.add("d", [Reading("p", p, G, float(k)), Reading("q", q, G, float(k))])
    (_, body), = agg.close(3.0)
    p_stats: dict[str, Any] = body["points"]["d/p"]  # type: ignore[index]
    assert p_stats["min"] <= p_stats["mean"] <= p_stats["max"]
    assert p_stats["mean"] == pytest.approx(2.3e-7, rel=1e-6)
    assert p_stats["std"] == pytest.approx(statistics.stdev([2.0e-7, 2.6e-7, 2.3e-7]), rel=1e-6)
    assert p_stats["twa"] == pytest.approx(2.3e-7, rel=1e-6)
    assert body["points"]["d/q"]["mean"] == pytest.approx(1e9 + 0.5, abs=1e-6)  # type: ignore[index]


def test_a_value_stamped_before_the_interval_weighs_from_its_start() -> None:
    """An OPC UA value unchanged for an hour comes with its old source time: its weight starts at the
    interval start, not an hour before (it dominated the time-weighted mean)."""
    agg = SummaryAggregator({"a": ["d/p"]}, {"d/p": ""}, ["twa"], start_s=1000.0)
    for k in range(30):
        agg.add("d", [Reading("p", 50.0, G, 1000.0 + k, source_ts=1000.0 - 3600.0)])
    agg.add("d", [Reading("p", 60.0, G, 1030.0, source_ts=1030.0)])
    (_, body), = agg.close(1060.0)
    assert body["points"]["d/p"]["twa"] == pytest.approx(55.0)  # type: ignore[index]
