"""Raw telemetry: a poll cycle's values as columns, report by exception, and the message built once.

A device's readings arrive here once per cycle and become a :class:`CycleFrame`: names, values and
qualities as parallel lists, plus (computed on demand, once) a float64 array of the good numeric values
with NaN elsewhere. The summaries, the latest-value cache and raw telemetry all read the same frame, so
the hot path does a handful of C-level passes per cycle instead of Python work per value.

Raw telemetry (DESIGN.md, wire format) is one message per poll cycle per device on
``{prefix}/telemetry/{device}``::

    {"v": 1, "id": "<uuid7>", "ts": <epoch ms>, "agent": "<id>", "device": "<name>",
     "cycle": <epoch ms of the poll tick>, "values": {"<point>": value, ...},
     "quality": {"<point>": "bad" | "uncertain", ...}}

``quality`` lists only the points that are not good (their value is null when the device gave none).
Subscribed (pushed) points of a device are in each of its cycles with their latest pushed reading
(:meth:`edge_agent.agent.Agent._publish_raw`).
With ``publish_raw: true`` every point is in every message. With ``publish_raw: on_change``
(:class:`ChangeFilter`) a point is in a message when its quality changed, when its value (good or uncertain)
moved from the last *sent* value by more than the deadband (absolute, or percent of the last sent value's
magnitude; 0 means any change; a text or on/off value: any change), or when it was last sent ``heartbeat``
seconds ago or longer; a cycle where no point qualifies sends nothing.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, count, repeat
from operator import and_, attrgetter, ge, gt, is_, is_not, mul, ne, not_, sub
from typing import Any, Literal, Protocol, TypeVar

from drivers.base import Quality, Reading, Value
from edge_agent.records import SCHEMA_VERSION, new_record_id

T = TypeVar("T")

_point = attrgetter("point")
_value = attrgetter("value")
_quality = attrgetter("quality")
_receive_ts = attrgetter("receive_ts")
_source_ts = attrgetter("source_ts")
_NUMERIC_TYPES = frozenset({int, float, bool})
_is_numeric_type = _NUMERIC_TYPES.__contains__
_PLAIN_TYPES = frozenset({int, float})  # %r of a finite one is its JSON
_GOOD = Quality.GOOD
_BAD = Quality.BAD
_NAN = math.nan
#: Ticks on a float grid (k * 0.1 s) can land a hair before a whole heartbeat; this much early still counts.
HEARTBEAT_TOLERANCE_S = 1e-3
#: Quality codes of the change filter's state (-1: never sent).
_QUALITY_CODE = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}

#: Runs an iterator to its end at C speed, keeping nothing: ``consume(map(target.__setitem__, at, values))``
#: is a scatter without a Python loop.
_SINK: deque[object] = deque(maxlen=0)
consume = _SINK.extend


def where(flags: Iterable[object]) -> list[int]:
    """The indices of the true items of ``flags`` (one C-level pass)."""
    return list(compress(count(), flags))


def gather(values: list[T], positions: Sequence[int] | None, n: int) -> list[T]:
    """``values`` at ``positions``; ``None`` means the identity layout ``0..n-1``, for which the answer may be
    ``values`` itself (treat it as read-only)."""
    if positions is None:
        return values if len(values) == n else values[:n]
    return list(map(values.__getitem__, positions))


def _numbers_of(values: list[Value], qualities: list[Quality], all_good: bool,
                types: set[type]) -> tuple[list[float], list[int]]:
    """Good finite numbers as floats with NaN elsewhere, and the indices of the NaNs (ascending)."""
    n = len(values)
    if all_good and types <= _NUMERIC_TYPES:
        odd: list[int] = []
        numbers: list[float] = list(values) if types == {float} else list(map(float, values))  # type: ignore[arg-type]
    else:
        odd_set: set[int] = set()
        if not all_good:
            odd_set.update(compress(range(n), map(is_not, qualities, repeat(_GOOD))))
        if not types <= _NUMERIC_TYPES:
            odd_set.update(compress(range(n), map(not_, map(_is_numeric_type, map(type, values)))))
        odd = sorted(odd_set)
        tmp: list[Any] = list(values)
        consume(map(tmp.__setitem__, odd, repeat(0.0)))
        numbers = list(map(float, tmp))
    if not math.isfinite(sum(numbers)):  # a good inf or NaN (or an overflowing sum): find them
        odd = sorted({*odd, *compress(range(n), map(not_, map(math.isfinite, numbers)))})
    if odd:
        consume(map(numbers.__setitem__, odd, repeat(_NAN)))
    return numbers, odd


class CycleFrame:
    """One device's readings of one cycle (or one subscription batch) as parallel columns.

    ``names``, ``values`` and ``qualities`` follow the order of ``readings``. ``all_good`` is True when
    every reading is good. :meth:`numbers`, :meth:`exceptions`, :meth:`good_mask`, :meth:`bool_positions`
    and :meth:`timestamps` are computed on first use and cached (plain lists, built in C-level passes;
    treat them as read-only).
    """

    __slots__ = ("_bools", "_exceptions", "_not_good", "_numbers", "_ts", "_types", "all_good", "device", "names",
                 "qualities", "readings", "values")

    def __init__(self, device: str, readings: Sequence[Reading]) -> None:
        self.device = device
        self.readings = readings
        self.names: tuple[str, ...] = tuple(map(_point, readings))
        self.values: list[Value] = list(map(_value, readings))
        self.qualities: list[Quality] = list(map(_quality, readings))
        self.all_good = self.qualities.count(_GOOD) == len(self.qualities)
        self._types: set[type] | None = None
        self._numbers: list[float] | None = None
        self._exceptions: list[int] = []
        self._not_good: list[int] | None = None
        self._ts: list[float] | None = None
        self._bools: list[int] | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def value_types(self) -> set[type]:
        """The Python types among the values (one C-level pass, cached)."""
        if self._types is None:
            self._types = set(map(type, self.values))
        return self._types

    @property
    def all_good_numbers(self) -> bool:
        """True when every reading is good and every value is an int, float or bool."""
        return self.all_good and self.value_types <= _NUMERIC_TYPES

    def numbers(self) -> list[float]:
        """Floats: the value where the reading is good and numeric (bool as 0/1), NaN elsewhere.

        Non-finite floats are NaN too (the drivers already mark them bad).
        """
        if self._numbers is None:
            self._numbers, self._exceptions = _numbers_of(self.values, self.qualities, self.all_good,
                                                          self.value_types)
        return self._numbers

    def exceptions(self) -> list[int]:
        """Indices (ascending) of the readings that are not a good finite number: the NaNs of :meth:`numbers`.

        Empty in the common all-good cycle; the consumers loop in Python over these only.
        """
        self.numbers()
        return self._exceptions

    def not_good(self) -> list[int]:
        """Indices (ascending) of the readings that are not good or carry no value (None)."""
        if self._not_good is None:
            if self.all_good and type(None) not in self.value_types:
                self._not_good = []
            else:
                n = len(self.values)
                bad = set(compress(range(n), map(is_not, self.qualities, repeat(_GOOD))))
                if type(None) in self.value_types:
                    bad.update(compress(range(n), map(_is_none, self.values)))
                self._not_good = sorted(bad)
        return self._not_good

    def good_mask(self) -> array[int]:
        """1 where the reading is good and carries a value (strings included), 0 elsewhere."""
        mask = array("B", [1]) * len(self.names)
        consume(map(mask.__setitem__, self.not_good(), repeat(0)))
        return mask

    def bool_positions(self) -> list[int] | None:
        """Indices of the values that are bools; None when there is none (the common case)."""
        if bool not in self.value_types:
            return None
        if self._bools is None:
            self._bools = where(map(is_, map(type, self.values), repeat(bool)))
        return self._bools

    def timestamps(self) -> list[float]:
        """Each reading's time (UTC epoch s): the device's source time when it gave one, else receive time."""
        if self._ts is None:
            receive = list(map(_receive_ts, self.readings))
            source = list(map(_source_ts, self.readings))
            if source.count(None) != len(source):
                receive = [s if s else r for s, r in zip(source, receive, strict=True)]
            self._ts = receive
        return self._ts


def _is_none(value: object) -> bool:
    return value is None


_FRAME_INDEXES: dict[tuple[str, ...], dict[str, int]] = {}


def frame_index(names: tuple[str, ...]) -> dict[str, int]:
    """``{name: position}`` of a reading order (a repeated name: its last position); never change it.

    Orders without repeats share one map for every consumer (the pipeline's latest values, the summaries'
    layout): 10 000 points, ~0.5 MB each. The last 64 orders are kept for lookup.
    """
    index = _FRAME_INDEXES.get(names)
    if index is None:
        index = {name: i for i, name in enumerate(names)}
        if len(index) == len(names):
            if len(_FRAME_INDEXES) >= 64:  # bounded: subscription batches can come in many shapes
                _FRAME_INDEXES.clear()
            _FRAME_INDEXES[names] = index
    return index


class LayoutIndex:
    """Stable positions for the point names of one device, and the permutation for each reading order.

    A device's readings usually arrive in the same order every cycle; :meth:`positions` returns None
    for a layout whose names sit exactly at positions ``0..n-1`` (no gather or scatter needed), else
    the list mapping each reading to its position. New names get new positions (the owner extends its
    columns to ``len(index)``).
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._layouts: dict[tuple[str, ...], list[int] | None] = {}
        order = tuple(names)
        # Shared with the pipeline's map of the same reading order while no new name comes (copied then).
        self.position: dict[str, int] = frame_index(order)
        self._shared = len(self.position) == len(order)
        if not self._shared:  # a repeated name keeps its first position here
            self.position = {}
            for name in order:
                self.position.setdefault(name, len(self.position))

    def __len__(self) -> int:
        return len(self.position)

    def positions(self, names: tuple[str, ...]) -> list[int] | None:
        """The positions of ``names`` (None for the identity layout); new names are appended."""
        try:
            return self._layouts[names]
        except KeyError:
            pass
        position = self.position
        if self._shared and not all(map(position.__contains__, names)):
            position = self.position = dict(position)
            self._shared = False
        for name in names:
            position.setdefault(name, len(position))
        index = list(map(position.__getitem__, names))
        identity = len(set(names)) == len(names) and index == list(range(len(names)))
        layout = None if identity else index
        if len(self._layouts) >= 64:  # bounded: subscription batches can come in many shapes
            self._layouts.clear()
        self._layouts[names] = layout
        return layout


