"""A Modbus-only agent loads no heavy stack it does not use (issue 9: peak RSS under 60 MB for 2000 points).

``edge-agent run`` runs in its own process against the simulated PLC (another process: it uses numpy) and a
real Mosquitto, with raw telemetry, summaries, two limit rules and the health endpoint on; a thread in the
same process scrapes ``/metrics`` while it runs. When the agent has stopped, the process prints which
modules it imported. None of the stacks below may be among them: each is for a feature this config does
not use (OPC UA, vibration analysis, config signing) or one the agent does itself (metrics exposition).

``email`` and ``http.client`` are not on the list: paho-mqtt (``urllib.request``) and pydantic (its plugin
loader reads ``importlib.metadata``) import them whatever the agent does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from drivers.sim.register_map import synthetic_register_map

try:
    from tests.mqtt_support import Mosquitto, MqttCollector, free_port, mosquitto_available
    from tests.plc_process import simulated_plc
except ImportError:  # tests/ is not a package: pytest put the tests directory itself on sys.path
    from mqtt_support import (  # type: ignore[no-redef]
        Mosquitto,
        MqttCollector,
        free_port,
        mosquitto_available,
    )
    from plc_process import simulated_plc  # type: ignore[no-redef]

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
N_POINTS = 200
RUN_S = 4.0
PREFIX = "footprint/agent"

#: Top-level modules (and packages, with every submodule) a Modbus-only agent must never import.
NEVER = ("scipy", "asyncua", "cryptography", "prometheus_client", "http.server", "wsgiref")

AGENT = """
import json, socket, sys, threading, time
from edge_agent.cli import main

config, health_port = sys.argv[1], int(sys.argv[2])
scraped = {}

