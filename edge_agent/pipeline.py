"""Turns what the drivers produce into records: the one place a reading is evaluated.

Readings of a device's poll cycle arrive here once and become one :class:`~edge_agent.telemetry.CycleFrame`
(columns, built in a few C-level passes). The frame updates the latest-value cache (for remote ``read``
and the live view) and the summary accumulators (in bulk), and is
handed back to the caller for raw telemetry. Records leave through a single ``emit`` coroutine that
stores them in the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from drivers.base import Quality, Reading, Waveform
from edge_agent.records import Priority
from edge_agent.summaries import EncodedSummary, SummaryAggregator
from edge_agent.telemetry import CycleFrame, RawDeviceSettings, RawTelemetry, RawTelemetrySettings, frame_index

log = logging.getLogger(__name__)

Emit = Callable[[str, dict[str, object], Priority], Awaitable[None]]


@dataclass(slots=True)
class LatestValue:
    """The most recent reading of one point."""

    value: object
    quality: Quality
    ts: float
    unit: str
    reason: str | None


@dataclass(slots=True)
class _Columns:
    """The latest frame of one reading layout of a device: values by position, no object per value."""

    index: Mapping[str, int]
    values: Sequence[object]
    qualities: list[Quality]
    ts: list[float]
    reasons: dict[int, str | None]
    seq: int


class LatestValues(Mapping[str, LatestValue]):
    """The latest reading of every point, keyed ``device/point``.

    A poll cycle is kept as columns (its values, qualities and times lists), replaced as a whole each cycle;
    small batches (a few subscription updates) are kept per point. The :class:`LatestValue` of a point is
    made only when someone asks for it.
    """

    SMALL_BATCH = 32
    MAX_LAYOUTS = 8

    def __init__(self, units: Mapping[str, str]) -> None:
        self._units = units
        self._frames: dict[str, dict[tuple[str, ...], _Columns]] = {}
        self._singles: dict[str, dict[str, tuple[int, LatestValue]]] = {}
        self._seq = 0

    def set_units(self, units: Mapping[str, str]) -> None:
        """Replace the unit table (after a config change)."""
        self._units = units

    def update_device(self, device: str, frame: CycleFrame) -> None:
        """Remember the readings of ``frame`` as the latest of their points."""
        self._seq += 1
        if len(frame) <= self.SMALL_BATCH:
            singles = self._singles.setdefault(device, {})
            ts = frame.timestamps()
            for i, r in enumerate(frame.readings):
                singles[r.point] = (self._seq, LatestValue(r.value, r.quality, ts[i], "", r.reason))
            return
        index = frame_index(frame.names)
        reasons: dict[int, str | None] = {}
        if not frame.all_good:
            reasons = {i: frame.readings[i].reason for i, q in enumerate(frame.qualities) if q is not Quality.GOOD}
        frames = self._frames.setdefault(device, {})
        frames.pop(frame.names, None)
        frames[frame.names] = _Columns(index, frame.values, frame.qualities, frame.timestamps(),
                                       reasons, self._seq)
        if len(frames) > self.MAX_LAYOUTS:  # keep the newest layouts; drop the oldest one's points
            del frames[next(iter(frames))]

    def set(self, key: str, value: LatestValue) -> None:
        """Set the latest value of ``key`` (``device/point``) directly (waveform placeholders)."""
        device, _, point = key.partition("/")
        self._seq += 1
        self._singles.setdefault(device, {})[point] = (self._seq, value)

    def __getitem__(self, key: str) -> LatestValue:
        device, _, point = key.partition("/")
        best: LatestValue | None = None
        best_seq = -1
        single = self._singles.get(device, {}).get(point)
        if single is not None:
            best_seq, best = single
        for cols in self._frames.get(device, {}).values():
            i = cols.index.get(point)
            if i is not None and cols.seq > best_seq:
                best_seq = cols.seq
                best = LatestValue(cols.values[i], cols.qualities[i], cols.ts[i], "", cols.reasons.get(i))
        if best is None:
            raise KeyError(key)
        if not best.unit:
            best = LatestValue(best.value, best.quality, best.ts, self._units.get(key, ""), best.reason)
        return best

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        device, _, point = key.partition("/")
        if point in self._singles.get(device, {}):
            return True
        return any(point in cols.index for cols in self._frames.get(device, {}).values())

    def _keys(self) -> dict[str, None]:
        keys: dict[str, None] = {}
        for device in {*self._frames, *self._singles}:
            for cols in self._frames.get(device, {}).values():
                keys.update(dict.fromkeys(f"{device}/{p}" for p in cols.index))
            keys.update(dict.fromkeys(f"{device}/{p}" for p in self._singles.get(device, {})))
        return keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


class Pipeline:
    """Readings and waveforms in, summary (and later alert and vibration) records out."""

    def __init__(self, summaries: SummaryAggregator, units: dict[str, str], emit: Emit) -> None:
        self.summaries = summaries
        self._units = units
        self._emit = emit
        self.latest = LatestValues(units)
        self.readings_good = 0
        self.readings_bad = 0
        self._raw: dict[str, tuple[object, RawTelemetry | None]] = {}

    def set_units(self, units: dict[str, str]) -> None:
        """Replace the unit table (after a config change)."""
        self._units = units
        self.latest.set_units(units)

    def on_readings(self, device: str, readings: Sequence[Reading]) -> CycleFrame:
        """Take one device's readings (a poll cycle or a subscription batch); return them as a frame."""
        frame = CycleFrame(device, readings)
        self.summaries.add_frame(frame)
        self.latest.update_device(device, frame)
        good = len(frame) if frame.all_good else frame.qualities.count(Quality.GOOD)
        self.readings_good += good
        self.readings_bad += len(frame) - good
        return frame

    def raw_telemetry(self, device: RawDeviceSettings, agent_id: str) -> RawTelemetry | None:
        """The raw-telemetry state of ``device`` (None when it publishes none), kept across cycles.

        Rebuilt when the device's config changes (report-by-exception starts afresh); a new config in which
        the device is unchanged keeps its state (compared once, then the new object is the key).
        """
        cached = self._raw.get(device.name)
        if cached is not None and cached[0] is device:
            return cached[1]
        if cached is not None and cached[0] == device:  # a new config with this device unchanged: keep going
            self._raw[device.name] = (device, cached[1])
            return cached[1]
        settings = RawTelemetrySettings.of_device(device)
        raw = RawTelemetry(settings, agent_id) if settings is not None else None
        self._raw[device.name] = (device, raw)
        return raw

    async def on_waveforms(self, device: str, waveforms: Sequence[Waveform]) -> None:
        """Take waveforms captured by a device (vibration analysis hooks in here)."""
        for w in waveforms:
            key = f"{device}/{w.point}"
            self.latest.set(key, LatestValue(f"waveform[{len(w.samples)}]", w.quality, w.ts, w.unit, None))

    #: Extra fields per asset for each summary (the agent adds the interval's alarm counts).
    summary_extras: Callable[[str], dict[str, object]] | None = None

    async def close_summary_interval(self, end_s: float,
                                     pause: Callable[[], Awaitable[None]] | None = None,
                                     summaries: SummaryAggregator | None = None) -> int:
        """Close the summary interval at ``end_s`` (epoch s) and emit one record per asset (per part, for an
        asset too big for one message); return the number of records.

        The interval is taken out of the aggregator at once (readings from here on count in the next one);
        its points are then encoded as JSON text in slices of :data:`~edge_agent.summaries.SLICE_POINTS`
        points with a pass through the event loop before and between slices, so a poll tick on the same
        boundary (the grids coincide) runs first and no tick waits for the whole close. Each record's
        ``points`` is a :class:`~edge_agent.records.RawJson` (spliced into the payload by
        :func:`~edge_agent.records.encode_payload`): the close holds no dict per point of the interval.
        ``pause`` replaces that pass between slices (the agent gives way to running poll cycles there, see
        :class:`~edge_agent.scheduler.PollActivity`). ``summaries``: close that aggregator instead of the
        current one (a config change swaps in the new aggregator first, so no reading falls between them).
        """
        pause = pause or _one_pass
        closing = (summaries or self.summaries).detach(end_s)
        # The alarm counts go with the readings: taken now, before any pause lets the boundary tick's poll
        # run (its readings count in the next interval, so must the alarms they raise).
        extras = ({asset: self.summary_extras(asset) for asset in closing.assets}
                  if self.summary_extras is not None else {})
        steps = closing.encode_steps()
        try:
            await pause()
            for _ in steps:
                await pause()
        except asyncio.CancelledError:
            # A stop or a reconfigure cancelled the close while it gave way: finish it without pausing, so
            # the interval (already taken out of the aggregator) is stored, not lost; then let the cancel on.
            for _ in steps:
                pass
            await self._emit_closed(closing.encoded(), extras)
            raise
        return await self._emit_closed(closing.encoded(), extras)

    async def _emit_closed(self, summaries: list[EncodedSummary], extras: dict[str, dict[str, object]]) -> int:
        """Emit each summary (every part of an asset with the same extras); return how many."""
        cancelled: asyncio.CancelledError | None = None
        for summary in summaries:
            body = summary.body
            body["availability_pct"] = _availability(summary.count, summary.good)
            body.update(extras.get(summary.asset, {}))
            try:
                await self._emit(f"summary/{summary.asset}", body, Priority.SUMMARY)
            except asyncio.CancelledError as exc:
                # the record was handed to the outbox before the wait was cancelled: store the rest too
                cancelled = exc
        if cancelled is not None:
            raise cancelled
        return len(summaries)


async def _one_pass() -> None:
    await asyncio.sleep(0)


def _availability(count: int, good: int) -> float | None:
    """% of ``count`` readings that were good, 2 decimals (None: no readings)."""
    return round(100.0 * good / count, 2) if count else None


def availability_pct(body: dict[str, object]) -> float | None:
    """Comms availability of an asset over a summary interval: % of its readings that were good."""
    points = body.get("points")
    if not isinstance(points, dict):
        return None
    count = sum(int(p.get("count") or 0) for p in points.values() if isinstance(p, dict))
    good = sum(int(p.get("good") or 0) for p in points.values() if isinstance(p, dict))
    return _availability(count, good)
