"""The agent's remote diagnostics commands: ``status``, ``read``, ``capture``, ``baseline``, ``ack``,
``shelve``, ``logs``. Each is ``async (args: dict) -> dict``; bad arguments raise ``CommandError``.

The remote service adds ``ping`` and handles rate limits, sizes, timeouts and the audit log.
"""

from __future__ import annotations

import base64
import collections
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from edge_agent import __version__
from edge_agent.logging_setup import redact
from edge_agent.remote.errors import CommandError

if TYPE_CHECKING:
    from edge_agent.agent import Agent

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
MAX_READ_POINTS = 500
MAX_LOG_LINES = 500
MAX_SHELVE_S = 7 * 86400.0


class RecentLogHandler(logging.Handler):
    """Keeps the last ``capacity`` log lines (already redacted) for the ``logs`` command."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(level=logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        """Store one formatted, redacted line."""
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            self.lines.append(redact(f"{stamp} {record.levelname} {record.name}: {record.getMessage()}"))
        except Exception:  # a log handler never raises into the code that logged
            self.handleError(record)


def _points_arg(args: dict[str, Any], name: str = "points") -> list[str]:
    points = args.get(name, [])
    if isinstance(points, str):
        points = [p for p in points.split(",") if p]
    if not isinstance(points, list) or not all(isinstance(p, str) for p in points):
        raise CommandError(f"'{name}' must be a list of device/point names (or one comma-separated string)")
    if len(points) > MAX_READ_POINTS:
        raise CommandError(f"at most {MAX_READ_POINTS} points per request, got {len(points)}")
    return points


class AgentCommands:
    """Command handlers bound to one running agent."""

    def __init__(self, agent: Agent, logs: RecentLogHandler | None = None) -> None:
        self.agent = agent
        self.logs = logs

    def handlers(self) -> dict[str, Handler]:
        """Name -> handler, for the remote service."""
        return {
            "status": self.status,
            "read": self.read,
            "capture": self.capture,
            "baseline": self.baseline,
            "ack": self.ack,
            "shelve": self.shelve,
            "logs": self.recent_logs,
            "maintenance": self.maintenance,
        }

    async def status(self, args: dict[str, Any]) -> dict[str, Any]:
        """Devices and their comms, buffer, active alarms, versions."""
        a = self.agent
        body = dict(a.status())
        body["alarms"] = a.alarms.active()
        body["publisher"] = a.publisher.stats() if a.publisher is not None else None
        body["versions"] = {"edge-agent": __version__}
        body["cadence"] = {n: {"cycles": r.cadence.cycles, "skipped": r.cadence.skipped,
                               "last_duration_s": round(r.cadence.last_duration_s, 6)}
                           for n, r in a.devices.items()}
        return body

    async def read(self, args: dict[str, Any]) -> dict[str, Any]:
        """Current values of the named points (all value points when none are named)."""
        latest = self.agent.pipeline.latest
        points = _points_arg(args) or sorted(latest)[:MAX_READ_POINTS]
        unknown = [p for p in points if p not in latest and p not in self.agent.units]
        if unknown:
            raise CommandError(f"unknown point(s): {', '.join(unknown)}; points are named device/point")
        out: dict[str, Any] = {}
        for key in points:
            v = latest.get(key)
            out[key] = None if v is None else {"value": v.value, "quality": v.quality.value,
                                               "ts": int(v.ts * 1000), "unit": v.unit, "reason": v.reason}
        return {"points": out}

    async def capture(self, args: dict[str, Any]) -> dict[str, Any]:
        """Acquire a waveform now from ``point`` and return features, diagnosis and reduced spectrum.

        ``raw: true`` adds the samples as zlib-compressed little-endian float32, base64-encoded.
        """
        key = args.get("point")
        if not isinstance(key, str) or "/" not in key:
            raise CommandError("'point' must name a waveform point as device/point")
        device, point = key.split("/", 1)
        runner = self.agent.devices.get(device)
        if runner is None or key not in self.agent.vibration.channels:
            raise CommandError(f"{key} is not a waveform point; waveform points: "
                               f"{', '.join(self.agent.vibration.channels) or 'none'}")
        result = await runner.driver.read()
        waveform = next((w for w in result.waveforms if w.point == point), None)
        if waveform is None:
            raise CommandError(f"{key}: the device returned no waveform (comms {runner.driver.comms.state.value}: "
                               f"{runner.driver.comms.last_error or 'no error'})")
        vib = await self.agent.vibration.analyse(key, waveform)
        body = vib.to_dict()
        out: dict[str, Any] = {"point": key, "capture_ts": int(waveform.ts * 1000)}
        for field in ("fs_hz", "n_samples", "running_speed_hz", "rms", "peak", "crest_factor", "kurtosis",
                      "velocity_rms_mm_s", "iso_zone", "bearing", "shaft", "diagnosis", "top_peaks",
                      "reduced_spectrum"):
            out[field] = body.get(field)
        if args.get("raw"):
            import numpy as np  # only here: a raw capture is the one command that needs the samples as bytes

            raw = np.asarray(waveform.samples, dtype="<f4").tobytes()
            out["raw"] = {"encoding": "zlib+base64 float32 little-endian", "unit": waveform.unit,
                          "data": base64.b64encode(zlib.compress(raw, 6)).decode("ascii")}
        return out

    async def baseline(self, args: dict[str, Any]) -> dict[str, Any]:
        """Forget and re-learn vibration baselines (of ``points``, or all)."""
        points = _points_arg(args)
        chosen = self.agent.vibration.relearn_baselines(points or None)
        if points and not chosen:
            raise CommandError(f"none of {points} is a waveform point")
        return {"relearning": chosen}

    async def ack(self, args: dict[str, Any]) -> dict[str, Any]:
        """Acknowledge the alarm ``alarm_id``."""
        alarm_id = args.get("alarm_id")
        if not isinstance(alarm_id, str):
            raise CommandError("'alarm_id' is required (see the status command's alarms)")
        try:
            return {"acknowledged": await self.agent.alarms.acknowledge(alarm_id, str(args.get("by", "remote")))}
        except (KeyError, ValueError) as exc:
            raise CommandError(str(exc).strip("'\"")) from None

    async def shelve(self, args: dict[str, Any]) -> dict[str, Any]:
        """Shelve the alarm ``alarm_id`` for ``duration_s`` seconds (at most 7 days)."""
        alarm_id = args.get("alarm_id")
        duration = args.get("duration_s")
        if not isinstance(alarm_id, str) or not isinstance(duration, (int, float)) or not 0 < duration <= MAX_SHELVE_S:
            raise CommandError(f"'alarm_id' and 'duration_s' (0 < s <= {MAX_SHELVE_S:.0f}) are required")
        try:
            return {"shelved": await self.agent.alarms.shelve(alarm_id, float(duration),
                                                              str(args.get("by", "remote")))}
        except (KeyError, ValueError) as exc:
            raise CommandError(str(exc).strip("'\"")) from None

    async def maintenance(self, args: dict[str, Any]) -> dict[str, Any]:
        """Counters per asset; with ``reset`` (a service name) and ``asset``, reset that service interval."""
        service = args.get("reset")
        if service is None:
            return {"counters": self.agent.alarms.maintenance()}
        asset = args.get("asset")
        if not isinstance(asset, str) or not isinstance(service, str):
            raise CommandError("'asset' and 'reset' (the service interval's name) are required to reset")
        try:
            return {"reset": await self.agent.alarms.reset_maintenance(asset, service, str(args.get("by", "remote")),
                                                                       str(args.get("note", "")))}
        except (KeyError, ValueError) as exc:
            raise CommandError(str(exc).strip("'\"")) from None

    async def recent_logs(self, args: dict[str, Any]) -> dict[str, Any]:
        """The last ``lines`` log lines (default 100), secrets redacted."""
        n = args.get("lines", 100)
        if not isinstance(n, int) or not 0 < n <= MAX_LOG_LINES:
            raise CommandError(f"'lines' must be 1..{MAX_LOG_LINES}")
        lines = list(self.logs.lines)[-n:] if self.logs is not None else []
        return {"lines": lines}