def scrape():
    # plain sockets: what a Prometheus server does, without adding an HTTP client to this process
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", health_port), timeout=5) as s:
                s.sendall(b"GET /metrics HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            head, _, body = data.partition(b"\\r\\n\\r\\n")
            if b"edge_agent_poll_cycles_total{" in body:
                scraped["head"], scraped["body"] = head.decode(), body.decode()
                return
        except OSError:
            pass
        time.sleep(0.2)

thread = threading.Thread(target=scrape, daemon=True)
thread.start()
code = main(["run", "-c", config, "--duration", sys.argv[3]])
thread.join(1)
print(json.dumps({"exit": code, "modules": sorted(sys.modules), **scraped}))
"""


@pytest.fixture(scope="module")
def plc_port() -> Iterator[int]:
    """The simulated PLC serving the synthetic map of ``N_POINTS`` points, in its own process."""
    with simulated_plc("--synthetic", str(N_POINTS)) as port:
        yield port


def write_config(tmp_path: Path, plc_port: int, broker_url: str, health_port: int) -> Path:
    """Modbus-only config: N_POINTS points, raw telemetry, summaries, health endpoint, two limit rules."""
    points = []
    for e in synthetic_register_map(N_POINTS):
        point: dict[str, object] = {"name": e.point.name, "address": e.point.address, "type": e.point.type}
        if e.point.byte_order != "ABCD":
            point["byte_order"] = e.point.byte_order
        if e.point.scale != 1.0:
            point["scale"] = e.point.scale
        points.append(point)
    cfg = {
        "agent": {"id": "footprint", "site": "lab", "data_dir": str(tmp_path / "data")},
        "mqtt": {"url": broker_url, "topic_prefix": PREFIX},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": plc_port,
                     "poll_interval": "200ms", "timeout": "5s", "publish_raw": True, "points": points}],
        "summaries": {"interval": "1s"},
        "rules": [
            {"point": "plc/p00000", "low": 1e9},  # every reading is below: raised at the first poll
            {"point": "plc/p00001", "high": 1e9},  # never reached
        ],
        "service": {"health": {"enabled": True, "port": health_port}, "log_level": "warning"},
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def agent_run(plc_port: int, tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[tuple[dict[str, object], list[tuple[str, bytes]]]]:
    """Run the agent once (for both tests); yield what its process reported and the MQTT messages it published."""
    if not mosquitto_available():
        pytest.skip("mosquitto broker not installed (apt-get install mosquitto); MQTT integration test skipped")
    tmp_path = tmp_path_factory.mktemp("footprint")
    mosquitto = Mosquitto(tmp_path / "mosquitto")
    collector: MqttCollector | None = None
    try:
        mosquitto.start()
        collector = MqttCollector(mosquitto.host, mosquitto.port, f"{PREFIX}/#").start()
        health_port = free_port()
        config = write_config(tmp_path, plc_port, mosquitto.url, health_port)
        child = subprocess.run([sys.executable, "-c", AGENT, str(config), str(health_port), str(RUN_S)],
                               cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
        assert child.returncode == 0, child.stderr
        report = json.loads(child.stdout.strip().splitlines()[-1])
        yield report, collector.snapshot()
    finally:
        if collector is not None:
            collector.close()
        mosquitto.kill()


def loaded(modules: list[str], name: str) -> list[str]:
    """``name`` and its submodules among ``modules``."""
    return [m for m in modules if m == name or m.startswith(name + ".")]


def test_modbus_only_agent_works_without_the_heavy_stacks(
        agent_run: tuple[dict[str, object], list[tuple[str, bytes]]]) -> None:
    report, messages = agent_run
    assert report["exit"] == 0
    modules = report["modules"]
    assert isinstance(modules, list)
    assert "edge_agent.runtime" in modules and "drivers.modbus.client" in modules  # it did run the agent
    found = {name: mods for name in NEVER if (mods := loaded(modules, name))}
    assert found == {}

    # ... and did its job: raw telemetry of every point, a summary, the one limit alarm, and /metrics.
    raw = [json.loads(p) for t, p in messages if t == f"{PREFIX}/telemetry/plc"]
    assert raw, "no raw telemetry arrived"
    assert any(t.startswith(f"{PREFIX}/summary/") for t, _ in messages)
    alerts = [json.loads(p) for t, p in messages if t.startswith(f"{PREFIX}/alerts/")]
    assert [(a["point"], a["state"]) for a in alerts] == [("plc/p00000", "raised")]

    head = str(report.get("head", ""))
    assert head.startswith("HTTP/1.1 200") and "text/plain; version=0.0.4" in head
    families = {f.name: f for f in text_string_to_metric_families(str(report["body"]))}
    readings = {s.labels["quality"]: s.value for s in families["edge_agent_readings"].samples}
    assert readings["good"] >= N_POINTS and readings["good"] % N_POINTS == 0


def test_modbus_only_agent_never_loads_numpy(agent_run: tuple[dict[str, object], list[tuple[str, bytes]]]) -> None:
    report, _ = agent_run
    modules = report["modules"]
    assert isinstance(modules, list)
    assert loaded(modules, "numpy") == []


RULES_WITHOUT_NUMPY = """
import json, sys
from diagnostics.alarms import (BadQualityAlarm, BadQualityRule, DeviationAlarm, DeviationRule, LimitAlarm,
                                LimitRule, RateAlarm, RateRule, StaleAlarm, StaleRule)
events = []
events += LimitAlarm(LimitRule("lim", "d/p", high=10.0)).update(0.0, 12.0, "good")
rate = RateAlarm(RateRule("rate", "d/p", window_s=10.0, per="s", max_rise=1.0, min_samples=2))
for t, v in ((0.0, 0.0), (5.0, 1.0), (10.0, 50.0)):  # +49 in 5 s: 9.8/s > 1/s
    events += rate.update(t, v, "good")
events += DeviationAlarm(DeviationRule("dev", "d/p", baseline=100.0, high=5.0)).update(0.0, 110.0, "good")
events += BadQualityAlarm(BadQualityRule("bad", "d/p")).update(0.0, None, "bad")
stale = StaleAlarm(StaleRule("stale", "d/p", interval_s=1.0))  # stale after 3 missed 1 s intervals
events += stale.update(0.0, 1.0, "good") + stale.update(10.0, None, "bad")
before = "numpy" in sys.modules
from diagnostics.alarms import AlarmEngine  # the lazy re-export still works, and brings numpy
print(json.dumps({"events": [[e.rule, e.state, e.level] for e in events], "numpy_before": before,
                  "numpy_after": "numpy" in sys.modules, "engine": AlarmEngine.__module__}))
"""


def test_limit_rate_deviation_and_quality_rules_run_without_numpy() -> None:
    child = subprocess.run([sys.executable, "-c", RULES_WITHOUT_NUMPY], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, check=False)
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout)
    assert report["events"] == [["lim", "raised", "high"], ["rate", "raised", "rise"], ["dev", "raised", "high"],
                                ["bad", "raised", "bad_quality"], ["stale", "raised", "stale"]]
    assert (report["numpy_before"], report["numpy_after"]) == (False, True)
    assert report["engine"] == "diagnostics.alarms.engine"
