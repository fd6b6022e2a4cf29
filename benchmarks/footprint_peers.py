"""The footprint benchmark's peers, each a process of its own on 127.0.0.1: Mosquitto, the Modbus simulator
(``python -m drivers.sim.modbus_server --synthetic N``), the OPC UA simulator
(``benchmarks/footprint_opcua_sim.py``), the agent (``edge-agent run -c CONFIG``); and a paho subscriber
that counts what the broker delivered, by kind, and the readings each summary accounts for.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

HERE = Path(__file__).resolve().parent
MOSQUITTO_BIN = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port_open(port: int, timeout_s: float) -> bool:
    """Poll until 127.0.0.1:``port`` accepts a connection (True) or ``timeout_s`` seconds pass (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
        time.sleep(0.1)
    return False


@dataclass
class Peer:
    """A child process whose stdout and stderr go to ``log_path``."""

    name: str
    argv: Sequence[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        """Start the process (no shell)."""
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(list(self.argv), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)

    @property
    def pid(self) -> int:
        """The process id (the process must have been started)."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self.proc.pid

    def log_text(self, tail_chars: int = 4000) -> str:
        """The end of the process's output."""
        try:
            return self.log_path.read_text(errors="replace")[-tail_chars:]
        except OSError:
            return ""

    def wait_for_line(self, prefix: str, timeout_s: float) -> str:
        """Poll the log until a line starts with ``prefix``; return it. RuntimeError naming the process and
        its output when it exits first or ``timeout_s`` seconds pass."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.log_text(1_000_000).splitlines():
                if line.startswith(prefix):
                    return line
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode} before printing "
                                   f"{prefix!r}:\n{self.log_text()}")
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not print {prefix!r} within {timeout_s:g} s:\n{self.log_text()}")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s`` seconds; return the exit code (None if never started)."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return proc.returncode


def mosquitto(workdir: Path, port: int) -> Peer:
    """A Mosquitto broker on 127.0.0.1:``port`` with its config in ``workdir`` (not started)."""
    conf = workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false",
             "max_queued_messages 0", "log_dest stderr", "log_type error", "log_type warning"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    return Peer("mosquitto", [MOSQUITTO_BIN, "-c", str(conf)], workdir / "mosquitto.log")


def modbus_simulator(workdir: Path, port: int, points: int) -> Peer:
    """The simulated PLC serving ``points`` synthetic points, its image refreshed every second."""
    return Peer("modbus-sim", [sys.executable, "-m", "drivers.sim.modbus_server", "--port", str(port),
                               "--synthetic", str(points), "--update-interval", "1"],
                workdir / "modbus-sim.log")


def opcua_simulator(workdir: Path, port: int, items: int, samples: int) -> Peer:
    """The OPC UA simulator with ``items`` changing nodes and a ``samples``-long vibration capture."""
    return Peer("opcua-sim", [sys.executable, str(HERE / "footprint_opcua_sim.py"), "--port", str(port),
                              "--items", str(items), "--waveform-samples", str(samples)],
                workdir / "opcua-sim.log")


def agent(workdir: Path, config: Path) -> Peer:
    """``edge-agent run -c CONFIG`` from this interpreter's virtualenv (the process is the agent itself)."""
    script = Path(sys.executable).parent / "edge-agent"
    fallback = [sys.executable, "-c", "import sys; from edge_agent.cli import main; sys.exit(main())"]
    argv = [str(script)] if script.exists() else fallback
    return Peer("agent", [*argv, "run", "-c", str(config)], workdir / "agent.log")


@dataclass
class DeliveryCount:
    """What the broker delivered to a subscriber of ``{prefix}/#``: ``messages`` and ``payload_bytes`` by
    kind (the topic level after the prefix: summary, vibration, alerts, status, ...), and for summaries the
    readings they account for by asset group (sum of every point's ``count``) and the time they cover (s)."""

    messages: Counter[str] = field(default_factory=Counter)
    payload_bytes: Counter[str] = field(default_factory=Counter)
    summary_readings: Counter[str] = field(default_factory=Counter)
    summary_good: Counter[str] = field(default_factory=Counter)
    summary_span_s: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0


class DeliveryCounter:
    """A paho subscriber (own network thread) counting every message under ``prefix``."""

    def __init__(self, port: int, prefix: str) -> None:
        self.prefix = prefix
        self.count = DeliveryCount()
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"footprint-counter-{os.getpid()}")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._port = port

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(f"{self.prefix}/#", qos=1)

    def _on_subscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        kind = message.topic[len(self.prefix) + 1:].split("/", 1)[0]
        body: Any = None
        if kind == "summary":
            try:
                body = json.loads(message.payload)
            except ValueError:
                body = None
        with self._lock:
            c = self.count
            c.messages[kind] += 1
            c.payload_bytes[kind] += len(message.payload)
            if kind != "summary":
                return
            if not isinstance(body, dict) or not isinstance(body.get("points"), dict):
                c.undecodable += 1
                return
            group = str(body.get("asset", "?"))
            points = body["points"].values()
            c.summary_readings[group] += sum(int(p.get("count", 0)) for p in points if isinstance(p, dict))
            c.summary_good[group] += sum(int(p.get("good", 0)) for p in points if isinstance(p, dict))
            with contextlib.suppress(TypeError, ValueError):
                c.summary_span_s[group] += round((float(body["end"]) - float(body["start"])) / 1000.0)

    def start(self, timeout_s: float = 30.0) -> None:
        """Connect and subscribe; RuntimeError when the subscription is not confirmed in ``timeout_s`` s."""
        self._client.connect("127.0.0.1", self._port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise RuntimeError(f"the delivery counter could not subscribe on port {self._port}")

    def snapshot(self) -> DeliveryCount:
        """A copy of the counts so far."""
        with self._lock:
            c = self.count
            return DeliveryCount(Counter(c.messages), Counter(c.payload_bytes), Counter(c.summary_readings),
                                 Counter(c.summary_good), Counter(c.summary_span_s), c.undecodable)

    def stop(self) -> None:
        """Disconnect and stop the network thread."""
        with contextlib.suppress(Exception):
            self._client.disconnect()
        self._client.loop_stop()
