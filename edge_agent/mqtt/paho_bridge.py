"""Drive one paho-mqtt client from an asyncio event loop, the aiomqtt way.

paho tells us when its socket opens and closes and when it has bytes to send
(``on_socket_open/close/register_write/unregister_write``); we map those onto ``loop.add_reader`` and
``loop.add_writer``, and call ``loop_misc`` (keepalive pings, timeouts) on a one-second timer. All paho calls
then happen on the event-loop thread, so no paho lock is ever contended and no callback needs a thread hop,
except the blocking TCP/TLS connect, which the publisher runs in an executor: socket callbacks made from that
thread are forwarded with ``call_soon_threadsafe`` (FIFO, so they land before the connect's result does).

Why not paho's own network thread: every callback (PUBACK, message, disconnect) would then need a hop into the
loop, publish and the callbacks would contend on paho's mutexes, and paho's built-in reconnect has no jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from typing import Any

import paho.mqtt.client as paho

MISC_INTERVAL_S = 1.0  # paho's own loop() calls loop_misc about once a second


class PahoAsyncioBridge:
    """Registers one paho client's socket with the running event loop; one bridge per client object."""

    def __init__(self, client: paho.Client, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop
        self._loop_thread = threading.get_ident()
        self._fd: int | None = None
        self._sock: Any = None
        self._writing = False
        self._misc: asyncio.TimerHandle | None = None
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write

    # ------------------------------------------------------------------ paho callbacks (any thread)
    def _in_loop(self, fn: Any, *args: Any) -> None:
        if self.loop.is_closed():
            return  # a client collected after its event loop ended (its __del__ closes the socket): nothing to do
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._attach, sock)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._detach)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._want_write, True)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._in_loop(self._want_write, False)

    # ------------------------------------------------------------------ loop side
    def _attach(self, sock: Any) -> None:
        self._detach()
        self._sock = sock
        self._fd = sock.fileno()
        with contextlib.suppress(OSError, AttributeError):  # small PUBLISH packets must not wait for Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.loop.add_reader(self._fd, self._readable)
        if self._writing:
            self.loop.add_writer(self._fd, self._writable)
        self._misc = self.loop.call_later(MISC_INTERVAL_S, self._tick)

    def _detach(self) -> None:
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            self.loop.remove_writer(self._fd)
        self._fd = None
        self._sock = None
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def _want_write(self, on: bool) -> None:
        self._writing = on
        if self._fd is None:
            return
        if on:
            self.loop.add_writer(self._fd, self._writable)
        else:
            self.loop.remove_writer(self._fd)

    def _readable(self) -> None:
        self.client.loop_read()
        pending = getattr(self._sock, "pending", None)  # TLS may hold decrypted bytes the selector can't see
        if self._sock is not None and callable(pending) and pending() > 0:
            self.loop.call_soon(self._readable)

    def _writable(self) -> None:
        self.client.loop_write()

    def _tick(self) -> None:
        self._misc = None
        if self._fd is None:
            return
        self.client.loop_misc()
        if self._fd is not None:
            self._misc = self.loop.call_later(MISC_INTERVAL_S, self._tick)

    # ------------------------------------------------------------------ public
    @property
    def attached(self) -> bool:
        """True while the client's socket is registered with the loop."""
        return self._fd is not None

    def abort(self) -> None:
        """Close the socket at once, without a DISCONNECT packet (the broker will send the last will)."""
        sock = self._sock
        self._detach()
        with contextlib.suppress(OSError):
            raw = self.client.socket()
            if raw is not None:
                raw.close()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
