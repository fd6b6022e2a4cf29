"""The one interface every southbound driver implements, and the values it produces.

A driver is created from a protocol-specific spec (a frozen dataclass defined next to the driver),
so that ``drivers`` never depends on the agent's config models. The agent translates its config
into specs.

Contract, per method:

- ``connect()`` opens the connection. It may raise :class:`DriverError`; the caller retries with
  backoff. It is never called twice without ``close()`` in between.
- ``read()`` reads every configured point once and returns a :class:`ReadResult`. It never raises
  for a device or point failure: failed points come back with quality ``BAD`` and a reason, and
  the driver notes that it must reconnect. It is never called concurrently with itself.
- ``subscribe(sink)`` (optional, ``supports_subscribe``) delivers readings pushed by the device to
  ``sink`` until ``close()``.
- ``close()`` releases the connection; safe to call at any time, more than once.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy is loaded only by the drivers and points that produce waveforms
    import numpy as np
    import numpy.typing as npt

Value = float | int | bool | str | None


class Quality(enum.StrEnum):
    """OPC-style quality of a reading."""

    GOOD = "good"
    UNCERTAIN = "uncertain"
    BAD = "bad"


@dataclass(slots=True)
class Reading:
    """One value of one point (treat as immutable; not frozen because a frozen dataclass costs ~4x more
    to construct, and one is made per value per cycle on the hot path).

    ``point`` is the point's name within its device. Timestamps are UTC epoch seconds:
    ``source_ts`` from the device when it provides one (OPC UA), ``receive_ts`` when the agent got
    the value. ``reason`` says why the quality is not good.
    """

    point: str
    value: Value
    quality: Quality
    receive_ts: float
    source_ts: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Waveform:
    """A block of equally spaced samples of one point (e.g. an accelerometer capture).

    ``samples`` are in the point's engineering unit (``unit``: g, m/s2, mm/s ...),
    ``sample_rate_hz`` in Hz, ``ts`` is the UTC epoch second of the first sample.
    """

    point: str
    samples: npt.NDArray[np.float64]
    sample_rate_hz: float
    ts: float
    unit: str = ""
    quality: Quality = Quality.GOOD


class CommsState(enum.StrEnum):
    """Health of the link to one device."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(slots=True)
class CommsStatus:
    """Link health of one device, as published in the agent's status."""

    state: CommsState = CommsState.DOWN
    last_error: str | None = None
    last_error_ts: float | None = None
    last_ok_ts: float | None = None
    reconnects: int = 0
    requests_last_cycle: int = 0

    def as_dict(self) -> dict[str, object]:
        """Return a JSON-ready copy."""
        return {
            "state": self.state.value,
            "last_error": self.last_error,
            "last_error_ts": self.last_error_ts,
            "last_ok_ts": self.last_ok_ts,
            "reconnects": self.reconnects,
            "requests_last_cycle": self.requests_last_cycle,
        }


@dataclass(slots=True)
class ReadResult:
    """What one ``read()`` cycle produced."""

    readings: list[Reading] = field(default_factory=list)
    waveforms: list[Waveform] = field(default_factory=list)
    requests: int = 0


ReadingSink = Callable[[Sequence[Reading]], None]


class DriverError(Exception):
    """A device could not be reached or answered with an error (converted at the boundary)."""


@runtime_checkable
class Driver(Protocol):
    """A connection to one southbound device. See the module docstring for the contract."""

    name: str
    comms: CommsStatus
    supports_subscribe: bool

    async def connect(self) -> None:
        """Open the connection; raise :class:`DriverError` when the device cannot be reached."""

    async def read(self) -> ReadResult:
        """Read every configured point once; failures come back as BAD readings, never raised."""

    async def subscribe(self, sink: ReadingSink) -> None:
        """Start delivering pushed readings to ``sink`` (only when ``supports_subscribe``)."""

    async def close(self) -> None:
        """Release the connection; idempotent."""
