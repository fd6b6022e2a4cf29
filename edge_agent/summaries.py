"""Per-interval statistics of every point, grouped by asset.

Accumulators are plain lists, one slot per point of a device, updated in bulk once per poll cycle from the
cycle's :class:`~edge_agent.telemetry.CycleFrame` with a handful of C-level passes (``map`` over
``operator`` functions, ``compress``); Python loops only visit the readings that are not good numbers.
No numpy: a Modbus-only agent does not load it.

Statistics: ``count`` (every reading), ``good`` (good readings with a value), ``min``, ``max``, ``mean``
and ``std`` (sample standard deviation, over good numeric values; bools count as 0/1), ``last`` (the last
good value, strings and bools as they are) and ``twa`` (time-weighted mean, each value held until the
next one). Mean and variance come from sums shifted by the point's first value of the interval
(``d = x - first``: sum of d and of d²), which keeps them exact to a few ulps for values like
1e9 + small noise (the shift is a sample, so the cancellation is bounded by the number of samples).

At the end of each summary interval :meth:`SummaryAggregator.detach` swaps the accumulators for fresh
ones (cheap, at the boundary) and returns a :class:`ClosedInterval` whose bodies are built in slices, so
the event loop can run a poll between two slices. The agent's path, :meth:`ClosedInterval.encode_steps`,
encodes each slice's points as JSON text at once and keeps only the text: the close never holds one dict
per point of the whole interval.
"""

from __future__ import annotations

import logging
import math
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, MutableSequence, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add, gt, lt, mul, not_, sub, truediv
from typing import Any

from drivers.base import Quality, Reading
from edge_agent.records import RawJson, encode_json
from edge_agent.telemetry import CycleFrame, LayoutIndex, consume, gather, where

log = logging.getLogger(__name__)

_NAN = math.nan
_GOOD = Quality.GOOD
_INF = math.inf

#: Points per slice of a summary close (a slice, encoded to JSON, is about 1.5 ms of CPU; without the
#: encoding, :meth:`ClosedInterval.steps`, well under a millisecond).
SLICE_POINTS = 256
#: Default bound of one summary message, bytes: AWS IoT Core's limit (128 KB), under Azure IoT Hub's
#: (256 KB) and any broker's; an asset whose points do not fit is sent in parts.
DEFAULT_MAX_MESSAGE_BYTES = 128_000
#: What a summary message carries besides its ``points`` (envelope, asset, interval, availability, alarm
#: counts, part numbers): reserved out of the message bound, bytes.
ENVELOPE_RESERVE_BYTES = 2_048


#: Means, standard deviations and time-weighted means go out with 6 decimals or 9 significant digits,
#: whichever keeps more: short in JSON, exact enough for any sensor at any magnitude (6 decimals alone turn
#: 2e-7 into 0.0, a mean outside [min, max]; 9 digits alone lose the noise on a counter near 1e9).
DECIMALS = 6
SIGNIFICANT_DIGITS = 9
_DECIMALS_WIN_ABOVE = 10.0 ** (SIGNIFICANT_DIGITS - DECIMALS)


def _round_one(x: float) -> float:
    if abs(x) >= _DECIMALS_WIN_ABOVE or x != x:
        return round(x, DECIMALS)
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def _rounded(values: Iterable[float]) -> list[float]:
    """``values`` rounded as described at :data:`DECIMALS`."""
    return list(map(_round_one, values))


