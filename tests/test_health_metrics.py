"""The agent's metrics, read back through prometheus-client's own text parser."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from drivers.base import Quality, Reading
from edge_agent import __version__
from edge_agent.metrics import AgentMetrics, read_peak_rss_bytes, read_rss_bytes

PAGE = os.sysconf("SC_PAGE_SIZE")


def samples(metrics: AgentMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def reading(point: str, quality: Quality) -> Reading:
    return Reading(point=point, value=1.0, quality=quality, receive_ts=1.0)


def test_poll_cycle_is_counted_per_device_and_quality() -> None:
    metrics = AgentMetrics(process=False)
    readings = [reading("a", Quality.GOOD)] * 3 + [reading("b", Quality.BAD), reading("c", Quality.UNCERTAIN)]
    metrics.observe_poll("motor-plc", duration_s=0.12, lateness_s=-0.004, requests=2, readings=readings)
    metrics.observe_poll("motor-plc", duration_s=0.08, lateness_s=0.001, requests=3, readings=readings[:1])
    metrics.observe_poll("pump-opcua", duration_s=0.5, lateness_s=0.0, requests=1)
    got = samples(metrics)
    dev = (("device", "motor-plc"),)
    assert got[("edge_agent_readings_total", (("device", "motor-plc"), ("quality", "good")))] == 4
    assert got[("edge_agent_readings_total", (("device", "motor-plc"), ("quality", "bad")))] == 1
    assert got[("edge_agent_readings_total", (("device", "motor-plc"), ("quality", "uncertain")))] == 1
    assert got[("edge_agent_poll_cycles_total", dev)] == 2
    assert got[("edge_agent_poll_requests_per_cycle", dev)] == 3  # the last cycle's count
    assert got[("edge_agent_poll_latency_seconds_count", dev)] == 2
    assert abs(got[("edge_agent_poll_latency_seconds_sum", dev)] - 0.20) < 1e-9
    # jitter is the absolute lateness: 4 ms and 1 ms, so both fall under the 5 ms bucket, one under 2 ms
    assert got[("edge_agent_poll_jitter_seconds_bucket", (("device", "motor-plc"), ("le", "0.002")))] == 1
    assert got[("edge_agent_poll_jitter_seconds_bucket", (("device", "motor-plc"), ("le", "0.005")))] == 2
    assert abs(got[("edge_agent_poll_jitter_seconds_sum", dev)] - 0.005) < 1e-9
    assert got[("edge_agent_poll_cycles_total", (("device", "pump-opcua"),))] == 1


def test_outbox_publisher_alarms_loop_and_build() -> None:
    metrics = AgentMetrics(process=False)
    metrics.set_outbox(12, 3456)
    metrics.outbox_evictions.labels(priority="telemetry").inc(5)
    metrics.publish_latency_seconds.observe(0.02)
    metrics.published_records.inc()
    metrics.mqtt_connected.set(1)
    metrics.mqtt_reconnects.inc()
    metrics.alarms_active.set(2)
    metrics.observe_loop_lag(0.003)
    metrics.observe_loop_lag(-0.001)  # clock noise never shows as negative lag
    got = samples(metrics)
    assert got[("edge_agent_outbox_records", ())] == 12
    assert got[("edge_agent_outbox_bytes", ())] == 3456
    assert got[("edge_agent_outbox_evictions_total", (("priority", "telemetry"),))] == 5
    assert got[("edge_agent_publish_latency_seconds_bucket", (("le", "0.025"),))] == 1
    assert got[("edge_agent_published_records_total", ())] == 1
    assert got[("edge_agent_mqtt_connected", ())] == 1
    assert got[("edge_agent_mqtt_reconnects_total", ())] == 1
    assert got[("edge_agent_alarms_active", ())] == 2
    assert got[("edge_agent_event_loop_lag_seconds_count", ())] == 2
    assert abs(got[("edge_agent_event_loop_lag_seconds_sum", ())] - 0.003) < 1e-12
    assert got[("edge_agent_build_info", (("version", __version__),))] == 1


def test_registries_are_independent() -> None:
    first, second = AgentMetrics(process=False), AgentMetrics(process=False)
    first.alarms_active.set(7)
    assert samples(second)[("edge_agent_alarms_active", ())] == 0


def test_process_collector_is_included() -> None:
    got = samples(AgentMetrics())
    assert got[("process_resident_memory_bytes", ())] > 0
    assert ("process_cpu_seconds_total", ()) in got


def test_rss_from_statm_matches_the_kernel_and_sees_an_allocation() -> None:
    before = read_rss_bytes()
    assert before is not None and before > 1_000_000
    block = bytearray(b"\x01") * 64_000_000  # every page written, so all of it is resident
    after = read_rss_bytes()
    assert after is not None
    assert after - before >= 50_000_000
    peak = read_peak_rss_bytes()
    assert peak is not None and peak >= after - PAGE
    assert samples(AgentMetrics(process=False))[("edge_agent_resident_memory_bytes", ())] >= 50_000_000
    del block


def test_cpu_seconds_follow_work_done() -> None:
    metrics = AgentMetrics(process=False)
    before = samples(metrics)[("edge_agent_cpu_seconds_total", ())]
    deadline = os.times()
    while os.times().user + os.times().system < deadline.user + deadline.system + 0.2:
        sum(i * i for i in range(10_000))  # burn at least 0.2 s of CPU
    assert samples(metrics)[("edge_agent_cpu_seconds_total", ())] >= before + 0.2


def test_memory_readers_on_fixed_files(tmp_path: Path) -> None:
    (tmp_path / "statm").write_text("10000 2500 300 10 0 900 0\n")
    (tmp_path / "status").write_text("Name:\tpython\nVmPeak:\t  9000 kB\nVmHWM:\t   4096 kB\nVmRSS:\t 2048 kB\n")
    assert read_rss_bytes(tmp_path / "statm") == 2500 * PAGE
    assert read_peak_rss_bytes(tmp_path / "status") == 4096 * 1024
    assert read_rss_bytes(tmp_path / "missing") is None
    assert read_peak_rss_bytes(tmp_path / "statm") is None


class _StatsOnly:
    """Something with a publisher's statistics (what the exporter reads), nothing else."""

    def __init__(self, acked: int, connections: int) -> None:
        self.connected = True
        self.counts = {"acked": acked, "connections": connections}

    def stats(self) -> dict[str, int]:
        return dict(self.counts)


