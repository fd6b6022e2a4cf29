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
With ``publish_raw: true`` every point is in every message. With ``publish_raw: on_change``
(:class:`ChangeFilter`) a point is in a message when its quality changed, when its value moved from the
last *sent* value by more than the deadband (absolute, or percent of the last sent value's magnitude;
0 means any change), or when it was last sent ``heartbeat`` seconds ago or longer; a cycle where no
point qualifies sends nothing.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from drivers.base import Quality, Reading, Value
from edge_agent.records import SCHEMA_VERSION, new_record_id

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_point = attrgetter("point")
_value = attrgetter("value")
_quality = attrgetter("quality")
_receive_ts = attrgetter("receive_ts")
_source_ts = attrgetter("source_ts")
_NUMERIC_TYPES = frozenset({int, float, bool})
_GOOD = Quality.GOOD
#: Quality codes of the change filter's state (-1: never sent).
#: Ticks on a float grid (k * 0.1 s) can land a hair before a whole heartbeat; this much early still counts.
HEARTBEAT_TOLERANCE_S = 1e-3
_QUALITY_CODE = {Quality.GOOD: 0, Quality.UNCERTAIN: 1, Quality.BAD: 2}


def _as_number(value: object, quality: Quality) -> float:
    """A good finite-or-not number as float; NaN for anything else (strings, None, bad quality)."""
    if quality is not _GOOD or type(value) not in _NUMERIC_TYPES:
        return math.nan
    return float(value)  # type: ignore[arg-type]


class CycleFrame:
    """One device's readings of one cycle (or one subscription batch) as parallel columns.

    ``names``, ``values`` and ``qualities`` follow the order of ``readings``. ``all_good`` is True when
    every reading is good. :meth:`numbers`, :meth:`good_mask`, :meth:`timestamps` and :meth:`bool_mask`
    are computed on first use and cached.
    """

    __slots__ = ("_bools", "_good", "_numbers", "_ts", "_types", "all_good", "device", "names", "qualities",
                 "readings", "values")

    def __init__(self, device: str, readings: Sequence[Reading]) -> None:
        self.device = device
        self.readings = readings
        self.names: tuple[str, ...] = tuple(map(_point, readings))
        self.values: list[Value] = list(map(_value, readings))
        self.qualities: list[Quality] = list(map(_quality, readings))
        self.all_good = self.qualities.count(_GOOD) == len(self.qualities)
        self._types: set[type] | None = None
        self._numbers: FloatArray | None = None
        self._good: BoolArray | None = None
        self._ts: FloatArray | None = None
        self._bools: BoolArray | None = None

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

    def numbers(self) -> FloatArray:
        """Float64 array: the value where the reading is good and numeric (bool as 0/1), NaN elsewhere.

        Non-finite floats are NaN too (the drivers already mark them bad).
        """
        if self._numbers is None:
            if self.all_good_numbers:
                self._numbers = np.array(self.values, dtype=np.float64)
            else:
                self._numbers = np.array(list(map(_as_number, self.values, self.qualities)), dtype=np.float64)
            if not self.all_good_numbers or not np.isfinite(self._numbers).all():
                self._numbers[~np.isfinite(self._numbers)] = np.nan
        return self._numbers

    def good_mask(self) -> BoolArray:
        """True where the reading is good and carries a value (strings included)."""
        if self._good is None:
            if self.all_good and type(None) not in self.value_types:
                self._good = np.ones(len(self.names), dtype=np.bool_)
            else:
                self._good = np.array([q is _GOOD and v is not None for v, q in zip(self.values, self.qualities,
                                                                                    strict=True)], dtype=np.bool_)
        return self._good

    def bool_mask(self) -> BoolArray | None:
        """True where the value is a bool; None when there is none (the common case)."""
        if bool not in self.value_types:
            return None
        if self._bools is None:
            self._bools = np.array([type(v) is bool for v in self.values], dtype=np.bool_)
        return self._bools

    def timestamps(self) -> FloatArray:
        """Each reading's time (UTC epoch s): the device's source time when it gave one, else receive time."""
        if self._ts is None:
            receive = list(map(_receive_ts, self.readings))
            source = list(map(_source_ts, self.readings))
            if source.count(None) != len(source):
                receive = [s if s else r for s, r in zip(source, receive, strict=True)]
            self._ts = np.array(receive, dtype=np.float64)
        return self._ts


class LayoutIndex:
    """Stable positions for the point names of one device, and the permutation for each reading order.

    A device's readings usually arrive in the same order every cycle; :meth:`positions` returns None
    for a layout whose names sit exactly at positions ``0..n-1`` (no gather or scatter needed), else
    the integer array mapping each reading to its position. New names get new positions (``grown``
    tells the owner to extend its arrays).
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.position: dict[str, int] = {}
        self._layouts: dict[tuple[str, ...], npt.NDArray[np.intp] | None] = {}
        for name in names:
            self.position.setdefault(name, len(self.position))

    def __len__(self) -> int:
        return len(self.position)

    def positions(self, names: tuple[str, ...]) -> npt.NDArray[np.intp] | None:
        """The positions of ``names`` (None for the identity layout); new names are appended."""
        try:
            return self._layouts[names]
        except KeyError:
            pass
        position = self.position
        for name in names:
            position.setdefault(name, len(position))
        index = np.array([position[n] for n in names], dtype=np.intp)
        identity = len(set(names)) == len(names) and bool((index == np.arange(len(names))).all())
        layout = None if identity else index
        if len(self._layouts) >= 64:  # bounded: subscription batches can come in many shapes
            self._layouts.clear()
        self._layouts[names] = layout
        return layout


def _grow(array: FloatArray, size: int, fill: float) -> FloatArray:
    if len(array) >= size:
        return array
    return np.concatenate([array, np.full(size - len(array), fill)])


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
    ``heartbeat_s`` (seconds) re-sends unchanged values; None with ``mode="every_cycle"``.
    """

    device: str
    mode: Literal["every_cycle", "on_change"]
    qos: int = 1
    heartbeat_s: float | None = None
    default_deadband: tuple[float, float] = (0.0, 0.0)
    deadbands: Mapping[str, tuple[float, float]] | None = None

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
        if mode is True:
            return cls(device.name, "every_cycle", qos)
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
        return cls(device.name, "on_change", qos, float(heartbeat), default, deadbands)