class DeviceStats:
    """Running statistics of every point of one device over one interval, as lists indexed by position.

    Counts are kept as ``frames`` (the frames that covered every position in order, all at once) plus a
    per-position offset, so the common full cycle counts in O(1).
    """

    def __init__(self, names: Iterable[str] = (), index: LayoutIndex | None = None,
                 start_s: float = -math.inf) -> None:
        self.index = index if index is not None else LayoutIndex(names)
        #: epoch s the interval starts: earlier timestamps (an OPC UA value unchanged for hours carries its
        #: old source time) weigh from here, not from before the interval
        self.start_s = start_s
        self.frames = 0
        self.count: list[int] = []  # offsets to ``frames``
        self.good: list[int] = []
        self.numeric: list[int] = []
        # The extremes and the four sums are machine doubles (8 bytes each, no float object per point: at
        # 10 000 points ~1.5 MB less for each interval alive, and a summary close holds two).
        self.min: array[float] = array("d")
        self.max: array[float] = array("d")
        self.shift: array[float] = array("d")  # the first value of the interval (0.0 until there is one)
        self.s1: array[float] = array("d")  # sum of (x - shift)
        self.s2: array[float] = array("d")  # sum of (x - shift)²
        self.area: array[float] = array("d")  # sum of value x seconds held, between consecutive values
        self.first_ts: list[float] = []  # epoch s of the first value
        self.span_fix: dict[int, float] = {}  # seconds to add to (prev_ts - first_ts): time steps back
        self.prev_value: list[float] = []  # the last numeric value (NaN: none yet)
        self.prev_ts: list[float] = []
        self.last_seq: list[int] = []
        self.last_bool: list[bool] = []
        self.any_bool = False
        self.unset: set[int] = set()  # positions with no numeric value yet
        self.last_other: dict[int, tuple[int, object]] = {}  # position -> (cycle seq, good non-numeric value)
        self.seq = 0
        self._ts_high = -_INF  # >= every prev_ts
        self._shared = False  # prev_value and prev_ts are a frame's lists
        self._bools_at: list[int] | None = []  # the positions where last_bool is True, when known
        self._fit()

    def __len__(self) -> int:
        return len(self.min)

    def _fit(self) -> None:
        n, old = len(self.index), len(self.min)
        if old >= n:
            return
        k = n - old
        self._own()
        for ints in (self.count, self.good, self.numeric, self.last_seq):
            ints.extend(repeat(0, k))
        self.min.extend(repeat(_INF, k))
        self.max.extend(repeat(-_INF, k))
        for zeros in (self.shift, self.s1, self.s2, self.area):
            zeros.extend(repeat(0.0, k))
        for nans in (self.first_ts, self.prev_value, self.prev_ts):
            nans.extend(repeat(_NAN, k))
        self.last_bool.extend(repeat(False, k))
        self.unset.update(range(old, n))

    def add(self, frame: CycleFrame) -> None:
        """Add one frame (one cycle of the device, or a subscription batch)."""
        layout = self.index.positions(frame.names)
        self._fit()
        self.seq += 1
        n = len(frame)
        full = layout is None and n == len(self.min)
        pos = layout  # None: frame index i is position i
        odd = frame.exceptions()
        if full and not odd and not self.unset:
            self._add_regular(frame)
            return
        self._own()
        not_good = frame.not_good() if odd else []
        at = (lambda i: i) if pos is None else pos.__getitem__
        # counts
        if full:
            self.frames += 1
        else:
            for column in (self.count, self.good, self.numeric):
                p = range(n) if pos is None else pos
                consume(map(column.__setitem__, p, map(add, map(column.__getitem__, p), repeat(1))))
        for i in odd:
            self.numeric[at(i)] -= 1
        for i in not_good:
            self.good[at(i)] -= 1
        self._add_numbers(frame, pos, full, odd)
        for i in odd:  # good but not a number: strings, enum names (a NaN float is no value to report)
            value = frame.values[i]
            if frame.qualities[i] is _GOOD and value is not None and not isinstance(value, float):
                self.last_other[at(i)] = (self.seq, value)

    def _own(self) -> None:
        """Take copies of the frame lists ``prev_value`` and ``prev_ts`` before changing them in place."""
        if self._shared:
            self.prev_value = self.prev_value[:]
            self.prev_ts = self.prev_ts[:]
            self._shared = False

    def _add_regular(self, frame: CycleFrame) -> None:
        """The common cycle: every position, in order, a good finite number, and each position has had one.

        About ten C-level passes over the values, no Python work per value.
        """
        self.frames += 1
        x = frame.numbers()
        ts = frame.timestamps()
        # straight into the columns: C-level scans and passes while the values are still hot in the cache
        mn, mx = self.min, self.max
        new = where(map(lt, x, mn))
        consume(map(mn.__setitem__, new, map(x.__getitem__, new)))
        new = where(map(gt, x, mx))
        consume(map(mx.__setitem__, new, map(x.__getitem__, new)))
        d = list(map(sub, x, self.shift))
        self.s1 = array("d", map(add, self.s1, d))
        self.s2 = array("d", map(add, self.s2, map(mul, d, d)))
        ts, low = self._from_start(ts)
        if low >= self._ts_high:  # no time step back: each value held from its previous time to now
            self.area = array("d", map(add, self.area, map(mul, self.prev_value, map(sub, ts, self.prev_ts))))
        else:
            self._add_area(ts, self.prev_value, self.prev_ts, None)
        self._ts_high = max(ts)
        self.prev_value = x  # the frame's own lists, shared: replaced, never changed in place (see _own)
        self.prev_ts = ts
        self._shared = True
        self.last_seq = [self.seq] * len(x)
        bools = frame.bool_positions() or []
        if bools != self._bools_at:  # which positions hold a bool changed: rebuild the flags
            self.last_bool = [False] * len(x)
            consume(map(self.last_bool.__setitem__, bools, repeat(True)))
            self._bools_at = bools
            self.any_bool = bool(bools)

    def _from_start(self, ts: list[float]) -> tuple[list[float], float]:
        """``ts`` with times before the interval start moved to it (a copy then: the frame's list is shared
        with the other consumers of the frame), and the earliest of them."""
        low = min(ts)
        if low < self.start_s:
            return list(map(max, ts, repeat(self.start_s))), self.start_s
        return ts, low

    def _add_area(self, ts: list[float], prev_value: list[float], prev_ts: list[float],
                  pos: list[int] | None, keep: Iterable[int] = ()) -> list[float]:
        """Add each value held from its previous time to ``ts`` to the areas (frame order, positions ``pos``);
        a step back in time or a position in ``keep`` adds nothing (a step back adds its length to the span
        fix). Returns the time steps (s)."""
        n = len(ts)
        dt = list(map(sub, ts, prev_ts))  # NaN where there is no previous value (those are in ``keep``)
        for i in keep:
            dt[i] = 0.0
        back = where(map(lt, dt, repeat(0.0)))
        for i in back:  # time stepped back: no weight (as if held for 0 s), and fix the span
            at_p = i if pos is None else pos[i]
            self.span_fix[at_p] = self.span_fix.get(at_p, 0.0) - dt[i]
            dt[i] = 0.0
        area = _gather_doubles(self.area, pos, n)
        area_new = list(map(add, area, map(mul, prev_value, dt)))
        for i in keep:  # NaN x 0.0 is NaN: put the old area back
            area_new[i] = area[i]
        if pos is None and n == len(self.area):
            self.area = array("d", area_new)
        else:
            consume(map(self.area.__setitem__, range(n) if pos is None else pos, area_new))
        return dt

    def _add_numbers(self, frame: CycleFrame, pos: list[int] | None, full: bool, odd: list[int]) -> None:
        """Update min, max, sums, time weights and the last value from the frame's good numbers."""
        n = len(frame)
        x = frame.numbers()
        ts = frame.timestamps()
        if len(odd) == n:  # not one number
            return
        ts = self._from_start(ts)[0]
        # the frame's view of each column: the column itself for a full frame, else a gathered copy
        mn, mx = ((self.min, self.max) if full
                  else (_gather_doubles(self.min, pos, n), _gather_doubles(self.max, pos, n)))
        # min and max: C-level scan for the new extremes, then a scatter of those only (NaN never wins)
        new = where(map(lt, x, mn))
        consume(map(mn.__setitem__, new, map(x.__getitem__, new)))
        new = where(map(gt, x, mx))
        consume(map(mx.__setitem__, new, map(x.__getitem__, new)))
        shift = _gather_doubles(self.shift, pos, n)
        first_ts = gather(self.first_ts, pos, n)
        prev_value = gather(self.prev_value, pos, n)
        prev_ts = gather(self.prev_ts, pos, n)
        fresh: list[int] = []  # frame indices of positions that get their first number now
        if self.unset:  # the first value is the shift and the start of the time weights
            fresh = list(range(n)) if full and len(self.unset) == n else where(
                map(self.unset.__contains__, range(n) if pos is None else pos))
            if odd:
                fresh = sorted(set(fresh).difference(odd))
            consume(map(shift.__setitem__, fresh, map(x.__getitem__, fresh)))
            consume(map(first_ts.__setitem__, fresh, map(ts.__getitem__, fresh)))
            self.unset.difference_update(fresh if pos is None else map(pos.__getitem__, fresh))
            if not self.unset:  # a set keeps its table when emptied: ~0.5 MB for 10 000 positions
                self.unset = set()
        s1, s2 = _gather_doubles(self.s1, pos, n), _gather_doubles(self.s2, pos, n)
        d = list(map(sub, x, shift))
        s1_new = list(map(add, s1, d))
        s2_new = list(map(add, s2, map(mul, d, d)))
        keep = odd if not fresh else sorted({*odd, *fresh})  # positions with no time step to weigh
        self._add_area(ts, prev_value, prev_ts, pos, keep)
        value_new = list(x)
        ts_new = list(ts)
        seq_new = [self.seq] * n
        bools = frame.bool_positions()
        last_bool: list[bool] | None = None
        if bools is not None:
            last_bool = [False] * n
            consume(map(last_bool.__setitem__, bools, repeat(True)))
        elif self.any_bool:
            last_bool = [False] * n
        if odd:  # not a number: every numeric column keeps its value
            old_seq = gather(self.last_seq, pos, n)
            old_bool = gather(self.last_bool, pos, n) if last_bool is not None else None
            for i in odd:
                s1_new[i] = s1[i]
                s2_new[i] = s2[i]
                value_new[i] = prev_value[i]
                ts_new[i] = prev_ts[i]
                seq_new[i] = old_seq[i]
                if last_bool is not None and old_bool is not None:
                    last_bool[i] = old_bool[i]
        columns: list[tuple[MutableSequence[Any], MutableSequence[Any]]] = [
            (self.s1, s1_new), (self.s2, s2_new), (self.prev_value, value_new),
            (self.prev_ts, ts_new), (self.last_seq, seq_new)]
        if fresh:
            columns += [(self.shift, shift), (self.first_ts, first_ts)]
        if last_bool is not None:
            columns.append((self.last_bool, last_bool))
        if not full:
            columns += [(self.min, mn), (self.max, mx)]
        for column, values in columns:
            if values is column:  # gathered as the column itself (identity layout) and changed in place
                continue
            if full:
                column[:] = array(column.typecode, values) if isinstance(column, array) else values
            else:
                consume(map(column.__setitem__, range(n) if pos is None else pos, values))
        self._ts_high = max(self._ts_high, max(ts))
        self._bools_at = None
        if last_bool is not None:
            self.any_bool = bools is not None or any(self.last_bool)

    def body_slices(self, end_s: float, statistics: Iterable[str],
                    slice_points: int = SLICE_POINTS) -> Iterator[dict[str, dict[str, object]]]:
        """The summary of every point (by name) for an interval ending at ``end_s`` (epoch s), without units,
        ``slice_points`` points at a time (a few C-level passes per statistic, one small dict per point)."""
        wanted = [k for k in statistics if k in _STATISTICS]
        n = len(self.min)
        names = list(self.index.position)[:n]
        for start in range(0, n, slice_points):
            stop = min(n, start + slice_points)
            cols = self._columns(start, stop, end_s, wanted)
            rows = zip(*(cols[k] for k in wanted), strict=True)
            yield dict(zip(names[start:stop], map(dict, map(zip, repeat(wanted), rows)), strict=False))

    def bodies(self, end_s: float, statistics: Iterable[str]) -> dict[str, dict[str, object]]:
        """All of :meth:`body_slices` at once."""
        out: dict[str, dict[str, object]] = {}
        for part in self.body_slices(end_s, statistics):
            out.update(part)
        return out

    def _columns(self, start: int, stop: int, end_s: float, wanted: list[str]) -> dict[str, list[Any]]:
        """The statistics of positions ``start:stop`` as columns (None where a statistic has no value)."""
        frames = self.frames
        numeric = list(map(add, self.numeric[start:stop], repeat(frames)))
        none = where(map(not_, numeric))  # no number in the interval
        cols: dict[str, list[Any]] = {}
        if "count" in wanted:
            cols["count"] = list(map(add, self.count[start:stop], repeat(frames)))
        if "good" in wanted:
            cols["good"] = list(map(add, self.good[start:stop], repeat(frames)))
        if "min" in wanted:
            cols["min"] = _none_at(self.min[start:stop].tolist(), none)
        if "max" in wanted:
            cols["max"] = _none_at(self.max[start:stop].tolist(), none)
        s1 = self.s1[start:stop]
        den = numeric[:]
        consume(map(den.__setitem__, none, repeat(1)))
        mean = _rounded(map(add, self.shift[start:stop], map(truediv, s1, den)))
        if "twa" in wanted:
            cols["twa"] = self._twa(start, stop, end_s, none, mean)
        if "mean" in wanted:
            cols["mean"] = _none_at(mean, none)
        if "std" in wanted:
            # sample variance from the shifted sums: (s2 - s1²/n) / (n - 1)
            single = where(map(gt, repeat(2), numeric))
            den1 = list(map(sub, numeric, repeat(1)))
            consume(map(den1.__setitem__, single, repeat(1)))
            spread = list(map(sub, self.s2[start:stop], map(truediv, map(mul, s1, s1), den)))
            for i in where(map(lt, spread, repeat(0.0))):  # rounding below zero
                spread[i] = 0.0
            std = _rounded(map(math.sqrt, map(truediv, spread, den1)))
            cols["std"] = _none_at(std, single)
        if "last" in wanted:
            cols["last"] = self._last_values(start, stop, none)
        return cols

    def _twa(self, start: int, stop: int, end_s: float, none: list[int], mean: list[float]) -> list[Any]:
        """Time-weighted means of positions ``start:stop``, each value held until the next one and the last
        until ``end_s`` (epoch s); ``mean`` where no time passed."""
        prev_ts = self.prev_ts[start:stop]
        hold = list(map(sub, repeat(end_s), prev_ts))
        consume(map(hold.__setitem__, none, repeat(0.0)))
        for i in where(map(lt, hold, repeat(0.0))):
            hold[i] = 0.0
        area = list(map(add, self.area[start:stop], map(mul, self.prev_value[start:stop], hold)))
        span = list(map(add, map(sub, prev_ts, self.first_ts[start:stop]), hold))
        for p, extra in self.span_fix.items():
            if start <= p < stop:
                span[p - start] += extra
        consume(map(span.__setitem__, none, repeat(0.0)))
        flat = where(map(not_, map(gt, span, repeat(0.0))))
        consume(map(span.__setitem__, flat, repeat(1.0)))
        twa = _rounded(map(truediv, area, span))
        consume(map(twa.__setitem__, flat, map(mean.__getitem__, flat)))
        return _none_at(twa, none)

    def _last_values(self, start: int, stop: int, none: list[int]) -> list[object]:
        """The last good value of positions ``start:stop``: numbers as float, bools as bool, strings as they
        came."""
        last: list[object] = _none_at(self.prev_value[start:stop], none)
        if self.any_bool:
            for i in where(self.last_bool[start:stop]):
                if last[i] is not None:
                    last[i] = bool(last[i])
        seq = self.last_seq
        for p, (when, value) in self.last_other.items():
            if start <= p < stop and when >= seq[p]:
                last[p - start] = value
        return last


