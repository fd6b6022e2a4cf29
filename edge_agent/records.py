"""What a record is on the wire: priority classes, the JSON envelope, and the payload encoding.

Every outgoing payload is a JSON object carrying ``v`` (schema version), ``id`` (unique and time-ordered,
so the cloud can drop the duplicates at-least-once delivery allows), ``ts`` (UTC epoch milliseconds) and
``agent`` (the agent id), next to the kind-specific fields (DESIGN.md, "Wire format").
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from collections.abc import Mapping
from enum import IntEnum
from typing import Any

SCHEMA_VERSION = 1
ENVELOPE_FIELDS = ("v", "id", "ts", "agent")


class Priority(IntEnum):
    """Priority class of a record: a higher value is sent first and evicted last when the buffer is full."""

    TELEMETRY = 0
    SUMMARY = 1
    VIBRATION = 2
    STATUS = 3
    ALERT = 4


class _Uuid7Source:
    """Time-ordered ids in the UUIDv7 layout (RFC 9562): 48-bit epoch ms, then a 12-bit counter, then random.

    Ids made by one process sort in creation order even within one millisecond (the counter) and when the
    wall clock steps back (the last timestamp is reused until the clock catches up).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def next_id(self) -> str:
        """A new 36-character UUIDv7 string."""
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                self._counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
            else:
                self._counter += 1
                if self._counter > 0xFFF:  # 4096 ids in one ms: borrow the next millisecond
                    self._last_ms += 1
                    self._counter = 0
            ms, counter = self._last_ms, self._counter
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
        return str(uuid.UUID(int=value))


_ids = _Uuid7Source()


def new_record_id() -> str:
    """A unique, time-ordered record id (UUIDv7 string, e.g. ``"019ab2c4-7e1f-7a03-9c41-5e0d2b7f8a11"``)."""
    return _ids.next_id()


def make_envelope(kind_fields: Mapping[str, Any], agent_id: str, ts_ms: int | None = None) -> dict[str, Any]:
    """Wrap a record body in the wire envelope: ``{"v": 1, "id": ..., "ts": epoch ms (UTC), "agent": ...}``.

    ``ts_ms`` defaults to now. The body must not carry the envelope's own fields; a body that does is a
    programming error and raises ``ValueError`` naming the field.
    """
    if not agent_id:
        raise ValueError("agent_id must be a non-empty string (the agent.id from the config)")
    clash = [k for k in ENVELOPE_FIELDS if k in kind_fields]
    if clash:
        raise ValueError(
            f"record body fields {clash} collide with the envelope fields {list(ENVELOPE_FIELDS)}; "
            "rename them in the body (e.g. 'start'/'end' for an interval)"
        )
    envelope: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "id": new_record_id(),
        "ts": int(time.time() * 1000) if ts_ms is None else int(ts_ms),
        "agent": agent_id,
    }
    envelope.update(kind_fields)
    return envelope


def _to_json_compatible(obj: object) -> object:
    """``json.dumps`` fallback: numpy scalars and arrays (anything with ``tolist``), sets and tuples."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(obj, set | frozenset):
        return sorted(obj, key=repr)
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON: "
                    "convert it to a number, string, list or dict")


def _first_non_finite(obj: object, path: str = "$") -> str | None:
    """Path of the first NaN or infinity in ``obj`` (for the error message), or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            found = _first_non_finite(v, f"{path}.{k}")
            if found:
                return found
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            found = _first_non_finite(v, f"{path}[{i}]")
            if found:
                return found
    return None


class RawJson:
    """A JSON value already encoded (UTF-8 byte chunks that concatenate to it), spliced into a payload as is.

    A big part of a record (a summary's ``points`` object of thousands of points) is built as JSON text slice
    by slice instead of as one dict per point; :func:`encode_payload` puts it in place of a top-level field
    without decoding it. Make the chunks with :func:`encode_json` (the payload's encoder settings).
    """

    __slots__ = ("chunks",)

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __len__(self) -> int:
        """Size of the encoded value in bytes."""
        return sum(map(len, self.chunks))

    def to_bytes(self) -> bytes:
        """The encoded value."""
        return b"".join(self.chunks)

    def value(self) -> Any:
        """The value decoded (for tests and callers that want the object)."""
        return json.loads(self.to_bytes())

    def __repr__(self) -> str:
        return f"RawJson({len(self)} bytes)"


def _dumps(obj: object, path: str = "$") -> str:
    """Compact JSON text of ``obj`` (the payload encoder settings); NaN or infinity raises ``ValueError``
    naming the field (``path`` is where ``obj`` sits in the record)."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_to_json_compatible)
    except ValueError as exc:
        where = _first_non_finite(obj, path) or "a numpy value"
        raise ValueError(f"record field {where} is NaN or infinite, which JSON cannot carry; "
                         "send null for a missing value") from exc


def encode_json(obj: object, path: str = "$") -> bytes:
    """Encode one value with the payload settings (compact, UTF-8, no NaN) as UTF-8 bytes.

    ``path`` names where the value sits in its record, for the error on a NaN or infinity.
    """
    return _dumps(obj, path).encode("utf-8")


def encode_payload(obj: Mapping[str, Any]) -> bytes:
    """Encode a record as compact UTF-8 JSON bytes (no spaces, non-ASCII kept as UTF-8).

    NaN and infinity are not JSON: they raise ``ValueError`` naming the field, so the producer can send
    ``null`` (no value) instead. A top-level field whose value is :class:`RawJson` is spliced in as it is
    encoded (after the other fields).
    """
    raw = [(k, v) for k, v in obj.items() if isinstance(v, RawJson)]
    if not raw:
        return _dumps(obj).encode("utf-8")
    rest = {k: v for k, v in obj.items() if not isinstance(v, RawJson)}
    head = _dumps(rest)
    parts = [head[:-1].encode("utf-8")]  # without the closing brace
    sep = b"," if rest else b""
    for key, value in raw:
        parts += [sep, encode_json(str(key)), b":"]
        parts.extend(value.chunks)
        sep = b","
    parts.append(b"}")
    return b"".join(parts)


def decode_payload(payload: bytes) -> dict[str, Any]:
    """Decode a payload made by :func:`encode_payload` (for tests, the CLI and remote config)."""
    obj = json.loads(payload.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError(f"payload is a JSON {type(obj).__name__}, expected an object")
    return obj
