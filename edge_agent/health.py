"""A small local HTTP endpoint: ``/healthz`` (ready or degraded, with reasons) and ``/metrics`` (Prometheus).

Off by default and bound to loopback by default: it is unauthenticated, so exposing it beyond the gateway
is a deliberate choice (logged as a warning). It speaks just enough HTTP/1.1 for probes and Prometheus:
``GET``/``HEAD``, one request per connection (``Connection: close``), bounded request size, a read
timeout and a cap on concurrent connections, so a misbehaving client cannot hold the agent's loop.

``/healthz`` answers 200 ``{"status": "ready", "reasons": []}`` or 503 ``{"status": "degraded" |
"starting", "reasons": [...]}`` from a provider callable; :class:`HealthState` is a ready-made provider
the agent's parts update (``degrade("broker", "...")`` / ``clear("broker")``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

from edge_agent.metrics import AgentMetrics

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9753
MAX_REQUEST_LINE_BYTES = 8192
MAX_HEADERS = 64
LINGER_S = 2.0  # how long a closing connection waits for the client to finish sending, s
LINGER_MAX_BYTES = 256 * 1024
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The agent's health at one moment: ``ready`` or not, why not, and optional JSON-ready ``details``."""

    ready: bool
    reasons: tuple[str, ...] = ()
    status: str = ""
    details: Mapping[str, object] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """The ``/healthz`` body: ``status`` (ready / degraded / starting), ``reasons``, then details."""
        status = self.status or ("ready" if self.ready else "degraded")
        return {"status": status, "reasons": list(self.reasons), **dict(self.details)}


HealthProvider = Callable[[], HealthReport]


class HealthState:
    """Mutable health the agent updates; :meth:`report` is the provider for :class:`HealthServer`.

    The agent is ``starting`` until :meth:`mark_started`, then ``ready`` while no part has declared itself
    degraded. Each part degrades under its own key (``"broker"``, ``"device:motor-plc"``) and clears it
    when it recovers.
    """

    def __init__(self) -> None:
        self.started = False
        self._degraded: dict[str, str] = {}
        self.details: dict[str, object] = {}

    def mark_started(self) -> None:
        """Start-up is complete (the moment the agent sends READY=1 to systemd)."""
        self.started = True

    def degrade(self, key: str, reason: str) -> None:
        """Declare part ``key`` degraded with a human-readable ``reason`` (replaces its previous reason)."""
        self._degraded[key] = reason

    def clear(self, key: str) -> None:
        """Part ``key`` recovered (no-op if it was not degraded)."""
        self._degraded.pop(key, None)

    def degraded_parts(self) -> list[str]:
        """The parts degraded now."""
        return list(self._degraded)

    def report(self) -> HealthReport:
        """The current :class:`HealthReport`."""
        reasons = tuple(f"{key}: {reason}" for key, reason in sorted(self._degraded.items()))
        if not self.started:
            return HealthReport(False, ("agent is starting", *reasons), "starting", dict(self.details))
        return HealthReport(not reasons, reasons, details=dict(self.details))


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _BadRequest(Exception):
    pass


