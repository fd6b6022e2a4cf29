"""systemd's notify protocol without a dependency: one datagram per state change on ``$NOTIFY_SOCKET``.

The protocol (``man sd_notify``) is a newline-separated list of ``KEY=VALUE`` assignments sent as a single
datagram to the Unix socket named in ``$NOTIFY_SOCKET``; a name starting with ``@`` is in the abstract
namespace (leading NUL byte). systemd learns the sender's PID from the socket credentials, which is what
``NotifyAccess=main`` checks, so the datagram must come from the agent's own process.

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a cheap no-op, so the agent calls these functions
unconditionally. A failing send is logged once and never raised: losing a status line must not stop the
agent (a lost ``WATCHDOG=1`` is what the watchdog itself is for).

:class:`Watchdog` pings ``WATCHDOG=1`` at half the interval systemd asked for, but only while the event
loop is healthy: it measures the loop's lag with a short periodic sleep, and withholds the ping when the
loop was stalled for longer than ``max_lag_s`` during the last ping period (or when the agent's own health
check says no). A blocked loop cannot run the task at all, so it stops pinging and systemd restarts the
process after ``WatchdogSec=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

READY = "READY=1"
STOPPING = "STOPPING=1"
RELOADING = "RELOADING=1"
WATCHDOG = "WATCHDOG=1"

# systemd's status line is shown by `systemctl status`; keep it to one readable line.
MAX_STATUS_CHARS = 200


def notify_socket_address(env: Mapping[str, str] | None = None) -> str | None:
    """Return the socket address from ``$NOTIFY_SOCKET`` (``@name`` becomes ``\\0name``), or ``None``.

    ``None`` when the variable is unset or empty, or names a transport this module does not speak
    (``vsock:``, used by virtual machines, is logged and ignored).
    """
    value = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither an absolute path nor @abstract: not notifying systemd", value)
    return None


def watchdog_interval_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Return the watchdog interval systemd expects pings within, in seconds, or ``None`` when disabled.

    Reads ``$WATCHDOG_USEC`` (microseconds) and, when set, ``$WATCHDOG_PID``: the watchdog is meant for
    this process only if ``WATCHDOG_PID`` equals ``pid`` (default: our own PID), like sd_watchdog_enabled().
    Raises ``ValueError`` naming the variable when either holds something that is not a positive integer.
    """
    environ = os.environ if env is None else env
    usec_text = environ.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        usec = 0
    if usec <= 0:
        raise ValueError(f"WATCHDOG_USEC={usec_text!r} must be a positive integer number of microseconds")
    pid_text = environ.get("WATCHDOG_PID", "")
    if pid_text:
        try:
            watchdog_pid = int(pid_text)
        except ValueError:
            watchdog_pid = 0
        if watchdog_pid <= 0:
            raise ValueError(f"WATCHDOG_PID={pid_text!r} must be a positive integer process id")
        if watchdog_pid != (os.getpid() if pid is None else pid):
            return None
    return usec / 1_000_000


def status_line(text: str) -> str:
    """Return ``STATUS=text`` with newlines flattened and the text cut to :data:`MAX_STATUS_CHARS`."""
    flat = " ".join(text.split())
    if len(flat) > MAX_STATUS_CHARS:
        flat = flat[: MAX_STATUS_CHARS - 1] + "…"
    return f"STATUS={flat}"


def describe_status(*, devices_up: int, devices_total: int, broker_connected: bool, outbox_records: int,
                    alarms_active: int = 0) -> str:
    """The agent's one-line status for ``systemctl status``, e.g. ``3/4 devices up, broker connected, ...``."""
    parts = [
        f"{devices_up}/{devices_total} devices up",
        "broker connected" if broker_connected else "broker unreachable",
        f"outbox {outbox_records} record{'' if outbox_records == 1 else 's'}",
    ]
    if alarms_active:
        parts.append(f"{alarms_active} alarm{'' if alarms_active == 1 else 's'} active")
    return ", ".join(parts)


class Notifier:
    """Sends notify datagrams to one socket address; a no-op when ``address`` is ``None``.

    The socket is opened on first use and kept; sends never block (a full socket buffer drops the
    datagram, which is logged once).
    """

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._warned = False
        self.sent = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """A notifier for ``$NOTIFY_SOCKET`` (a no-op one when the agent does not run under systemd)."""
        return cls(notify_socket_address(env))

    @property
    def enabled(self) -> bool:
        """True when there is a socket to notify."""
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments as one datagram; return True when it was handed to the socket."""
        if self.address is None or not assignments:
            return False
        for item in assignments:
            if "=" not in item:
                raise ValueError(f"sd_notify assignment {item!r} must look like KEY=VALUE (e.g. READY=1)")
        payload = "\n".join(assignments).encode("utf-8")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(payload, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s (further failures are not logged)",
                            self.address.replace("\0", "@"), exc)
                self._warned = True
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd start-up is complete (``READY=1``), optionally with a status line."""
        return self.send(READY, *([status_line(status)] if status else []))

    def status(self, text: str) -> bool:
        """Set the one-line status ``systemctl status`` shows."""
        return self.send(status_line(text))

    def watchdog(self) -> bool:
        """Ping the watchdog (``WATCHDOG=1``)."""
        return self.send(WATCHDOG)

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd the agent is shutting down (``STOPPING=1``)."""
        return self.send(STOPPING, *([status_line(status)] if status else []))

    def reloading(self, status: str | None = None) -> bool:
        """Tell systemd a config reload started (``RELOADING=1``); send :meth:`ready` when it is done.

        ``MONOTONIC_USEC=`` goes with it, as ``Type=notify-reload`` units (systemd >= 253) require.
        """
        stamp = f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        return self.send(RELOADING, stamp, *([status_line(status)] if status else []))

    def close(self) -> None:
        """Close the socket; later sends reopen it."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


