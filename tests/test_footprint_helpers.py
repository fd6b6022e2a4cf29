"""The footprint benchmark's measuring helpers (``benchmarks/footprint_*.py``) against known answers (no
processes, no sockets; a few seconds).

The helpers live in ``benchmarks/`` next to ``bench_footprint.py``, which imports them as top-level modules:
that directory goes on ``sys.path`` before they are imported.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from drivers.base import Quality, Reading
from edge_agent.config import load_config
from edge_agent.metrics import AgentMetrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

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
from footprint_tracemalloc import COLUMNS, agent_env, report, sample_row, slope_per_h

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


# ------------------------------------------------------------------------------------------------ tracemalloc
def test_slope_per_h_recovers_a_known_slope() -> None:
    rows = [{"t_s": t, "rss": 50 * MB + t * 1000.0} for t in (0.0, 150.0, 300.0, 450.0)]  # 1000 B/s
    assert slope_per_h(rows, "rss") == pytest.approx(3600 * 1000.0)
    assert slope_per_h(rows[:1], "rss") == 0.0


def test_sample_row_of_this_process_has_every_column(tmp_path: Path) -> None:
    (tmp_path / "outbox.sqlite").write_bytes(b"x" * 4096)
    (tmp_path / "outbox.sqlite-wal").write_bytes(b"x" * 1000)
    (tmp_path / "other.txt").write_bytes(b"x" * 77)
    row = sample_row(12.34, tmp_path)
    assert set(row) == set(COLUMNS)
    assert row["t_s"] == 12.3 and row["db_files"] == 5096
    assert row["rss"] >= row["rss_anon"] > 1 * MB and row["threads"] >= 1 and row["fds"] >= 3


def test_agent_env_writes_a_sitecustomize_that_installs_the_probe(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    env = agent_env(tmp_path / "site", tmp_path / "out", 150.0, frames=4, db_dir=tmp_path / "data")
    assert env == {"PYTHONTRACEMALLOC": "4", "PYTHONPATH": str(tmp_path / "site"),
                   "FOOTPRINT_TM_DIR": str(tmp_path / "out"), "FOOTPRINT_TM_EVERY": "150",
                   "FOOTPRINT_TM_DB_DIR": str(tmp_path / "data")}
    text = (tmp_path / "site" / "sitecustomize.py").read_text()
    assert "footprint_tracemalloc.install()" in text
    # frames=0: sampling without tracing; an inherited PYTHONPATH (a source tree) stays, after the probe's
    monkeypatch.setenv("PYTHONPATH", "/src")
    env = agent_env(tmp_path / "site", tmp_path / "out", 60.0, frames=0)
    assert env == {"PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}/src", "FOOTPRINT_TM_DIR": str(tmp_path / "out"),
                   "FOOTPRINT_TM_EVERY": "60"}


def _grow(kept: list[bytes]) -> None:
    block = bytes(200_000)  # the growing site: the line after the def
    kept.append(block)


def test_report_finds_the_growing_allocation_site(tmp_path: Path) -> None:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    kept: list[bytes] = []
    try:
        for n in range(3):
            _grow(kept)
            tracemalloc.take_snapshot().dump(str(tmp_path / f"snap-{n:04d}.pickle"))
    finally:
        if started:
            tracemalloc.stop()
    with (tmp_path / "timeline.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()
        for n in range(3):  # 3600 s apart; RSS +1 MB per row
            writer.writerow({c: 0 for c in COLUMNS} | {"t_s": 3600 * n, "rss": (40 + n) * MB})
    text = report(tmp_path, base=0, top=3)
    assert "- rss: +1.000 MB/h" in text
    where = f"`tests/test_footprint_helpers.py:{_grow.__code__.co_firstlineno + 1}`"
    row = next(line for line in text.splitlines() if line.startswith(f"| {where}"))
    # one more block of 200 000 bytes (plus the bytes object's header) each hour, 3 blocks at the end
    first_kib, last_kib, slope_kib, grown, blocks = row.strip("| ").split(" | ")[1:]
    assert float(first_kib) == pytest.approx(200_000 / 1024, abs=0.1)
    assert float(last_kib) == pytest.approx(3 * 200_000 / 1024, abs=0.2)
    assert float(slope_kib) == pytest.approx(200_000 / 1024, abs=0.1)
    assert (grown, blocks) == ("2/2", "3")
    assert text.index(where) < text.index("Fastest shrinking")
