"""The agent's own exposition against prometheus-client, the reference: same operations, same bytes.

prometheus-client also prints a ``_created`` series per counter and histogram; the agent does not (they are
optional in both formats, and double the series count), so they are removed from the reference first.
"""

from __future__ import annotations

import math
import re
import threading

import prometheus_client as ref
import pytest
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics.exposition import generate_latest as ref_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.utils import floatToGoString

from edge_agent import metrics as ours
from edge_agent.metrics import JITTER_BUCKETS_S, AgentMetrics
from edge_agent.prometheus import (
    MAX_SERIES,
    MetricsRegistry,
    format_value,
    render_openmetrics,
    render_text,
    wants_openmetrics,
)

BUCKETS = (0.001, 0.0075, 0.01, 1.0, 2.5)
AWKWARD = 'quote " backslash \\ newline \n unicode °C µs'


def without_created(text: str) -> str:
    """The reference's output minus its ``_created`` series (and their HELP/TYPE lines)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not re.match(r"(# (HELP|TYPE) )?\w+_created\b", line))


def exercise(counter: object, labelled: object, gauge: object, histogram: object, hist_labelled: object,
             info: object) -> None:
    """The same operations on either library's metric objects."""
    counter.inc()  # type: ignore[attr-defined]
    counter.inc(2.5)  # type: ignore[attr-defined]
    labelled.labels(device="plc-1", quality="good").inc(200)  # type: ignore[attr-defined]
    labelled.labels(device=AWKWARD, quality="bad").inc()  # type: ignore[attr-defined]
    labelled.labels("plc-0", "uncertain").inc(3)  # type: ignore[attr-defined]
    gauge.set(123456789)  # type: ignore[attr-defined]
    gauge.inc(0.5)  # type: ignore[attr-defined]
    gauge.dec(2)  # type: ignore[attr-defined]
    for value in (0.0, 0.001, 0.0075, 0.0076, 1.0, 3.0, 1e-9, 2.5):  # bucket bounds are inclusive
        histogram.observe(value)  # type: ignore[attr-defined]
    hist_labelled.labels(device="b").observe(0.02)  # type: ignore[attr-defined]
    hist_labelled.labels(device="a").observe(7.0)  # type: ignore[attr-defined]
    info.info({"version": "1.2.3", "build": AWKWARD})  # type: ignore[attr-defined]


def reference_registry() -> ref.CollectorRegistry:
    r = ref.CollectorRegistry()
    exercise(ref.Counter("t_events", "Events, with a \\ and a\nnewline in the help.", registry=r),
             ref.Counter("t_readings", "Readings by quality.", ["device", "quality"], registry=r),
             ref.Gauge("t_bytes", 'Bytes "queued".', registry=r),
             ref.Histogram("t_latency_seconds", "Latency, s.", buckets=BUCKETS, registry=r),
             ref.Histogram("t_jitter_seconds", "Jitter, s.", ["device"], buckets=BUCKETS, registry=r),
             ref.Info("t_build", "Build.", registry=r))
    ref.Gauge("t_unused", "Labelled, never set.", ["device"], registry=r)
    return r


def our_registry() -> MetricsRegistry:
    r = MetricsRegistry()
    exercise(ours.Counter("t_events", "Events, with a \\ and a\nnewline in the help.", registry=r),
             ours.Counter("t_readings", "Readings by quality.", ["device", "quality"], registry=r),
             ours.Gauge("t_bytes", 'Bytes "queued".', registry=r),
             ours.Histogram("t_latency_seconds", "Latency, s.", buckets=BUCKETS, registry=r),
             ours.Histogram("t_jitter_seconds", "Jitter, s.", ["device"], buckets=BUCKETS, registry=r),
             ours.Info("t_build", "Build.", registry=r))
    ours.Gauge("t_unused", "Labelled, never set.", ["device"], registry=r)
    return r


def test_text_format_is_byte_for_byte_the_reference() -> None:
    expected = without_created(ref.generate_latest(reference_registry()).decode())
    got = render_text(our_registry().collect()).decode()
    assert got == expected
    assert 't_jitter_seconds_bucket{device="a",le="+Inf"} 1.0' in got  # labels sorted, le last here


def test_openmetrics_is_byte_for_byte_the_reference() -> None:
    expected = without_created(ref_openmetrics(reference_registry()).decode())
    got = render_openmetrics(our_registry().collect()).decode()
    assert got == expected
    assert got.endswith("# EOF\n")
    families = {f.name: f for f in parse_openmetrics(got)}  # the strict parser accepts it
    assert families["t_events"].samples[0].value == 3.5


