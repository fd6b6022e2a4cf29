"""The footprint benchmark's measuring helpers against known answers (no processes, no sockets).

Run: ``.venv/bin/pytest benchmarks/test_footprint_helpers.py``
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from footprint_config import Endpoints, ReferenceLoad, build_config, write_config
from footprint_probe import (
    CLOCK_TICKS_PER_S,
    ProcSample,
    bucket_delta,
    counter_total,
    cpu_percent,
    histogram_buckets,
    histogram_label_values,
    quantile,
    read_proc,
    rss_trend,
)
from footprint_pyspy import by_subsystem, hottest_frames, parse_collapsed, short_frame

from drivers.base import Quality, Reading
from edge_agent.config import load_config
from edge_agent.metrics import AgentMetrics

MB = 1024 * 1024


def sample(t_s: float, rss_mb: float, cpu_s: float = 0.0) -> ProcSample:
    return ProcSample(t_s, cpu_s, int(rss_mb * MB), int(rss_mb * MB))


# ------------------------------------------------------------------------------------------------ /proc
def test_read_proc_parses_stat_with_spaces_in_the_name_and_status(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    # proc(5): pid (comm) state ppid ... field 14 utime = 250 ticks, field 15 stime = 50 ticks
    fields = ["S", "1"] + ["0"] * 9 + ["250", "50"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text("42 (edge agent (x)) " + " ".join(fields) + "\n")
    (tmp_path / "42" / "status").write_text("Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n")
    s = read_proc(42, 7.0, proc=tmp_path)
    assert s.cpu_s == pytest.approx(300 / CLOCK_TICKS_PER_S)
    assert (s.t_s, s.rss_bytes, s.hwm_bytes) == (7.0, 100 * MB, 200 * MB)


def test_read_proc_of_this_process_and_a_missing_one() -> None:
    me = read_proc(os.getpid(), time.monotonic())
    assert me.rss_bytes > 1 * MB and me.hwm_bytes >= me.rss_bytes and me.cpu_s > 0
    with pytest.raises(ProcessLookupError, match="gone"):
        read_proc(2**22 + 12345, 0.0)


def test_cpu_percent_is_cpu_seconds_over_wall_seconds() -> None:
    assert cpu_percent(sample(10.0, 1, cpu_s=2.0), sample(110.0, 1, cpu_s=27.0)) == pytest.approx(25.0)
    with pytest.raises(ValueError, match="time order"):
        cpu_percent(sample(5.0, 1), sample(5.0, 1))


# ------------------------------------------------------------------------------------------------ trend
def test_rss_trend_recovers_a_known_slope_exactly() -> None:
    samples = [sample(t, 100 + 0.5 * t / 60) for t in range(0, 600, 10)]  # +0.5 MB per minute
    trend = rss_trend(samples)
    assert trend.slope * 60 / MB == pytest.approx(0.5, rel=1e-6)
    assert trend.stderr < 1e-6 * trend.slope and trend.n == 60


def test_rss_trend_of_a_flat_noisy_series_is_not_significant() -> None:
    wiggle = [0.3, -0.2, 0.1, -0.3, 0.2, -0.1] * 5
    trend = rss_trend([sample(10.0 * i, 100 + w) for i, w in enumerate(wiggle)])
    assert abs(trend.slope) <= 2 * trend.stderr


def test_rss_trend_needs_two_distinct_times() -> None:
    with pytest.raises(ValueError, match="at least two"):
        rss_trend([sample(0, 1)])
    with pytest.raises(ValueError, match="same time"):
        rss_trend([sample(3, 1), sample(3, 2)])
    assert math.isinf(rss_trend([sample(0, 1), sample(1, 2)]).stderr)


# ------------------------------------------------------------------------------------------------ metrics
def scrape(metrics: AgentMetrics) -> str:
    body, _ = metrics.render()
    return body.decode()


def test_histograms_from_the_agents_own_metrics_give_known_quantiles() -> None:
    metrics = AgentMetrics(process=False)
    reading = Reading("p", 1.0, Quality.GOOD, 0.0)
    for lateness_s in [0.001] * 95 + [0.015] * 4 + [0.3]:  # 100 cycles of plc-1
        metrics.observe_poll("plc-1", duration_s=0.01, lateness_s=lateness_s, requests=6, readings=[reading])
    before = scrape(metrics)
    for _ in range(50):  # 50 later cycles of plc-2, all 3 ms late
        metrics.observe_poll("plc-2", duration_s=0.2, lateness_s=0.003, requests=1)
    after = scrape(metrics)

    jitter_1 = histogram_buckets(after, "edge_agent_poll_jitter_seconds", {"device": "plc-1"})
    q99 = quantile(jitter_1, 0.99)
    assert (q99.count, q99.upper_bound) == (100, 0.02)  # the 99th of 100 observations is 15 ms
    assert 0.01 < q99.interpolated <= 0.02
    assert quantile(jitter_1, 0.5).upper_bound == 0.001
    assert quantile(jitter_1, 0.999).upper_bound == 0.5  # the one 300 ms outlier

    window = bucket_delta(histogram_buckets(before, "edge_agent_poll_jitter_seconds"),
                          histogram_buckets(after, "edge_agent_poll_jitter_seconds"))
    only_new = quantile(window, 0.99)
    assert (only_new.count, only_new.upper_bound) == (50, 0.005)  # plc-1's history is not in the window

    assert histogram_label_values(after, "edge_agent_poll_jitter_seconds", "device") == ["plc-1", "plc-2"]
    assert counter_total(after, "edge_agent_poll_cycles") == 150
    assert counter_total(after, "edge_agent_poll_cycles", {"device": "plc-2"}) == 50
    assert counter_total(after, "edge_agent_readings", {"device": "plc-1", "quality": "good"}) == 100
    assert histogram_buckets(after, "no_such_histogram") == {}


def test_quantile_edge_cases() -> None:
    assert quantile({0.1: 0.0, math.inf: 0.0}, 0.99).count == 0
    beyond = quantile({0.1: 1.0, math.inf: 10.0}, 0.99)
    assert math.isinf(beyond.upper_bound) and beyond.interpolated == 0.1
    with pytest.raises(ValueError, match="between 0 and 1"):
        quantile({1.0: 1.0}, 1.0)


# ------------------------------------------------------------------------------------------------ py-spy
def test_collapsed_stacks_give_self_and_total_shares() -> None:
    lines = [
        "<module> (/x/.venv/bin/edge-agent:8);run (/usr/lib/python3.11/asyncio/runners.py:118);"
        "decode (/x/.venv/lib/python3.11/site-packages/asyncua/ua/uatypes.py:10) 60",
        "<module> (/x/.venv/bin/edge-agent:8);run (/usr/lib/python3.11/asyncio/runners.py:118) 30",
        "worker (/usr/lib/python3.11/threading.py:1) 10",
        "",
    ]
    stacks = parse_collapsed(lines)
    assert sum(stacks.values()) == 100
    top = {f.frame: f for f in hottest_frames(stacks)}
    decode = top["decode (asyncua/ua/uatypes.py)"]
    assert (decode.self_pct, decode.total_pct) == (60.0, 60.0)
    run = top["run (stdlib/asyncio/runners.py)"]
    assert (run.self_pct, run.total_pct) == (30.0, 90.0)
    assert next(iter(top)) == "decode (asyncua/ua/uatypes.py)"  # ranked by self share
    assert hottest_frames(Counter()) == []
    assert by_subsystem(stacks) == [("OPC UA (asyncua: sessions, subscriptions, waveform arrays)", 60.0),
                                    ("event loop and other", 40.0)]
    assert by_subsystem(Counter()) == []
    with pytest.raises(ValueError, match="collapsed-stack"):
        parse_collapsed(["garbage"])


def test_short_frame_keeps_unknown_shapes() -> None:
    assert short_frame("odd frame") == "odd frame"
    assert short_frame("f (<string>:3)") == "f (<string>)"


# ------------------------------------------------------------------------------------------------ config
def test_reference_load_config_validates_with_the_agents_loader(tmp_path: Path) -> None:
    load = ReferenceLoad()
    endpoints = Endpoints(1883, 5020, "opc.tcp://127.0.0.1:4840/edge-agent/sim", 9100)
    path = write_config(build_config(load, endpoints, tmp_path / "data"), tmp_path / "f.yaml")
    cfg = load_config(path)
    by_kind: Counter[str] = Counter()
    for device in cfg.devices:
        for point in device.points:
            mode = getattr(point, "mode", "poll")
            by_kind[f"{device.protocol}:{point.kind}:{mode}"] += 1
    assert by_kind == {"modbus_tcp:value:poll": 2000, "opcua:value:subscribe": 500, "opcua:waveform:poll": 4}
    assert {d.poll_interval for d in cfg.devices if d.protocol == "modbus_tcp"} == {1.0}
    assert cfg.device("vib").poll_interval == 10.0
    assert cfg.summaries.interval == 60.0 and len(cfg.rules) == 20
    assert cfg.service.health.enabled and cfg.service.health.port == 9100
    assert [len(a.bearings) for a in cfg.assets] == [2, 2]


def test_reference_load_refuses_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="modbus_devices"):
        ReferenceLoad(modbus_points=3, modbus_devices=4)
    with pytest.raises(ValueError, match="waveform_poll_s"):
        ReferenceLoad(waveform_poll_s=0)
    with pytest.raises(ValueError, match="limit_rules"):
        ReferenceLoad(modbus_points=10, modbus_devices=1, limit_rules=11)