# ---------------------------------------------------------------------------------------- settings
class RawDeviceSettings(Protocol):
    """What raw telemetry needs from a device's config (edge_agent.config device models)."""

    @property
    def name(self) -> str:
        """Device name."""
        ...

    @property
    def publish_raw(self) -> bool | str:
        """false, true or "on_change"."""
        ...

    @property
    def points(self) -> Sequence[Any]:
        """The device's points."""
        ...


@dataclass(frozen=True, slots=True)
class RawTelemetrySettings:
    """Raw telemetry of one device: ``mode``, MQTT ``qos`` (0 or 1), on-change deadbands and heartbeat.

    ``deadbands`` maps a point name to ``(absolute, percent)``: absolute in the point's engineering unit,
    percent of the last sent value's magnitude; a point that is not listed uses ``default_deadband``.
    ``heartbeat_s`` (seconds) re-sends unchanged values; None with ``mode="every_cycle"``. ``not_sent``:
    points never sent (waveforms: their captures go to vibration analysis; a failed capture that a driver
    reports as a bad reading must not come and go in the values).
    """

    device: str
    mode: Literal["every_cycle", "on_change"]
    qos: int = 1
    heartbeat_s: float | None = None
    default_deadband: tuple[float, float] = (0.0, 0.0)
    deadbands: Mapping[str, tuple[float, float]] | None = None
    not_sent: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.qos not in (0, 1):
            raise ValueError(f"device {self.device!r}: raw_qos={self.qos!r} must be 0 or 1")
        if self.heartbeat_s is not None and not self.heartbeat_s > 0:
            raise ValueError(f"device {self.device!r}: heartbeat={self.heartbeat_s!r} s must be > 0 (e.g. 60s)")
        for name, (absolute, percent) in {"(device)": self.default_deadband, **(self.deadbands or {})}.items():
            if not (absolute >= 0 and 0 <= percent <= 100):
                raise ValueError(f"device {self.device!r} point {name}: deadband ({absolute}, {percent} %) "
                                 "must be >= 0 and a percent within 0..100")

    @classmethod
    def of_device(cls, device: RawDeviceSettings) -> RawTelemetrySettings | None:
        """Settings from a device's config; None when the device does not publish raw values."""
        mode = device.publish_raw
        if mode is False:
            return None
        qos = int(getattr(device, "raw_qos", 1))
        waveforms = frozenset(p.name for p in device.points if getattr(p, "kind", "value") == "waveform")
        if mode is True:
            return cls(device.name, "every_cycle", qos, not_sent=waveforms)
        heartbeat = getattr(device, "raw_heartbeat", None) or 60.0
        deadband_of = getattr(device, "raw_deadband_of", None)
        default = (float(getattr(device, "deadband", None) or 0.0),
                   float(getattr(device, "deadband_percent", None) or 0.0))
        deadbands: dict[str, tuple[float, float]] = {}
        for p in device.points:
            if getattr(p, "kind", "value") != "value":
                continue
            if deadband_of is not None:
                absolute, percent = deadband_of(p)
                deadbands[p.name] = (float(absolute), float(percent))
        return cls(device.name, "on_change", qos, float(heartbeat), default, deadbands, waveforms)