@pytest.mark.parametrize("value", [0.0, -0.0, 1.0, 3.0, 2.5, -2.5, 1e-9, 0.0075, 123456.0, 1234567.0,
                                   12345678.9, 1.7954465e9, 2.0**53, 1e22, -1e22, math.inf, -math.inf, math.nan])
def test_values_print_like_the_reference(value: float) -> None:
    assert format_value(value) == floatToGoString(value)


@pytest.mark.parametrize("accept", [
    "", "*/*", "text/plain", "text/plain; version=0.0.4", "application/openmetrics-text",
    "application/openmetrics-text; version=1.0.0",
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",  # what Prometheus 2.x sends
    "application/openmetrics-text; version=0.0.1",
    "text/html, application/openmetrics-text; version=1.0.0",
])
def test_format_negotiation_follows_the_reference(accept: str) -> None:
    _, reference_type = choose_encoder(accept)
    assert wants_openmetrics(accept) == reference_type.startswith("application/openmetrics-text")
    body, content_type = AgentMetrics(process=False).render(accept)
    assert content_type.split(";")[0] == reference_type.split(";")[0]
    assert body.endswith(b"# EOF\n") == wants_openmetrics(accept)


def test_the_standard_process_metrics_match_the_reference_collector() -> None:
    got = {f.name: f for f in ours.ProcessCollector().collect()}
    expected = {f.name: f for f in ref.ProcessCollector(registry=None).collect()}
    assert sorted(got) == sorted(expected)  # process_cpu_seconds, ..._open_fds, ..._max_fds, ...
    for name, family in expected.items():
        assert (got[name].kind, got[name].documentation) == (family.type, family.documentation)
        assert [s[0] for s in got[name].samples] == [s.name for s in family.samples]
    start = got["process_start_time_seconds"].samples[0][2]
    assert start == pytest.approx(expected["process_start_time_seconds"].samples[0].value, abs=0.02)
    assert got["process_max_fds"].samples[0][2] == expected["process_max_fds"].samples[0].value


def test_a_hidden_proc_stat_means_no_process_metrics() -> None:
    assert list(ours.ProcessCollector(proc="/nonexistent").collect()) == []


def test_label_sets_are_bounded_and_label_names_checked(caplog: pytest.LogCaptureFixture) -> None:
    r = MetricsRegistry()
    counter = ours.Counter("t_points", "Per point (what the agent never does).", ["point"], registry=r)
    for i in range(MAX_SERIES + 50):
        counter.labels(point=f"p{i}").inc()
    samples = next(iter(r.collect())).samples
    assert len(samples) == MAX_SERIES
    assert sum(value for _n, _l, value in samples) == MAX_SERIES
    assert sum("dropping observations" in m for m in caplog.messages) == 1  # logged once, not per call
    with pytest.raises(ValueError, match="labels must be exactly"):
        counter.labels(device="x")
    with pytest.raises(ValueError, match="expected 1 label value"):
        counter.labels()
    with pytest.raises(ValueError, match="only go up"):
        counter.labels(point="p0").inc(-1)
    with pytest.raises(ValueError, match="reserved"):
        ours.Histogram("t_h", "h", ["le"], buckets=(1.0,))


def test_updates_from_threads_while_scraping_are_all_counted() -> None:
    metrics = AgentMetrics(process=False)
    per_thread, threads = 20_000, 4

    def work() -> None:
        for _ in range(per_thread):
            metrics.published_records.inc()
            metrics.publish_latency_seconds.observe(0.003)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    while any(w.is_alive() for w in workers):
        metrics.render()
    for w in workers:
        w.join()
    body = metrics.render()[0].decode()
    total = per_thread * threads
    assert f"edge_agent_published_records_total {float(total)}" in body
    assert f"edge_agent_publish_latency_seconds_count {float(total)}" in body
    assert f'edge_agent_publish_latency_seconds_bucket{{le="0.005"}} {float(total)}' in body


def test_a_nan_observation_is_ignored() -> None:
    r = MetricsRegistry()
    histogram = ours.Histogram("t_h", "h", buckets=(1.0,), registry=r)
    histogram.observe(0.5)
    histogram.observe(math.nan)
    assert render_text(r.collect()).decode().splitlines()[2:] == [
        't_h_bucket{le="1.0"} 1.0', 't_h_bucket{le="+Inf"} 1.0', "t_h_count 1.0", "t_h_sum 0.5"]


def test_jitter_buckets_resolve_7_5_ms() -> None:
    assert 0.0075 in JITTER_BUCKETS_S
    assert list(JITTER_BUCKETS_S) == sorted(JITTER_BUCKETS_S)