_default: Notifier | None = None


def default_notifier() -> Notifier:
    """The process-wide notifier for ``$NOTIFY_SOCKET``, created on first use."""
    global _default
    if _default is None:
        _default = Notifier.from_env()
    return _default


def notify(*assignments: str) -> bool:
    """Send ``KEY=VALUE`` assignments (``"READY=1"``, ``"STATUS=..."``) to systemd; no-op outside systemd."""
    return default_notifier().send(*assignments)


@dataclass(frozen=True, slots=True)
class WatchdogDecision:
    """What the watchdog did at the end of one ping period: ``pinged`` or not, and why not."""

    pinged: bool
    max_lag_s: float
    reason: str = ""


class Watchdog:
    """Measures event-loop lag and pings systemd's watchdog while the loop is healthy.

    ``interval_s`` is systemd's watchdog interval (from :func:`watchdog_interval_s`); pings go out every
    ``interval_s / 2``. With ``interval_s=None`` the task only measures loop lag (for metrics). Each probe
    sleeps ``probe_s`` seconds and reports ``actual - expected`` (seconds) to ``on_lag``. A ping is withheld
    when the largest lag in the period exceeded ``max_lag_s`` (default ``interval_s / 4``) or when
    ``is_healthy()`` returns False; ``on_decision`` hears every ping decision.
    """

    def __init__(
        self,
        notifier: Notifier,
        interval_s: float | None,
        *,
        probe_s: float = 0.5,
        max_lag_s: float | None = None,
        is_healthy: Callable[[], bool] | None = None,
        on_lag: Callable[[float], None] | None = None,
        on_decision: Callable[[WatchdogDecision], None] | None = None,
    ) -> None:
        if interval_s is not None and interval_s <= 0:
            raise ValueError(f"{interval_s=} must be > 0 seconds (or None to only measure loop lag)")
        if probe_s <= 0:
            raise ValueError(f"{probe_s=} must be > 0 seconds")
        self.notifier = notifier
        self.interval_s = interval_s
        self.ping_every_s = interval_s / 2 if interval_s is not None else None
        self.probe_s = min(probe_s, self.ping_every_s / 2) if self.ping_every_s else probe_s
        if max_lag_s is None:
            max_lag_s = interval_s / 4 if interval_s is not None else float("inf")
        if max_lag_s <= 0:
            raise ValueError(f"{max_lag_s=} must be > 0 seconds")
        self.max_lag_s = max_lag_s
        self.is_healthy = is_healthy
        self.on_lag = on_lag
        self.on_decision = on_decision
        self.last_lag_s = 0.0
        self.pings = 0
        self.withheld = 0
        self._task: asyncio.Task[None] | None = None
        self._unhealthy_logged = False

    @property
    def pinging(self) -> bool:
        """True when systemd asked for a watchdog and a notify socket exists."""
        return self.ping_every_s is not None and self.notifier.enabled

    def start(self) -> asyncio.Task[None]:
        """Start the probe task on the running loop (idempotent) and return it."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="sd-watchdog")
        return self._task

    async def stop(self) -> None:
        """Cancel the probe task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Probe loop lag forever, pinging every ``interval_s / 2`` while healthy; cancel to stop."""
        window_max_lag = 0.0
        if self.pinging:
            self._decide(0.0)  # first ping at once: systemd's watchdog clock is already running
        next_ping = time.monotonic() + (self.ping_every_s or 0.0)
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.probe_s)
            now = time.monotonic()
            lag = max(0.0, now - started - self.probe_s)
            self.last_lag_s = lag
            window_max_lag = max(window_max_lag, lag)
            if self.on_lag is not None:
                self.on_lag(lag)
            if self.ping_every_s is not None and now >= next_ping:
                self._decide(window_max_lag)
                window_max_lag = 0.0
                next_ping = now + self.ping_every_s

    def _decide(self, max_lag: float) -> None:
        reason = ""
        if max_lag > self.max_lag_s:
            reason = f"event loop stalled {max_lag:.1f} s (limit {self.max_lag_s:.1f} s)"
        elif self.is_healthy is not None:
            try:
                healthy = self.is_healthy()
            except Exception as exc:  # a broken health check must not kill the watchdog task
                healthy, reason = False, f"agent health check raised {exc!r}"
            if not healthy and not reason:
                reason = "agent health check failed"
        pinged = False
        if reason:
            self.withheld += 1
            if not self._unhealthy_logged:
                log.warning("withholding the systemd watchdog ping: %s", reason)
                self._unhealthy_logged = True
        else:
            if self._unhealthy_logged:
                log.warning("event loop healthy again: pinging the systemd watchdog")
                self._unhealthy_logged = False
            pinged = self.notifier.watchdog()
            self.pings += int(pinged)
        if self.on_decision is not None:
            self.on_decision(WatchdogDecision(pinged=pinged, max_lag_s=max_lag, reason=reason))


def start_watchdog(
    *,
    is_healthy: Callable[[], bool] | None = None,
    on_lag: Callable[[float], None] | None = None,
    notifier: Notifier | None = None,
) -> Watchdog:
    """Create and start a :class:`Watchdog` for this process's systemd settings (must run inside the loop).

    Under systemd with ``WatchdogSec=`` it pings; elsewhere it only reports loop lag to ``on_lag``.
    """
    watchdog = Watchdog(notifier or default_notifier(), watchdog_interval_s(), is_healthy=is_healthy,
                        on_lag=on_lag)
    watchdog.start()
    return watchdog