# ---------------------------------------------------------------------------------------- report by exception
class ChangeFilter:
    """Report by exception for one device: which points of a cycle are worth sending (see module doc).

    State is kept per point in lists (last sent number, time and quality code), so a cycle is a few
    C-level passes over the values; the points that are not good numbers (strings, bad readings) are
    looked at one by one.
    """

    def __init__(self, settings: RawTelemetrySettings) -> None:
        if settings.mode != "on_change" or settings.heartbeat_s is None:
            raise ValueError(f"device {settings.device!r}: ChangeFilter needs mode on_change and a heartbeat")
        self.settings = settings
        self.heartbeat_s = settings.heartbeat_s
        self.index = LayoutIndex()
        self._sent_number: list[float] = []  # NaN: nothing numeric sent yet (or a string, a bad value)
        self._sent_ts: list[float] = []  # epoch s; -inf: never sent
        self._sent_quality: list[int] = []  # _QUALITY_CODE; -1: never sent
        self._abs: list[float] = []
        self._pct: list[float] = []  # fraction (percent / 100)
        self._abs_zero = self._pct_zero = True
        self._oldest_ts = -math.inf  # a lower bound of min(_sent_ts): nothing is due before it ages
        self._sent_other: dict[int, object] = {}

    def _fit(self) -> None:
        n = len(self.index)
        old = len(self._sent_number)
        if old == n:
            return
        self._sent_number.extend(repeat(_NAN, n - old))
        self._sent_ts.extend(repeat(-math.inf, n - old))
        self._sent_quality.extend(repeat(-1, n - old))
        self._oldest_ts = -math.inf
        table = self.settings.deadbands or {}
        default = self.settings.default_deadband
        bands = [table.get(name, default) for name in list(self.index.position)[old:]]
        self._abs.extend(b[0] for b in bands)
        self._pct.extend(b[1] / 100.0 for b in bands)
        self._abs_zero = not any(self._abs)
        self._pct_zero = not any(self._pct)

    def select(self, frame: CycleFrame, now_s: float) -> list[int]:
        """Indices (into the frame, ascending) of the readings to send at ``now_s`` (epoch s); updates the
        sent state."""
        layout = self.index.positions(frame.names)
        self._fit()
        n = len(frame)
        x = frame.numbers()
        odd = frame.exceptions()
        last = gather(self._sent_number, layout, n)
        # moved: |x - last| > max(absolute, percent * |last|), i.e. beyond both bands; NaN (no number on
        # either side) never moves
        if self._pct_zero:
            moved = map(gt, map(abs, map(sub, x, last)), gather(self._abs, layout, n))
        else:
            diff = list(map(abs, map(sub, x, last)))
            by_pct = map(gt, diff, map(mul, gather(self._pct, layout, n), map(abs, last)))
            moved = by_pct if self._abs_zero else map(and_, map(gt, diff, gather(self._abs, layout, n)), by_pct)
        chosen = where(moved)
        extra: set[int] = set()  # more frame indices to send, found by rarer rules
        bools = frame.bool_positions()
        if bools is not None:  # on/off states: any change counts, whatever the deadband
            extra.update(compress(bools, map(ne, map(x.__getitem__, bools), map(last.__getitem__, bools))))
        if not math.isfinite(sum(last)):  # some last sent values are no number: a number now is news
            extra.update(where(map(ne, last, last)))
        cut = self.heartbeat_s - HEARTBEAT_TOLERANCE_S
        sent_ts: list[float] | None = None
        if now_s - self._oldest_ts >= cut:  # someone may be due: the heartbeat, per point
            sent_ts = gather(self._sent_ts, layout, n)
            extra.update(where(map(ge, map(sub, repeat(now_s), sent_ts), repeat(cut))))
        codes = gather(self._sent_quality, layout, n)
        codes_good = codes.count(0) == n
        if not codes_good:  # quality changed (or never sent); a good number has code 0
            extra.update(where(codes))
        if odd:  # not a good number: the heartbeat, a quality change, a new text or an uncertain value that moved
            other = self._sent_other
            extra.difference_update(odd)
            for i in odd:
                q = frame.qualities[i]
                send = _QUALITY_CODE[q] != codes[i] or (sent_ts is not None and now_s - sent_ts[i] >= cut)
                v = frame.values[i]
                if not send and q is not _BAD and v is not None:
                    p = i if layout is None else layout[i]
                    before = other.get(p, _MISSING)
                    if q is _GOOD:
                        send = not isinstance(v, float) and before != v  # a text (NaN/inf: heartbeat only)
                    else:  # uncertain: still a measurement; a number is judged by the deadband
                        send = self._uncertain_moved(p, v, before)
                if send:
                    extra.add(i)
        if extra:
            extra.update(chosen)
            chosen = sorted(extra)
        if chosen:
            self._remember(frame, chosen, layout, now_s, codes_good)
        if sent_ts is not None:
            self._oldest_ts = min(self._sent_ts, default=-math.inf)
        return chosen

    def _uncertain_moved(self, p: int, value: object, before: object) -> bool:
        """Whether an uncertain reading of the point at position ``p`` differs from the uncertain value last
        sent (``before``) enough to send: a number by the point's deadband, anything else by any change."""
        if _is_number(value) and _is_number(before):
            v, last = float(value), float(before)  # type: ignore[arg-type]
            if not (math.isfinite(v) and math.isfinite(last)):
                return v != last and not (math.isnan(v) and math.isnan(last))
            diff = abs(v - last)
            return diff > self._abs[p] and diff > self._pct[p] * abs(last)
        return bool(before != value)

    def _remember(self, frame: CycleFrame, chosen: list[int], layout: list[int] | None, now_s: float,
                  codes_good: bool) -> None:
        """Record ``chosen`` (frame indices) as sent at ``now_s``; ``codes_good``: the sent quality codes of the
        frame's points were all 0 (good) already."""
        x = frame.numbers()
        n = len(frame)
        if layout is None and len(chosen) == n:
            self._sent_number[:n] = x
            self._sent_ts[:n] = repeat(now_s, n)
            self._sent_quality[:n] = repeat(0, n)
        else:
            at = chosen if layout is None else list(map(layout.__getitem__, chosen))
            consume(map(self._sent_number.__setitem__, at, map(x.__getitem__, chosen)))
            consume(map(self._sent_ts.__setitem__, at, repeat(now_s)))
            if not codes_good:
                consume(map(self._sent_quality.__setitem__, at, repeat(0)))
        odd = frame.exceptions()
        if self._sent_other:  # a point last sent as text (or uncertain) that has now been sent as a good number
            sent_number, sent_ts = self._sent_number, self._sent_ts
            for p in [p for p in self._sent_other if sent_ts[p] == now_s and sent_number[p] == sent_number[p]]:
                del self._sent_other[p]
        if odd:
            picked = set(chosen)
            for i in odd:
                if i in picked:
                    p = i if layout is None else layout[i]
                    self._sent_quality[p] = _QUALITY_CODE[frame.qualities[i]]
                    self._sent_other[p] = frame.values[i]


