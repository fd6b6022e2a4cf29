"""The reference gateway load of issue 8 as an agent config (a plain dict, written out as YAML).

- ``modbus_points`` (2 000) synthetic Modbus points polled every ``modbus_poll_s`` (1 s), spread over
  ``modbus_devices`` PLCs (connections) to the one simulated server; the points are exactly the entries of
  :func:`drivers.sim.register_map.synthetic_register_map`, so every read decodes a served value;
- ``opcua_items`` (500) OPC UA monitored items (``ns=2;s=Load.NNNNN``, all changing every second);
- ``vibration_channels`` (4) waveform points of ``waveform_samples`` (16 384) samples polled every
  ``waveform_poll_s`` (10 s) and analysed on the gateway (ISO 20816 zone, bearing defect indicators);
  the simulator has one accelerometer node, so every channel reads that node (same bytes on the wire,
  same analysis cost as four different sensors);
- summaries every ``summary_interval_s`` (60 s) of every point, ``limit_rules`` threshold rules;
- the health/metrics endpoint on loopback, so the benchmark can scrape the agent's histograms.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from drivers.sim.register_map import synthetic_register_map

#: Rated speed of the simulated machine, rpm (the simulator's 24.7 Hz shaft).
NOMINAL_SPEED_RPM = 1482.0
#: Catalogue bearing of the simulated machine (drivers/sim/vibration.py uses the SKF 6205 geometry).
BEARING_MODEL = "SKF-6205"


@dataclass(frozen=True, slots=True)
class ReferenceLoad:
    """The size of the load; defaults are issue 8's reference gateway."""

    modbus_points: int = 2000
    modbus_devices: int = 4
    modbus_poll_s: float = 1.0
    opcua_items: int = 500
    opcua_sampling_s: float = 1.0
    vibration_channels: int = 4
    waveform_samples: int = 16384
    waveform_poll_s: float = 10.0
    summary_interval_s: float = 60.0
    limit_rules: int = 20

    def __post_init__(self) -> None:
        if self.modbus_points < 1 or self.modbus_devices < 1 or self.modbus_devices > self.modbus_points:
            raise ValueError(f"{self.modbus_points=} and {self.modbus_devices=} must be >= 1, with at least "
                             "one point per device")
        if self.opcua_items < 0 or self.vibration_channels < 0 or self.limit_rules < 0:
            raise ValueError("opcua_items, vibration_channels and limit_rules must not be negative")
        if self.limit_rules > self.modbus_points:
            raise ValueError(f"{self.limit_rules=} cannot exceed {self.modbus_points=} (one rule per point)")
        for name in ("modbus_poll_s", "opcua_sampling_s", "waveform_poll_s", "summary_interval_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be positive seconds")

    def describe(self) -> str:
        """One line naming the load, for reports."""
        return (f"{self.modbus_points} Modbus points on {self.modbus_devices} connections every "
                f"{self.modbus_poll_s:g} s, {self.opcua_items} OPC UA monitored items at "
                f"{self.opcua_sampling_s:g} s, {self.vibration_channels} vibration channels x "
                f"{self.waveform_samples} samples every {self.waveform_poll_s:g} s, summaries every "
                f"{self.summary_interval_s:g} s, {self.limit_rules} limit rules")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the agent finds its peers and listens (all on 127.0.0.1)."""

    broker_port: int
    modbus_port: int
    opcua_endpoint: str
    health_port: int


def _seconds(value: float) -> str:
    """A config duration: whole seconds as ``10s``, otherwise milliseconds (``250ms``)."""
    return f"{value:g}s" if float(value).is_integer() else f"{round(value * 1000)}ms"


def modbus_devices(load: ReferenceLoad, port: int) -> list[dict[str, Any]]:
    """The Modbus devices: the synthetic map cut into ``modbus_devices`` consecutive slices."""
    entries = synthetic_register_map(load.modbus_points)
    per_device = -(-len(entries) // load.modbus_devices)
    devices: list[dict[str, Any]] = []
    for d in range(load.modbus_devices):
        chunk = entries[d * per_device:(d + 1) * per_device]
        points = [{"name": e.point.name, "table": e.point.table, "address": e.point.address,
                   "type": e.point.type, "byte_order": e.point.byte_order, "scale": e.point.scale}
                  for e in chunk]
        devices.append({"name": f"plc-{d + 1}", "protocol": "modbus_tcp", "host": "127.0.0.1", "port": port,
                        "unit_id": 1, "poll_interval": _seconds(load.modbus_poll_s), "timeout": "1s",
                        "points": points})
    return devices


def opcua_devices(load: ReferenceLoad, endpoint: str) -> list[dict[str, Any]]:
    """The subscribed OPC UA items (one session) and the vibration channels (a second, polled session)."""
    devices: list[dict[str, Any]] = []
    if load.opcua_items:
        items = [{"name": f"load_{i:05d}", "node": f"ns=2;s=Load.{i:05d}", "mode": "subscribe",
                  "sampling_interval": _seconds(load.opcua_sampling_s)} for i in range(load.opcua_items)]
        devices.append({"name": "opcua", "protocol": "opcua", "endpoint": endpoint,
                        "poll_interval": _seconds(load.opcua_sampling_s), "timeout": "5s", "points": items})
    if load.vibration_channels:
        channels = [{"name": f"ch{c + 1}", "node": "ns=2;s=Pump.VibrationDE", "kind": "waveform",
                     "sample_rate_node": "ns=2;s=Pump.VibrationDE.SampleRate", "unit": "g"}
                    for c in range(load.vibration_channels)]
        devices.append({"name": "vib", "protocol": "opcua", "endpoint": endpoint,
                        "poll_interval": _seconds(load.waveform_poll_s), "timeout": "5s", "points": channels})
    return devices


def vibration_assets(load: ReferenceLoad) -> list[dict[str, Any]]:
    """Two channels per machine (drive end and non-drive end), each bearing watched for defects."""
    assets: list[dict[str, Any]] = []
    for m in range(-(-load.vibration_channels // 2)):
        refs = [f"vib/ch{c + 1}" for c in range(2 * m, min(2 * m + 2, load.vibration_channels))]
        assets.append({"name": f"machine-{m + 1}", "points": refs,
                       "machine": {"group": 2, "foundation": "rigid", "nominal_speed": NOMINAL_SPEED_RPM},
                       "bearings": [{"point": ref, "model": BEARING_MODEL} for ref in refs]})
    return assets


def limit_rules(load: ReferenceLoad) -> list[dict[str, Any]]:
    """Threshold rules on the first points of the first PLC, with limits the values never reach (the
    rules are evaluated on every reading, as on a real gateway, but raise nothing)."""
    names = [e.point.name for e in synthetic_register_map(load.modbus_points)[:load.limit_rules]]
    return [{"point": f"plc-1/{name}", "high": 1.0e9, "high_high": 2.0e9, "deadband": 1.0, "on_delay": "10s"}
            for name in names]


def build_config(load: ReferenceLoad, endpoints: Endpoints, data_dir: Path) -> dict[str, Any]:
    """The whole agent config for ``load`` against ``endpoints``, with its data under ``data_dir``."""
    return {
        "agent": {"id": "gw-footprint", "site": "bench", "data_dir": str(data_dir)},
        "mqtt": {"url": f"mqtt://127.0.0.1:{endpoints.broker_port}"},
        "buffer": {"max_size": "256MB", "max_age": "7d"},
        "devices": [*modbus_devices(load, endpoints.modbus_port),
                    *opcua_devices(load, endpoints.opcua_endpoint)],
        "assets": vibration_assets(load),
        "rules": limit_rules(load),
        "summaries": {"interval": _seconds(load.summary_interval_s)},
        "service": {"health": {"enabled": True, "host": "127.0.0.1", "port": endpoints.health_port}},
    }


def write_config(config: dict[str, Any], path: Path) -> Path:
    """Write ``config`` as YAML to ``path`` (with a header saying where it came from); return ``path``."""
    header = "# Generated by benchmarks/bench_footprint.py: the reference gateway load of issue 8.\n"
    text = yaml.safe_dump(config, sort_keys=False, width=200, default_flow_style=None)
    path.write_text(header + text, encoding="utf-8")
    return path
