"""The /healthz and /metrics endpoint over a real loopback socket, with urllib and with raw bytes."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from drivers.base import Quality, Reading
from edge_agent.health import HealthReport, HealthServer, HealthState, is_loopback, start_health_server
from edge_agent.metrics import AgentMetrics

TIMEOUT_S = 20.0


async def http_get(port: int, path: str, method: str = "GET",
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """An independent HTTP client (urllib, in a thread) so the server is checked against real HTTP."""

    def fetch() -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, dict(error.headers), error.read()

    return await asyncio.to_thread(fetch)


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT_S)
    finally:
        writer.close()
        await writer.wait_closed()


async def wait_until(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {TIMEOUT_S} s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def state() -> HealthState:
    return HealthState()


@pytest.fixture
def metrics() -> AgentMetrics:
    return AgentMetrics()


@pytest.fixture
async def server(state: HealthState, metrics: AgentMetrics) -> AsyncIterator[HealthServer]:
    async with HealthServer(state.report, metrics, port=0) as running:
        yield running


async def test_healthz_follows_the_agent_state(server: HealthServer, state: HealthState) -> None:
    code, headers, body = await http_get(server.port, "/healthz")
    assert code == 503
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"status": "starting", "reasons": ["agent is starting"]}

    state.mark_started()
    state.details["devices"] = 2
    code, _, body = await http_get(server.port, "/healthz")
    assert (code, json.loads(body)) == (200, {"status": "ready", "reasons": [], "devices": 2})

    state.degrade("broker", "MQTT broker 127.0.0.1:1883 unreachable since 12:00:01Z")
    state.degrade("device:motor-plc", "connection refused")
    code, _, body = await http_get(server.port, "/healthz?verbose=1")
    assert code == 503
    assert json.loads(body)["status"] == "degraded"
    assert json.loads(body)["reasons"] == ["broker: MQTT broker 127.0.0.1:1883 unreachable since 12:00:01Z",
                                           "device:motor-plc: connection refused"]

    state.clear("broker")
    state.clear("device:motor-plc")
    code, _, _ = await http_get(server.port, "/healthz")
    assert code == 200


async def test_metrics_in_prometheus_text_format(server: HealthServer, metrics: AgentMetrics) -> None:
    metrics.observe_poll("motor-plc", duration_s=0.05, lateness_s=0.002, requests=4,
                         readings=[Reading("speed", 1500, Quality.GOOD, 1.0), Reading("temp", None, Quality.BAD, 1.0)])
    metrics.set_outbox(3, 900)
    code, headers, body = await http_get(server.port, "/metrics")
    assert code == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    readings = {s.labels["quality"]: s.value for s in families["edge_agent_readings"].samples
                if s.name == "edge_agent_readings_total"}
    assert readings == {"good": 1.0, "bad": 1.0}
    assert families["edge_agent_outbox_records"].samples[0].value == 3
    assert families["edge_agent_resident_memory_bytes"].samples[0].value > 1_000_000
    assert "edge_agent_poll_latency_seconds" in families


async def test_openmetrics_is_negotiated(server: HealthServer) -> None:
    code, headers, body = await http_get(
        server.port, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert code == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


async def test_head_has_headers_only(server: HealthServer, state: HealthState) -> None:
    state.mark_started()
    _, _, get_body = await http_get(server.port, "/healthz")
    reply = await raw_request(server.port, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert f"Content-Length: {len(get_body)}".encode() in head
    assert body == b""


async def test_wrong_method_path_and_garbage(server: HealthServer) -> None:
    code, headers, _ = await http_get(server.port, "/healthz", method="POST")
    assert code == 405 and headers["Allow"] == "GET, HEAD"
    code, _, body = await http_get(server.port, "/status")
    assert code == 404 and b"/healthz" in body
    reply = await raw_request(server.port, b"hello there\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")
    reply = await raw_request(server.port, b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 Bad Request")


async def test_failing_provider_reads_as_degraded(metrics: AgentMetrics) -> None:
    def broken() -> HealthReport:
        raise RuntimeError("pipeline gone")

    server = await start_health_server(broken, metrics, port=0)
    try:
        code, _, body = await http_get(server.port, "/healthz")
    finally:
        await server.stop()
    assert code == 503
    assert "pipeline gone" in json.loads(body)["reasons"][0]


async def test_silent_client_is_dropped_after_the_read_timeout(state: HealthState) -> None:
    async with HealthServer(state.report, port=0, read_timeout_s=0.3) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""  # closed by the server, no reply
        finally:
            writer.close()
            await writer.wait_closed()
        await wait_until(lambda: not server._handlers, "the handler to finish")


async def test_connections_are_capped_and_stop_ends_them(state: HealthState) -> None:
    server = HealthServer(state.report, port=0, max_connections=1)
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        await wait_until(lambda: len(server._handlers) == 1, "the idle connection to be accepted")
        reply = await raw_request(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503 Service Unavailable")
        assert reply.endswith(b"busy\n")
        await server.stop()
        assert await asyncio.wait_for(reader.read(), TIMEOUT_S) == b""
        assert not server._handlers
    finally:
        writer.close()
        await writer.wait_closed()
        await server.stop()


async def test_port_in_use_is_named(server: HealthServer, state: HealthState) -> None:
    second = HealthServer(state.report, port=server.port)
    with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{server.port}"):
        await second.start()


def test_bad_arguments_are_named(state: HealthState) -> None:
    with pytest.raises(ValueError, match="port=70000"):
        HealthServer(state.report, port=70000)
    with pytest.raises(ValueError, match="max_connections=0"):
        HealthServer(state.report, max_connections=0)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("gateway.local")


async def test_a_device_removed_while_down_no_longer_degrades_health(tmp_path: Path, mosquitto: Any,
                                                                     monkeypatch: Any) -> None:
    from drivers.sim.modbus_server import ModbusSimServer
    from drivers.sim.plant import Plant
    from edge_agent import runtime
    from edge_agent.config import load_config_data
    from edge_agent.runtime import AgentService

    try:
        from tests.mqtt_support import free_port, poll_until
        from tests.test_e2e_agent import agent_config
        from tests.test_reconfigure import two_device_config
    except ImportError:
        from mqtt_support import free_port, poll_until  # type: ignore[no-redef]
        from test_e2e_agent import agent_config  # type: ignore[no-redef]
        from test_reconfigure import two_device_config  # type: ignore[no-redef]

    monkeypatch.setattr(runtime, "HEALTH_INTERVAL_S", 0.2)
    plc = ModbusSimServer(Plant(seed=7), port=0, update_interval_s=None)
    await plc.start()
    data = two_device_config(agent_config(tmp_path / "data", mosquitto.url, plc.port, summary_s=5.0)).model_dump(
        mode="json", exclude_none=True)
    data["devices"][1]["port"] = 1  # plc2 is unreachable: /healthz degraded
    data["service"] = {"health": {"enabled": True, "port": free_port()}}
    config = load_config_data(data, "test")
    service = AgentService(config, None, "")
    await service.start()
    try:
        assert service._health_server is not None
        port = service._health_server.port
        await poll_until(lambda: any(k.startswith("device:plc2") for k in service.health.degraded_parts()), 30,
                         "plc2 degraded")
        assert service.agent.publisher is not None
        await poll_until(lambda: service.agent.publisher is not None and service.agent.publisher.connected, 30,
                         "broker")
        await service.agent.reconfigure(config, load_config_data({**data, "devices": data["devices"][:1]}, "t2"))
        await poll_until(lambda: service.health.report().ready, 10, "healthy again")
        status, _, _ = await http_get(port, "/healthz")
        _, _, body = await http_get(port, "/metrics")
        assert status == 200
        up = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(body.decode())
              for s in f.samples if s.name == "edge_agent_device_up"}
        assert up == {(("device", "plc"),): 1.0}  # plc2's series went with it
    finally:
        await service.stop()
        await plc.stop()