_MISSING = object()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------- messages
def _json_default(obj: object) -> object:
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(obj)


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default)
_encode = _ENCODER.encode


def _finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def telemetry_body(device: str, cycle_s: float, readings: Sequence[Reading]) -> dict[str, object]:
    """One poll cycle's raw values as a dict: ``values`` by point, ``quality`` only for points not good.

    ``cycle_s`` is the poll tick (UTC epoch s), sent as ``cycle`` in epoch ms.
    """
    values: dict[str, object] = {}
    quality: dict[str, str] = {}
    for r in readings:
        values[r.point] = r.value
        if r.quality is not _GOOD:
            quality[r.point] = r.quality.value
    return {"device": device, "cycle": round(cycle_s * 1000), "values": values, "quality": quality}


class TelemetryEncoder:
    """Builds the raw-telemetry payload (envelope included) of one device as bytes, in one pass.

    The constant parts (agent id, device name) are encoded once; per message only the id, the
    timestamps and the ``values``/``quality`` objects are encoded with the C JSON encoder.
    """

    def __init__(self, agent_id: str, device: str) -> None:
        if not agent_id:
            raise ValueError("agent_id must be a non-empty string (the agent.id from the config)")
        self._head = '{"v":' + str(SCHEMA_VERSION) + ',"id":"'
        self._middle = f',"agent":{_encode(agent_id)},"device":{_encode(device)},"cycle":'
        self._names: Sequence[str] = ()
        self._values_template = "{}"

    def _template(self, names: Sequence[str]) -> str:
        """``{"name":%r,...}`` for ``names`` (kept for the last layout): ``%r`` of a finite float or an int is
        its JSON."""
        if names != self._names:
            self._values_template = "{" + ",".join(_encode(n).replace("%", "%%") + ":%r" for n in names) + "}"
            self._names = names
        return self._values_template

    def encode(self, cycle_s: float, names: Sequence[str], values: Sequence[Value],
               quality: Mapping[str, str], ts_ms: int | None = None, *, plain: bool = False) -> bytes:
        """Payload bytes: ``names[i]`` carries ``values[i]``; ``quality`` lists the points not good.

        ``cycle_s`` is the poll tick (UTC epoch s); ``ts_ms`` the record time (epoch ms, default now).
        NaN and infinity are sent as null. ``plain=True`` promises that every value is a finite float or an
        int (exact types): then the values go through a template made once per ``names`` (same bytes, no
        dict and no key encoding per message).
        """
        if plain:
            values_json = self._template(names) % tuple(values)
        else:
            try:
                values_json = _encode(dict(zip(names, values, strict=True)))
            except ValueError:  # a non-finite float slipped through: JSON has no NaN, send null
                values_json = _encode({n: _finite(v) for n, v in zip(names, values, strict=True)})
        ts = int(time.time() * 1000) if ts_ms is None else ts_ms
        return "".join((self._head, new_record_id(), '","ts":', str(ts), self._middle, str(round(cycle_s * 1000)),
                        ',"values":', values_json, ',"quality":', _encode(quality) if quality else "{}",
                        "}")).encode()


