"""A real Mosquitto on loopback for tests, and a subscriber that collects what arrives.

``Mosquitto`` writes a config into a temporary directory, listens on a free 127.0.0.1 port and can be stopped
and started again on the same port (outage tests). ``MqttCollector`` is a paho subscriber on its own network
thread; async tests poll it with ``await collector.wait_until(predicate, timeout_s)``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO_BIN = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
START_TIMEOUT_S = 20.0


def mosquitto_available() -> bool:
    """True if the mosquitto broker binary can be run."""
    return os.access(MOSQUITTO_BIN, os.X_OK)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port_open(host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until ``host:port`` accepts a TCP connection; raise if ``proc`` dies or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s} s")


class Mosquitto:
    """A mosquitto process on 127.0.0.1; ``start()`` / ``stop()`` keep the same port."""

    def __init__(self, workdir: Path, *, port: int | None = None, persistence: bool = False,
                 extra_config: str = "", listener_config: str = "") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.persistence = persistence
        self.extra_config = extra_config
        self.listener_config = listener_config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"
        self.config_path = self.workdir / "mosquitto.conf"

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT`` (``mqtts://`` when the listener has TLS)."""
        scheme = "mqtts" if "certfile" in self.listener_config else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    def _config(self) -> str:
        lines = [
            f"listener {self.port} {self.host}",
            self.listener_config,
            "allow_anonymous true" if "allow_anonymous" not in self.extra_config else "",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/" if self.persistence else "",
            "autosave_interval 1" if self.persistence else "",
            "max_queued_messages 0",  # unlimited: a slow test subscriber must not lose messages
            "max_inflight_messages 100",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "user root" if hasattr(os, "geteuid") and os.geteuid() == 0 else "",
            self.extra_config,
        ]
        return "\n".join(line for line in lines if line) + "\n"

    def start(self) -> None:
        """Start the broker and wait (up to 20 s) until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        self.config_path.write_text(self._config())
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen([MOSQUITTO_BIN, "-c", str(self.config_path)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        try:
            wait_port_open(self.host, self.port, START_TIMEOUT_S, self.proc)
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {exc}\n--- log ---\n{self.log_text()}") from exc

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 10 s) and wait for it to exit."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        """SIGKILL the broker (no clean shutdown, no persistence save)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def log_text(self) -> str:
        """What the broker logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def astop(self) -> None:
        """``stop()`` without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    async def astart(self) -> None:
        """``start()`` without blocking the event loop."""
        await asyncio.to_thread(self.start)


Message = tuple[str, bytes]


class MqttCollector:
    """Subscribes to ``topic_filter`` and records every ``(topic, payload)`` received, in arrival order."""

    def __init__(self, host: str, port: int, topic_filter: str, *, qos: int = 1, persistent: bool = False,
                 client_id: str | None = None) -> None:
        self.host, self.port, self.topic_filter, self.qos = host, port, topic_filter, qos
        self.messages: list[Message] = []
        self.retained: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"collector-{uuid.uuid4().hex}",
                                  clean_session=not persistent)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    def _on_connect(self, client: paho.Client, ud: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            client.subscribe(self.topic_filter, self.qos)

    def _on_subscribe(self, client: paho.Client, ud: Any, mid: int, reasons: Any, props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, client: paho.Client, ud: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload)))
            if msg.retain:
                self.retained.append((msg.topic, bytes(msg.payload)))

    def start(self, timeout_s: float = 20.0) -> MqttCollector:
        """Connect, subscribe, and wait for the SUBACK."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.close()
            raise TimeoutError(f"collector could not subscribe to {self.topic_filter} on {self.port}")
        return self

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[Message]:
        """A copy of the messages so far."""
        with self._lock:
            return list(self.messages)

    def payloads(self, topic: str | None = None) -> list[bytes]:
        """Payloads so far, optionally only those on ``topic``."""
        return [p for t, p in self.snapshot() if topic is None or t == topic]

    def wait_for(self, predicate: Callable[[list[Message]], bool], timeout_s: float = 30.0) -> list[Message]:
        """Block until ``predicate(messages)`` holds (polling); return the messages or raise TimeoutError."""
        deadline = time.monotonic() + timeout_s
        while True:
            msgs = self.snapshot()
            if predicate(msgs):
                return msgs
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout_s} s; {len(msgs)} message(s) collected")
            time.sleep(0.02)

    async def wait_until(self, predicate: Callable[[list[Message]], bool], timeout_s: float = 30.0) -> list[Message]:
        """Like :meth:`wait_for`, but yields to the event loop while polling."""
        deadline = time.monotonic() + timeout_s
        while True:
            msgs = self.snapshot()
            if predicate(msgs):
                return msgs
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout_s} s; {len(msgs)} message(s) collected")
            await asyncio.sleep(0.02)


async def poll_until(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition()`` every 20 ms until true; raise TimeoutError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(0.02)
