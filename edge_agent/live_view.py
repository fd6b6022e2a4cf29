"""A live terminal view of what reaches a broker under one agent's topic prefix.

It subscribes like any cloud consumer would (``{prefix}/#``), so what it shows is what was delivered, not
what the agent meant to send: latest values from telemetry, the last summary of each asset, alerts, status.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, TextIO

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

CLEAR = "\x1b[H\x1b[2J"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
RESET = "\x1b[0m"


@dataclass
class ViewState:
    """What has arrived so far."""

    status: dict[str, Any] = field(default_factory=dict)
    values: dict[str, tuple[Any, str, float]] = field(default_factory=dict)
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=4))
    alerts: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    counts: dict[str, int] = field(default_factory=dict)


class LiveView:
    """Subscribe to ``{prefix}/#`` on ``host:port`` and render what arrives."""

    def __init__(self, host: str, port: int, prefix: str, out: TextIO = sys.stdout, plain: bool = False) -> None:
        self.prefix = prefix
        self.out = out
        self.plain = plain
        self.state = ViewState()
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"live-view-{time.time_ns()}")
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._host, self._port = host, port

    def start(self) -> None:
        """Connect (in paho's own network thread) and start collecting."""
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        client.subscribe(f"{self.prefix}/#", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        kind = msg.topic[len(self.prefix) + 1:].split("/", 1)
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = {"raw": msg.payload[:80].decode(errors="replace")}
        with self._lock:
            st = self.state
            st.counts[kind[0]] = st.counts.get(kind[0], 0) + 1
            if kind[0] == "status":
                st.status = body
            elif kind[0] == "telemetry" and len(kind) > 1:
                device = kind[1]
                ts = body.get("ts", 0) / 1000
                bad = body.get("quality", {})
                for point, value in body.get("values", {}).items():
                    st.values[f"{device}/{point}"] = (value, bad.get(point, "good"), ts)
            elif kind[0] == "summary" and len(kind) > 1:
                st.summaries[kind[1]] = body
                st.events.appendleft(f"summary  {kind[1]}: {len(body.get('points', {}))} points")
            elif kind[0] == "alerts":
                stamp = time.strftime("%H:%M:%S", time.localtime(body.get("ts", 0) / 1000))
                st.alerts.appendleft(f"{stamp} {body.get('state', ''):<8} {body.get('severity', ''):<9}"
                                     f"{body.get('message', '')}")
            elif kind[0] == "vibration":
                v = body.get("velocity_rms_mm_s")
                shown = f"{v:.2f}" if isinstance(v, (int, float)) else "?"
                st.events.appendleft(f"vibration {body.get('point', kind[-1])}: ISO zone {body.get('iso_zone')}, "
                                     f"{shown} mm/s RMS, diagnosis {', '.join(body.get('diagnosis', [])) or 'none'}")

    def render(self) -> str:
        """The current screen as text."""
        with self._lock:
            st = self.state
            lines = [f"{BOLD}edge-agent live view{RESET}  {DIM}{self.prefix}/#  "
                     f"{time.strftime('%H:%M:%S')}{RESET}"]
            s = st.status
            state = s.get("state", "?")
            colour = GREEN if state == "online" else RED
            buf = s.get("buffer", {})
            lines.append(f"agent {s.get('agent', '?')}  {colour}{state}{RESET}  version {s.get('version', '?')}"
                         f"  config {s.get('config_hash', '')}  buffered {buf.get('records', '?')} record(s)")
            for name, comms in s.get("devices", {}).items():
                c = GREEN if comms.get("state") == "ok" else RED
                lines.append(f"  device {name:<16} {c}{comms.get('state')}{RESET}"
                             f"  reconnects {comms.get('reconnects')}  {comms.get('last_error') or ''}")
            lines.append("")
            lines.append(f"{BOLD}{'point':<32}{'value':>14}  {'':<6}{'quality':<8}{RESET}")
            for key in sorted(st.values):
                value, quality, _ts = st.values[key]
                shown = f"{value:.2f}" if isinstance(value, float) else str(value)
                lines.append(f"{key:<32}{shown:>14}  {'':<6}{quality:<8}")
            for asset, body in sorted(st.summaries.items()):
                lines.append("")
                span = (body.get("end", 0) - body.get("start", 0)) / 1000
                lines.append(f"{BOLD}summary {asset}{RESET} {DIM}(last {span:.0f} s){RESET}")
                for key, p in body.get("points", {}).items():
                    lines.append(f"  {key:<30} n={p.get('count')!s:<4} min={_fmt(p.get('min'))} "
                                 f"mean={_fmt(p.get('mean'))} max={_fmt(p.get('max'))} {p.get('unit', '')}")
            lines.append("")
            lines.append(f"{BOLD}alerts{RESET}")
            lines.extend(f"  {RED if 'raised' in a else ''}{a}{RESET}" for a in st.alerts)
            if not st.alerts:
                lines.append(f"  {DIM}none yet{RESET}")
            lines.append("")
            lines.append(f"{BOLD}recent{RESET}  {DIM}messages: "
                         + ", ".join(f"{k} {v}" for k, v in sorted(st.counts.items())) + RESET)
            lines.extend(f"  {e}" for e in st.events)
        return "\n".join(lines)

    def draw(self) -> None:
        """Redraw the screen (or print one compact line in plain mode)."""
        if self.plain:
            with self._lock:
                n = ", ".join(f"{k} {v}" for k, v in sorted(self.state.counts.items()))
                vals = "  ".join(f"{k.split('/')[-1]}={_fmt(v[0])}" for k, v in sorted(self.state.values.items()))
            print(f"[{time.strftime('%H:%M:%S')}] received: {n or 'nothing yet'} | {vals}", file=self.out)
        else:
            self.out.write(CLEAR + self.render() + "\n")
        self.out.flush()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "-" if value is None else str(value)