class RawTelemetry:
    """Raw telemetry of one device: decides what a cycle sends and builds the payload once.

    :meth:`payload` returns the bytes to store in the outbox, or None when ``on_change`` finds nothing
    worth sending this cycle.
    """

    def __init__(self, settings: RawTelemetrySettings, agent_id: str) -> None:
        self.settings = settings
        self.qos = settings.qos
        self.encoder = TelemetryEncoder(agent_id, settings.device)
        self.filter = ChangeFilter(settings) if settings.mode == "on_change" else None
        self.messages = 0
        self.values_sent = 0

    def payload(self, frame: CycleFrame, cycle_s: float, now_s: float | None = None) -> bytes | None:
        """The message for ``frame`` polled at tick ``cycle_s`` (epoch s), or None when nothing is due.

        ``now_s`` (epoch s, default ``cycle_s``) is the time the heartbeat is measured against.
        """
        not_sent = self.settings.not_sent
        if not_sent and not not_sent.isdisjoint(frame.names):
            frame = CycleFrame(frame.device, [r for r in frame.readings if r.point not in not_sent])
            if len(frame) == 0:
                return None
        if self.filter is None:
            names, values, qualities = frame.names, frame.values, frame.qualities
        else:
            chosen = self.filter.select(frame, cycle_s if now_s is None else now_s)
            if len(chosen) == 0:
                return None
            if len(chosen) == len(frame):
                names, values, qualities = frame.names, frame.values, frame.qualities
            else:
                names = tuple(map(frame.names.__getitem__, chosen))
                values = list(map(frame.values.__getitem__, chosen))
                qualities = list(map(frame.qualities.__getitem__, chosen))
        if frame.all_good:
            quality: dict[str, str] = {}
        else:
            quality = {n: q.value for n, q in zip(names, qualities, strict=True) if q is not _GOOD}
        plain = names is frame.names and frame.all_good and frame.value_types <= _PLAIN_TYPES and not frame.exceptions()
        self.messages += 1
        self.values_sent += len(names)
        return self.encoder.encode(cycle_s, names, values, quality, plain=plain)