def test_counters_keep_counting_across_a_replaced_publisher() -> None:
    from types import SimpleNamespace

    from edge_agent.runtime import AgentService

    service: Any = AgentService.__new__(AgentService)
    service.metrics = AgentMetrics(process=False)
    service._exported, service._first_publisher, service._exported_publisher = {}, None, None
    service.agent = SimpleNamespace(devices={}, outbox=None)
    old = _StatsOnly(acked=100, connections=1)
    service._export_publisher_metrics(old)
    old.counts.update(acked=120, connections=3)  # two reconnections, 20 more acks, then a broker change
    new = _StatsOnly(acked=50, connections=1)  # the new publisher's counts start at 0
    service._export_publisher_metrics(new)
    got = {(f.name, s.name): s.value for f in text_string_to_metric_families(service.metrics.render()[0].decode())
           for s in f.samples}
    assert got[("edge_agent_published_records", "edge_agent_published_records_total")] == 170
    assert got[("edge_agent_mqtt_reconnects", "edge_agent_mqtt_reconnects_total")] == 3  # not the first connect


async def test_outbox_evictions_and_device_reconnects_reach_metrics(tmp_path: Path, monkeypatch: Any) -> None:
    import asyncio

    from drivers.sim.modbus_server import ModbusSimServer
    from drivers.sim.plant import Plant
    from edge_agent import runtime
    from edge_agent.config import load_config_data
    from edge_agent.runtime import AgentService

    try:
        from tests.mqtt_support import poll_until
        from tests.test_e2e_agent import agent_config
    except ImportError:
        from mqtt_support import poll_until  # type: ignore[no-redef]
        from test_e2e_agent import agent_config  # type: ignore[no-redef]

    monkeypatch.setattr(runtime, "HEALTH_INTERVAL_S", 0.2)
    monkeypatch.setattr(runtime, "STARTUP_BROKER_WAIT_S", 0.1)
    plc = ModbusSimServer(Plant(seed=7), port=0, update_interval_s=None)
    await plc.start()
    data = agent_config(tmp_path / "data", "mqtt://127.0.0.1:1", plc.port, summary_s=1.0, poll_s=0.05,
                        publish_raw=True).model_dump(mode="json", exclude_none=True)
    data["buffer"] = {"max_size": 8192}  # no broker: raw telemetry fills it and is evicted
    service = AgentService(load_config_data(data, "test"), None, "")
    await service.start()
    try:
        await poll_until(lambda: service.agent.outbox is not None
                         and service.agent.outbox.stats()["evicted_total"] > 20, 60, "evictions")
        plc.drop_connections()  # the device's connection drops: the driver reconnects
        await poll_until(lambda: service.agent.devices["plc"].driver.comms.reconnects >= 1, 30, "reconnect")
        await asyncio.sleep(0.5)
        got = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(service.metrics.render()[0].decode()) for s in f.samples}
        assert got[("edge_agent_outbox_evictions_total", (("priority", "telemetry"),))] > 0
        assert got[("edge_agent_device_reconnects_total", (("device", "plc"),))] >= 1
    finally:
        await service.stop()
        await plc.stop()