def _gather_doubles(values: array[float], positions: Sequence[int] | None, n: int) -> MutableSequence[float]:
    """:func:`~edge_agent.telemetry.gather` for a column of doubles (the column itself for the identity
    layout: treat it as read-only, or write it back whole)."""
    if positions is None:
        return values if len(values) == n else values[:n]
    return list(map(values.__getitem__, positions))


_STATISTICS = frozenset({"count", "good", "min", "max", "mean", "std", "last", "twa"})


def _none_at(values: list[Any], missing: list[int]) -> list[Any]:
    """``values`` (a list this call may change) with None at the indices ``missing``."""
    consume(map(values.__setitem__, missing, repeat(None)))
    return values


class ClosedInterval:
    """A summary interval taken out of the aggregator; its bodies are built by :meth:`steps`, in slices."""

    def __init__(self, start_s: float, end_s: float, stats: Mapping[str, DeviceStats],
                 plan: list[tuple[str, list[tuple[str, str, str, str]]]], statistics: tuple[str, ...],
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_message_bytes = max_message_bytes
        self.start_s = start_s
        self.end_s = end_s
        self._stats = stats
        self._plan = plan
        self._statistics = statistics
        self._result: list[tuple[str, dict[str, object]]] | None = None
        self._encoded: list[EncodedSummary] | None = None

    @property
    def assets(self) -> list[str]:
        """The assets this interval summarises, in plan order."""
        return [asset for asset, _ in self._plan]

    def steps(self, slice_points: int = SLICE_POINTS) -> Iterator[None]:
        """Build the bodies, yielding after each slice of about ``slice_points`` points (a pause point for
        the caller); afterwards :meth:`bodies` returns them."""
        if self._result is not None:
            return
        per_device: dict[str, dict[str, dict[str, object]]] = {}
        for device, stats in self._stats.items():
            out = per_device[device] = {}
            for part in stats.body_slices(self.end_s, self._statistics, slice_points):
                out.update(part)
                yield
        wanted = [k for k in self._statistics if k in _STATISTICS]
        result: list[tuple[str, dict[str, object]]] = []
        done = 0
        for asset, keys in self._plan:
            points: dict[str, object] = {}
            for key, device, name, unit in keys:
                body = per_device.get(device, {}).get(name)
                if body is None:
                    body = {k: _EMPTY.get(k) for k in wanted}
                body["unit"] = unit
                points[key] = body
                done += 1
                if done % (4 * slice_points) == 0:
                    yield
            result.append((asset, {
                "asset": asset,
                "start": int(self.start_s * 1000),
                "end": int(self.end_s * 1000),
                "points": points,
            }))
        self._result = result

    def bodies(self) -> list[tuple[str, dict[str, object]]]:
        """The ``(asset, body)`` pairs of the interval (building what :meth:`steps` has not built yet)."""
        for _ in self.steps():
            pass
        assert self._result is not None
        return self._result

    def encode_steps(self, slice_points: int = SLICE_POINTS) -> Iterator[None]:
        """Encode each asset's ``points`` object as JSON text, yielding after each slice of about
        ``slice_points`` points; afterwards :meth:`encoded` returns the summaries.

        A slice's per-point dicts are made, encoded (the payload encoder settings) and dropped: what is kept
        is the text (one chunk per asset and slice) and each asset's sums of ``count`` and ``good``. The
        decoded text equals the ``points`` of :meth:`bodies` (points in device order, not plan order).
        Alternative to :meth:`steps`: use one or the other on an interval.

        An asset whose ``points`` text would make a message larger than :attr:`max_message_bytes` is split
        into parts (whole points each, in order); every part carries the asset's ``count``/``good`` sums.
        """
        if self._encoded is not None:
            return
        budget = max(1, self.max_message_bytes - ENVELOPE_RESERVE_BYTES)  # for the points text, bytes
        wanted = [k for k in self._statistics if k in _STATISTICS]
        # where each summarised point goes: device -> point name -> (asset index, key, unit), or a list of
        # them for a point in several assets (the common single route costs no list: 10 000 points, ~1 MB)
        routes: dict[str, dict[str, _Route | list[_Route]]] = {}
        for a, (_, keys) in enumerate(self._plan):
            for key, device, name, unit in keys:
                table = routes.setdefault(device, {})
                route = (a, key, unit)
                known = table.get(name)
                if known is None:
                    table[name] = route
                elif isinstance(known, list):
                    if route not in known:  # a key listed twice in an asset is one point
                        known.append(route)
                elif known != route:
                    table[name] = [known, route]
        chunks: list[list[bytes]] = [[] for _ in self._plan]
        count = [0] * len(self._plan)
        good = [0] * len(self._plan)

        def add(part: Iterable[tuple[str, dict[str, object]]], to: dict[str, _Route | list[_Route]]) -> None:
            per_asset: dict[int, dict[str, dict[str, object]]] = {}
            for name, body in part:
                found = to.pop(name, None)
                for a, key, unit in (() if found is None else found if isinstance(found, list) else (found,)):
                    body["unit"] = unit  # the unit is the key's: the same for every asset it is in
                    per_asset.setdefault(a, {})[key] = body
                    count[a] += int(body.get("count") or 0)  # type: ignore[call-overload]
                    good[a] += int(body.get("good") or 0)  # type: ignore[call-overload]
            for a, points in per_asset.items():
                chunks[a].extend(_encode_chunks(points, budget))

        for device, stats in self._stats.items():
            to = routes.get(device)
            if not to:
                continue
            for part in stats.body_slices(self.end_s, self._statistics, slice_points):
                add(part.items(), to)
                yield
        # points of the plan no device summarised (no reading ever): counts 0, no values
        missing = [(name, to) for to in routes.values() for name in to]
        for start in range(0, len(missing), slice_points):
            for name, to in missing[start:start + slice_points]:
                add([(name, {k: _EMPTY.get(k) for k in wanted})], to)
            yield
        result: list[EncodedSummary] = []
        for a, (asset, _) in enumerate(self._plan):
            parts = _parts(chunks[a], budget)
            chunks[a] = []
            for number, text in enumerate(parts, 1):
                body: dict[str, object] = {
                    "asset": asset,
                    "start": int(self.start_s * 1000),
                    "end": int(self.end_s * 1000),
                    "points": RawJson(text),
                }
                if len(parts) > 1:
                    body["part"] = number
                    body["parts"] = len(parts)
                result.append(EncodedSummary(asset, body, count[a], good[a]))
        self._encoded = result

    def encoded(self) -> list[EncodedSummary]:
        """The summaries of the interval with ``points`` as JSON text (encoding what :meth:`encode_steps` has
        not encoded yet)."""
        for _ in self.encode_steps():
            pass
        assert self._encoded is not None
        return self._encoded


_Route = tuple[int, str, str]
"""Where a summarised point goes: (asset index in the plan, ``device/point`` key, unit)."""


@dataclass(slots=True)
class EncodedSummary:
    """One asset's summary of a closed interval, its ``points`` already JSON text."""

    asset: str
    #: ``asset``, ``start``, ``end`` (epoch ms) and ``points`` (a :class:`~edge_agent.records.RawJson`)
    body: dict[str, object]
    #: the sums over the points of ``count`` and ``good`` (0 when those statistics are not summarised)
    count: int
    good: int


def _encode_chunks(points: dict[str, dict[str, object]], budget: int) -> list[bytes]:
    """``points`` as JSON members without the braces, in chunks of at most ``budget`` bytes each (a single
    point larger than that is a chunk of its own)."""
    text = _encode_points(points)[1:-1]
    if len(text) + 2 <= budget:
        return [text]
    if len(points) == 1:
        return [_fit_one_point(points, text, budget)]
    items = list(points.items())
    half = len(items) // 2
    return _encode_chunks(dict(items[:half]), budget) + _encode_chunks(dict(items[half:]), budget)


def _fit_one_point(point: dict[str, dict[str, object]], text: bytes, budget: int) -> bytes:
    """The JSON member of a single point too big for a message on its own (a long text value, e.g. an OPC UA
    String as ``last``): its text statistics are sent as null, with a warning, so the message stays within
    ``summaries.max_message_size``."""
    ((key, body),) = point.items()
    long_text = [k for k, v in body.items() if isinstance(v, str) and k != "unit"]
    if not long_text:
        return text
    log.warning("summary: point %s is %d bytes of JSON, over summaries.max_message_size; its text statistics "
                "(%s) are sent as null", key, len(text) + 2, ", ".join(long_text))
    for k in long_text:
        body[k] = None
    return _encode_points(point)[1:-1]


def _parts(chunks: list[bytes], budget: int) -> list[list[bytes]]:
    """Chunks of JSON members joined into ``{...}`` texts (as pieces) of at most ``budget`` bytes each."""
    parts: list[list[bytes]] = []
    text: list[bytes] = [b"{"]
    size = 2
    for chunk in chunks:
        if size > 2 and size + 1 + len(chunk) > budget:
            text.append(b"}")
            parts.append(text)
            text, size = [b"{"], 2
        if size > 2:
            text.append(b",")
            size += 1
        text.append(chunk)
        size += len(chunk)
    text.append(b"}")
    parts.append(text)
    return parts


def _encode_points(points: dict[str, dict[str, object]]) -> bytes:
    """``points`` as JSON; a statistic that is NaN or infinite (an overflow of extreme values) is sent as null."""
    try:
        return encode_json(points, "$.points")
    except ValueError as exc:
        log.warning("summary: %s; sent as null", exc)
        for body in points.values():
            for k, v in body.items():
                if isinstance(v, float) and not math.isfinite(v):
                    body[k] = None
        return encode_json(points, "$.points")


class SummaryAggregator:
    """Collects readings into per-asset summaries for consecutive intervals.

    ``asset_points`` maps each asset name to its point keys (``device/point``); ``units`` gives each point's
    unit and names the points that are summarised (others are ignored). A reading is keyed ``device/point``.
    """

    def __init__(
        self,
        asset_points: Mapping[str, list[str]],
        units: Mapping[str, str],
        statistics: Iterable[str],
        start_s: float,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self._units = dict(units)
        self._statistics = tuple(statistics)
        self._start_s = start_s
        self._devices: dict[str, list[str]] = {}
        intern = sys.intern  # names split off the keys: one object per name, shared with the config's
        for key in self._units:
            device, _, point = key.partition("/")
            self._devices.setdefault(intern(device), []).append(intern(point))
        self._plan: list[tuple[str, list[tuple[str, str, str, str]]]] = []
        for asset, keys in asset_points.items():
            rows = []
            for key in keys:
                unit = self._units.get(key)
                if unit is not None:
                    device, _, name = key.partition("/")
                    rows.append((intern(key), intern(device), intern(name), unit))
            self._plan.append((asset, rows))
        self._stats: dict[str, DeviceStats] = {}
        self._reset()

    def _reset(self) -> None:
        old = self._stats
        fresh: dict[str, DeviceStats] = {}
        for device, points in self._devices.items():
            previous = old.get(device)
            # the layout index (and its cached reading orders) carries over while it holds just the config's points
            index = previous.index if previous is not None and len(previous.index) == len(points) else None
            fresh[device] = DeviceStats(points, index, self._start_s)
        self._stats = fresh

    def reset_start(self, start_s: float) -> None:
        """Discard what was collected and start the current interval at ``start_s`` (epoch s)."""
        self._start_s = start_s
        self._reset()

    @property
    def start_s(self) -> float:
        """Start of the current interval (epoch s)."""
        return self._start_s

    def add(self, device: str, readings: list[Reading] | tuple[Reading, ...]) -> None:
        """Add the readings of one device's poll cycle."""
        if readings:
            self.add_frame(CycleFrame(device, readings))

    def add_frame(self, frame: CycleFrame) -> None:
        """Add one device's cycle as a frame (the pipeline builds it once for every consumer)."""
        stats = self._stats.get(frame.device)
        if stats is not None:
            stats.add(frame)

    def detach(self, end_s: float) -> ClosedInterval:
        """End the interval at ``end_s`` (epoch s) and start the next one; the ended interval's bodies are
        built from the returned :class:`ClosedInterval` (in slices, see :meth:`ClosedInterval.steps`).

        Cheap (no per-point work): call it at the boundary, build the bodies after.
        """
        closed = ClosedInterval(self._start_s, end_s, self._stats, self._plan, self._statistics,
                                self.max_message_bytes)
        self._start_s = end_s
        self._reset()
        return closed

    def close(self, end_s: float) -> list[tuple[str, dict[str, object]]]:
        """Close the interval at ``end_s`` (epoch s); return ``(asset, body)`` pairs and start the next."""
        return self.detach(end_s).bodies()


#: A point with no reading in the interval.
_EMPTY: dict[str, object] = {"count": 0, "good": 0}