class HealthServer:
    """Serves ``/healthz`` and ``/metrics`` on ``host:port`` (``port=0`` picks a free port; see :attr:`port`)."""

    def __init__(
        self,
        health: HealthProvider,
        metrics: AgentMetrics | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        max_connections: int = 16,
        read_timeout_s: float = 10.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"health endpoint {port=} must be 0..65535 (0 picks a free port)")
        if max_connections < 1:
            raise ValueError(f"{max_connections=} must be >= 1")
        if read_timeout_s <= 0:
            raise ValueError(f"{read_timeout_s=} must be > 0 seconds")
        self.health = health
        self.metrics = metrics
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.read_timeout_s = read_timeout_s
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._health_error_logged = False

    async def start(self) -> None:
        """Bind and start serving; raises ``OSError`` (address in use, bad host) with the address named."""
        if not is_loopback(self.host):
            log.warning("health endpoint listens on %s:%s: /healthz and /metrics are unauthenticated",
                        self.host, self.port)
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port,
                                                      limit=MAX_REQUEST_LINE_BYTES)
        except OSError as exc:
            raise OSError(exc.errno, f"health endpoint cannot listen on {self.host}:{self.port}: {exc.strerror}. "
                                     "Choose another port or host in the config") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health endpoint on http://%s:%s/healthz and /metrics", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and end open connections (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._handle(reader, writer)
            await self._linger_close(reader, writer)
        except (ConnectionError, asyncio.CancelledError):  # a client gone, or stop(): nothing to answer
            pass
        except Exception:
            log.exception("health endpoint: request failed")
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._handlers) > self.max_connections:
            await self._respond(writer, HTTPStatus.SERVICE_UNAVAILABLE, TEXT_TYPE, b"busy\n", head=False)
            return
        try:
            async with asyncio.timeout(self.read_timeout_s):
                method, target, accept = await self._read_request(reader)
        except (_BadRequest, ValueError, asyncio.LimitOverrunError) as exc:
            await self._respond(writer, HTTPStatus.BAD_REQUEST, TEXT_TYPE, f"bad request: {exc}\n".encode(),
                                head=False)
            return
        except (TimeoutError, asyncio.IncompleteReadError):
            return
        await self._route(writer, method, target, accept)

    async def _linger_close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, then read what the client still sends (bounded), so closing does not reset the reply.

        Closing a socket with unread input makes the kernel send RST, which can destroy a response the
        client has not read yet (a busy or bad-request reply sent before the whole request arrived).
        """
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(LINGER_S):
                discarded = 0
                while discarded < LINGER_MAX_BYTES:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    discarded += len(chunk)

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, str]:
        """Read the request line and headers; return method, target and the Accept header."""
        line = await reader.readuntil(b"\n")
        parts = line.decode("latin-1").strip().split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest("expected 'METHOD /path HTTP/1.1'")
        accept = ""
        for _ in range(MAX_HEADERS):
            header = await reader.readuntil(b"\n")
            if header in (b"\r\n", b"\n"):
                return parts[0], parts[1], accept
            name, _, value = header.decode("latin-1").partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        raise _BadRequest(f"more than {MAX_HEADERS} headers")

    async def _route(self, writer: asyncio.StreamWriter, method: str, target: str, accept: str) -> None:
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            await self._respond(writer, HTTPStatus.METHOD_NOT_ALLOWED, TEXT_TYPE, b"use GET or HEAD\n",
                                head=False, extra=(("Allow", "GET, HEAD"),))
            return
        head = method == "HEAD"
        if path == "/healthz":
            report = self._report()
            code = HTTPStatus.OK if report.ready else HTTPStatus.SERVICE_UNAVAILABLE
            body = (json.dumps(report.as_json(), default=str) + "\n").encode()
            await self._respond(writer, code, JSON_TYPE, body, head=head)
        elif path == "/metrics" and self.metrics is not None:
            # Off the loop, so a scrape of many devices never shows up as poll jitter (the metric objects
            # are thread-safe).
            body, content_type = await asyncio.to_thread(self.metrics.render, accept)
            await self._respond(writer, HTTPStatus.OK, content_type, body, head=head)
        else:
            endpoints = "/healthz and /metrics" if self.metrics is not None else "/healthz"
            await self._respond(writer, HTTPStatus.NOT_FOUND, TEXT_TYPE, f"not found; try {endpoints}\n".encode(),
                                head=head)

    def _report(self) -> HealthReport:
        try:
            report = self.health()
        except Exception as exc:
            if not self._health_error_logged:
                log.exception("health provider failed")
                self._health_error_logged = True
            return HealthReport(False, (f"health check raised {exc!r}",))
        self._health_error_logged = False
        return report

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, code: HTTPStatus, content_type: str, body: bytes, *,
                       head: bool, extra: tuple[tuple[str, str], ...] = ()) -> None:
        lines = [
            f"HTTP/1.1 {code.value} {code.phrase}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            "Connection: close",
            *(f"{name}: {value}" for name, value in extra),
        ]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if not head:
            writer.write(body)
        await writer.drain()


async def start_health_server(
    health: HealthProvider,
    metrics: AgentMetrics | None = None,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
) -> HealthServer:
    """Create and start a :class:`HealthServer`; ``await server.stop()`` on shutdown."""
    server = HealthServer(health, metrics, host=host, port=port)
    await server.start()
    return server
