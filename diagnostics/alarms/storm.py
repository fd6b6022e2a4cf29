"""Storm guard: when a device is down, its points' stale / bad-quality alarms are held back.

One ``device_down`` alarm is raised instead; once ``summary_after_s`` has passed it is updated ONCE
with how many point alarms it suppressed, and its clear says the total. Point alarms held back stay
hidden while they resolve; any still active ``release_after_s`` after the device came back are
released as ``raised`` events (they are real problems, not a side effect of the outage).

Feed every event of the point rules through :meth:`StormGuard.filter`; call :meth:`StormGuard.tick`
periodically and :meth:`device_down` / :meth:`device_up` on comms state changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from diagnostics.alarms.events import AlarmEvent, EventState


def device_of_point(point: str) -> str:
    """Device part of a ``device/point`` name (the whole name when it has no '/')."""
    return point.split("/", 1)[0]


@dataclass(slots=True)
class _Device:
    down_since: float | None
    reason: str
    episode: int
    suppressed: int = 0
    summary_sent: bool = False
    up_since: float | None = None
    suppressed_ids: set[str] = field(default_factory=set)


class StormGuard:
    """Suppresses per-point comms alarms of a device that is down, with one summary instead."""

    def __init__(
        self,
        suppress_kinds: Iterable[str] = ("stale", "bad_quality"),
        summary_after_s: float = 30.0,
        release_after_s: float = 60.0,
        device_of: Callable[[str], str] = device_of_point,
        severity: str = "critical",
    ) -> None:
        if summary_after_s < 0 or release_after_s < 0:
            raise ValueError(f"{summary_after_s=} and {release_after_s=} must be >= 0 seconds")
        self.suppress_kinds = frozenset(suppress_kinds)
        self.summary_after_s = summary_after_s
        self.release_after_s = release_after_s
        self.severity = severity
        self._device_of = device_of
        self._devices: dict[str, _Device] = {}
        self._episodes: dict[str, int] = {}
        self._hidden: dict[str, AlarmEvent] = {}

    # ---- device state --------------------------------------------------------------------------

    def is_down(self, device: str) -> bool:
        """True while ``device`` is marked down."""
        d = self._devices.get(device)
        return d is not None and d.down_since is not None

    def device_down(self, device: str, ts_s: float, reason: str = "") -> list[AlarmEvent]:
        """Mark ``device`` down at ``ts_s`` (epoch s); return its ``device_down`` raised event (once)."""
        d = self._devices.get(device)
        if d is not None and d.down_since is not None:
            return []
        episode = self._episodes.get(device, 0) + 1
        self._episodes[device] = episode
        self._devices[device] = _Device(down_since=ts_s, reason=reason, episode=episode)
        if d is not None:  # still recovering from the previous outage: keep its hidden alarms
            self._devices[device].suppressed_ids = d.suppressed_ids
        why = f": {reason}" if reason else ""
        return [self._event(device, "raised", ts_s, f"device {device} down{why}")]

    def device_up(self, device: str, ts_s: float) -> list[AlarmEvent]:
        """Mark ``device`` up at ``ts_s``; return the ``device_down`` cleared event with the total."""
        d = self._devices.get(device)
        if d is None or d.down_since is None:
            return []
        down_s = ts_s - d.down_since
        message = (
            f"device {device} back up after {down_s:.0f} s; {d.suppressed} point alarm(s) were "
            "suppressed while it was down"
        )
        event = self._event(device, "cleared", ts_s, message, {"suppressed": d.suppressed, "down_s": down_s})
        event = dataclasses.replace(event, first_ts=d.down_since)
        d.down_since = None
        d.up_since = ts_s
        if not d.suppressed_ids:
            del self._devices[device]
        return [event]

    # ---- events ----------------------------------------------------------------------------------

    def filter(self, events: Iterable[AlarmEvent]) -> list[AlarmEvent]:
        """Return the events to publish; hold back those the outage explains."""
        out: list[AlarmEvent] = []
        for e in events:
            if e.alarm_id in self._hidden:
                if e.state == "cleared":
                    del self._hidden[e.alarm_id]
                    dev = self._devices.get(self._device_of(e.point))
                    if dev is not None:
                        dev.suppressed_ids.discard(e.alarm_id)
                else:
                    self._hidden[e.alarm_id] = e
                continue
            device = self._device_of(e.point)
            d = self._devices.get(device)
            if d is not None and e.kind in self.suppress_kinds and e.state == "raised":
                self._hidden[e.alarm_id] = e
                d.suppressed_ids.add(e.alarm_id)
                if d.down_since is not None:
                    d.suppressed += 1
                continue
            out.append(e)
        return out

    def tick(self, now_s: float) -> list[AlarmEvent]:
        """Emit the one summary per outage and release alarms still active after a recovery."""
        out: list[AlarmEvent] = []
        for device, d in list(self._devices.items()):
            if (
                d.down_since is not None
                and not d.summary_sent
                and d.suppressed > 0
                and now_s - d.down_since >= self.summary_after_s
            ):
                d.summary_sent = True
                ev = self._event(
                    device,
                    "updated",
                    now_s,
                    f"device {device} down: {d.suppressed} point alarm(s) suppressed (stale or bad quality)",
                    {"suppressed": d.suppressed, "points": sorted(self._hidden[i].point for i in d.suppressed_ids)},
                )
                out.append(dataclasses.replace(ev, first_ts=d.down_since))
            if d.down_since is None and d.up_since is not None and now_s - d.up_since >= self.release_after_s:
                for alarm_id in sorted(d.suppressed_ids):
                    hidden = self._hidden.pop(alarm_id)
                    out.append(
                        dataclasses.replace(
                            hidden,
                            state="raised",
                            last_ts=now_s,
                            message=f"{hidden.message} (held back while device {device} was down)",
                        )
                    )
                del self._devices[device]
        return out

    @property
    def hidden_count(self) -> int:
        """Number of point alarms currently held back."""
        return len(self._hidden)

    # ---- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """JSON-ready state (down devices, counts, held-back events)."""
        return {
            "v": 1,
            "devices": {
                name: {
                    "down_since": d.down_since,
                    "reason": d.reason,
                    "episode": d.episode,
                    "suppressed": d.suppressed,
                    "summary_sent": d.summary_sent,
                    "up_since": d.up_since,
                    "suppressed_ids": sorted(d.suppressed_ids),
                }
                for name, d in self._devices.items()
            },
            "episodes": dict(self._episodes),
            "hidden": {k: e.to_dict() for k, e in self._hidden.items()},
        }

    def load_dict(self, data: Mapping[str, Any]) -> StormGuard:
        """Restore state written by :meth:`to_dict`; returns ``self``."""
        if data.get("v") != 1:
            raise ValueError(f"storm guard state version {data.get('v')!r} is not 1")
        self._devices = {
            str(name): _Device(
                down_since=d["down_since"],
                reason=str(d["reason"]),
                episode=int(d["episode"]),
                suppressed=int(d["suppressed"]),
                summary_sent=bool(d["summary_sent"]),
                up_since=d["up_since"],
                suppressed_ids=set(d["suppressed_ids"]),
            )
            for name, d in data["devices"].items()
        }
        self._episodes = {str(k): int(v) for k, v in data["episodes"].items()}
        self._hidden = {str(k): AlarmEvent.from_dict(v) for k, v in data["hidden"].items()}
        return self

    def _event(
        self,
        device: str,
        state: EventState,
        ts: float,
        message: str,
        evidence: Mapping[str, object] | None = None,
    ) -> AlarmEvent:
        d = self._devices.get(device)
        return AlarmEvent(
            alarm_id=f"device:{device}:down",
            state=state,
            severity=self.severity,
            kind="device_down",
            rule="device_down",
            point=device,
            level="down",
            value=None,
            limit=None,
            unit="",
            message=message,
            first_ts=d.down_since if d is not None and d.down_since is not None else ts,
            last_ts=ts,
            episode=self._episodes.get(device, 1),
            evidence=dict(evidence or {}),
        )