# ---------------------------------------------------------------------------------------- report by exception
class ChangeFilter:
    """Report by exception for one device: which points of a cycle are worth sending (see module doc).

    State is kept per point in arrays (last sent number, time and quality), so a cycle is a few
    vectorised comparisons; strings and other non-numeric values are compared one by one.
    """

    def __init__(self, settings: RawTelemetrySettings) -> None:
        if settings.mode != "on_change" or settings.heartbeat_s is None:
            raise ValueError(f"device {settings.device!r}: ChangeFilter needs mode on_change and a heartbeat")
        self.settings = settings
        self.heartbeat_s = settings.heartbeat_s
        self.index = LayoutIndex()
        self._sent_number: FloatArray = np.zeros(0)
        self._sent_ts: FloatArray = np.zeros(0)
        self._sent_quality: FloatArray = np.zeros(0)
        self._abs: FloatArray = np.zeros(0)
        self._pct: FloatArray = np.zeros(0)
        self._sent_other: dict[int, object] = {}

    def _fit(self) -> None:
        n = len(self.index)
        if len(self._sent_number) == n:
            return
        old = len(self._abs)
        self._sent_number = _grow(self._sent_number, n, math.nan)
        self._sent_ts = _grow(self._sent_ts, n, -math.inf)
        self._sent_quality = _grow(self._sent_quality, n, -1.0)
        names = list(self.index.position)
        table = self.settings.deadbands or {}
        default = self.settings.default_deadband
        bands = [table.get(name, default) for name in names[old:]]
        self._abs = np.concatenate([self._abs, np.array([b[0] for b in bands], dtype=np.float64)])
        self._pct = np.concatenate([self._pct, np.array([b[1] / 100.0 for b in bands], dtype=np.float64)])

    def select(self, frame: CycleFrame, now_s: float) -> npt.NDArray[np.intp]:
        """Indices (into the frame) of the readings to send at ``now_s`` (epoch s); updates the sent state."""
        layout = self.index.positions(frame.names)
        self._fit()
        pos = np.arange(len(frame)) if layout is None else layout
        x = frame.numbers()
        last = self._sent_number[pos]
        threshold = np.maximum(self._abs[pos], self._pct[pos] * np.abs(last))
        bools = frame.bool_mask()
        if bools is not None:
            threshold[bools] = 0.0  # on/off states: any change counts, whatever the deadband
        with np.errstate(invalid="ignore"):
            moved = np.abs(x - last) > threshold
        numeric = ~np.isnan(x)
        never = np.isnan(last)
        due = (now_s - self._sent_ts[pos]) >= self.heartbeat_s - HEARTBEAT_TOLERANCE_S
        if frame.all_good:
            quality_changed = self._sent_quality[pos] != 0.0
        else:
            codes = np.array([_QUALITY_CODE[q] for q in frame.qualities], dtype=np.float64)
            quality_changed = self._sent_quality[pos] != codes
        send = due | quality_changed | (numeric & (moved | never))
        if not frame.all_good_numbers:
            # Good non-numeric values (strings, enums): send when different from the last one sent.
            other = self._sent_other
            for i in np.flatnonzero(~numeric & ~send):
                v = frame.values[i]
                if isinstance(v, float):  # a good NaN: nothing to compare, the heartbeat sends it
                    continue
                if frame.qualities[i] is _GOOD and v is not None and other.get(int(pos[i]), _MISSING) != v:
                    send[i] = True
        chosen = np.flatnonzero(send)
        if len(chosen):
            at = pos[chosen]
            self._sent_number[at] = x[chosen]
            self._sent_ts[at] = now_s
            self._sent_quality[at] = 0.0 if frame.all_good else codes[chosen]
            if not frame.all_good_numbers:
                for i in chosen[~numeric[chosen]]:
                    self._sent_other[int(pos[i])] = frame.values[i]
        return chosen


_MISSING = object()


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

    def encode(self, cycle_s: float, names: Sequence[str], values: Sequence[Value],
               quality: Mapping[str, str], ts_ms: int | None = None) -> bytes:
        """Payload bytes: ``names[i]`` carries ``values[i]``; ``quality`` lists the points not good.

        ``cycle_s`` is the poll tick (UTC epoch s); ``ts_ms`` the record time (epoch ms, default now).
        NaN and infinity are sent as null.
        """
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
        if self.filter is None:
            names, values, qualities = frame.names, frame.values, frame.qualities
        else:
            chosen = self.filter.select(frame, cycle_s if now_s is None else now_s)
            if len(chosen) == 0:
                return None
            if len(chosen) == len(frame):
                names, values, qualities = frame.names, frame.values, frame.qualities
            else:
                idx = chosen.tolist()
                names = tuple(frame.names[i] for i in idx)
                values = [frame.values[i] for i in idx]
                qualities = [frame.qualities[i] for i in idx]
        if frame.all_good:
            quality: dict[str, str] = {}
        else:
            quality = {n: q.value for n, q in zip(names, qualities, strict=True) if q is not _GOOD}
        self.messages += 1
        self.values_sent += len(names)
        return self.encoder.encode(cycle_s, names, values, quality)
