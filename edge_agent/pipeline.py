"""Turns what the drivers produce into records: the one place a reading is evaluated.

Readings of a device's poll cycle arrive here once. They update the latest-value cache (for remote ``read``
and the live view), the summary accumulators, and any listener (the demo's terminal view). Records leave
through a single ``emit`` coroutine that stores them in the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from drivers.base import Quality, Reading, Waveform
from edge_agent.records import Priority
from edge_agent.summaries import SummaryAggregator

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, object], Priority], Awaitable[None]]
ReadingListener = Callable[[str, Sequence[Reading]], None]


@dataclass(slots=True)
class LatestValue:
    """The most recent reading of one point."""

    value: object
    quality: Quality
    ts: float
    unit: str
    reason: str | None


class Pipeline:
    """Readings and waveforms in, summary (and later alert and vibration) records out."""

    def __init__(self, summaries: SummaryAggregator, units: dict[str, str], emit: Emit) -> None:
        self.summaries = summaries
        self._units = units
        self._emit = emit
        self.latest: dict[str, LatestValue] = {}
        self.listeners: list[ReadingListener] = []
        self.readings_good = 0
        self.readings_bad = 0

    def set_units(self, units: dict[str, str]) -> None:
        """Replace the unit table (after a config change)."""
        self._units = units

    def on_readings(self, device: str, readings: Sequence[Reading]) -> None:
        """Take one device's readings (a poll cycle or a subscription batch)."""
        self.summaries.add(device, readings)
        latest = self.latest
        units = self._units
        good = 0
        for r in readings:
            key = f"{device}/{r.point}"
            if r.quality is Quality.GOOD:
                good += 1
            latest[key] = LatestValue(r.value, r.quality, r.source_ts or r.receive_ts, units.get(key, ""),
                                      r.reason)
        self.readings_good += good
        self.readings_bad += len(readings) - good
        for listener in self.listeners:
            try:
                listener(device, readings)
            except Exception:
                log.exception("reading listener failed")

    async def on_waveforms(self, device: str, waveforms: Sequence[Waveform]) -> None:
        """Take waveforms captured by a device (vibration analysis hooks in here)."""
        for w in waveforms:
            key = f"{device}/{w.point}"
            self.latest[key] = LatestValue(f"waveform[{len(w.samples)}]", w.quality, w.ts, w.unit, None)

    async def close_summary_interval(self, end_s: float) -> int:
        """Close the summary interval at ``end_s`` (epoch s) and emit one record per asset; return the count."""
        bodies = self.summaries.close(end_s)
        for asset, body in bodies:
            await self._emit(f"summary/{asset}", body, Priority.SUMMARY)
        return len(bodies)
