"""The Modbus driver: executes the read plan with pymodbus and turns answers into readings.

One :class:`ModbusDriver` per device (Modbus TCP, RTU on a serial line, or RTU frames over TCP).
It owns its retry policy: pymodbus's own retries and automatic reconnect are switched off. RTU
devices on the same serial port share one port (see :mod:`drivers.modbus.serial_line`); a device
that stops answering there only takes itself down, not the line.

Per :meth:`ModbusDriver.read` cycle:

- every planned request is sent (one after another, or over ``concurrency`` TCP connections);
- an exception response (e.g. ILLEGAL DATA ADDRESS) marks that request's points BAD with the
  exception's name and leaves the link up (comms DEGRADED; DOWN when no request at all succeeded,
  e.g. a TCP gateway answering GATEWAY TARGET DEVICE FAILED TO RESPOND). A merged request refused with ILLEGAL DATA
  ADDRESS is split into one request per point at once, and the driver keeps the split plan;
- a timeout, a reset or closed connection marks the remaining points BAD, closes the connection and
  sets comms DOWN; the next ``read()`` reconnects once the backoff delay (0.5 s doubling to 30 s,
  jittered) has passed, and until then returns BAD readings at once without touching the network.

A failure is logged once (warning), then quietly (debug) until it recovers, which is logged (info).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

from drivers.base import (
    CommsState,
    CommsStatus,
    DriverError,
    Quality,
    Reading,
    ReadingSink,
    ReadResult,
    Value,
    Waveform,
)
from drivers.modbus.backoff import Backoff
from drivers.modbus.codec import BlockDecoder, RegisterBlock, decode_bits, decode_raw, decode_waveform
from drivers.modbus.planner import ReadRequest, plan_reads, plan_waveform_reads, split_request
from drivers.modbus.serial_line import LINE_BACKSTOP_TIMEOUT_S, SerialLine, acquire_line, open_line, release_line
from drivers.modbus.spec import (
    ModbusDeviceSpec,
    ModbusPointSpec,
    ModbusRtuOverTcpSpec,
    ModbusRtuSpec,
    ModbusTcpSpec,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger(__name__)

#: Exception codes by the names of the Modbus Application Protocol Specification V1.1b3, section 7.
EXCEPTION_NAMES: dict[int, str] = {
    1: "ILLEGAL FUNCTION",
    2: "ILLEGAL DATA ADDRESS",
    3: "ILLEGAL DATA VALUE",
    4: "SERVER DEVICE FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER DEVICE BUSY",
    8: "MEMORY PARITY ERROR",
    10: "GATEWAY PATH UNAVAILABLE",
    11: "GATEWAY TARGET DEVICE FAILED TO RESPOND",
}
ILLEGAL_DATA_ADDRESS = 2

AnyModbusClient = AsyncModbusTcpClient | AsyncModbusSerialClient


class _LinkFailure(Exception):
    """The connection is unusable (timeout, reset, closed): close it and reconnect later."""


class _RequestRefused(Exception):
    """The device answered one request with an exception code, or an answer of the wrong size."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(slots=True)
class _PlannedRead:
    """A request of the plan with its precompiled decoder."""

    request: ReadRequest
    decoder: BlockDecoder | None
    names: tuple[str, ...]

    @classmethod
    def of(cls, request: ReadRequest) -> _PlannedRead:
        """Plan entry for ``request`` with its decoder built once."""
        decoder = None if request.is_bits else BlockDecoder(request.points, request.address)
        return cls(request, decoder, tuple(p.name for p in request.points))


def _registers_from_pdu(pdu: _HoldingRegistersAnswer | _InputRegistersAnswer, data: bytes) -> None:
    """Keep the register bytes of a function 3/4 answer as they are (a :class:`RegisterBlock`).

    pymodbus decodes one ``struct.unpack`` per register into a list of Python ints; the block decoder
    reads the raw big-endian bytes directly instead.
    """
    byte_count = int(data[0]) if data else -1
    if byte_count < 0 or byte_count >= len(data) or byte_count % 2:
        # Not raised: inside pymodbus's data_received that would abort the connection and take the whole
        # device down. The answer carries no registers and says why; only its request goes BAD.
        pdu.registers = RegisterBlock(b"")
        pdu.malformed = f"malformed answer: byte count {byte_count} does not fit a packet of {len(data)} bytes"
        return
    pdu.registers = RegisterBlock(data[1 : 1 + byte_count])


def _no_samples() -> npt.NDArray[np.float64]:
    """The empty sample array of a BAD waveform (numpy is loaded only when waveform points exist)."""
    import numpy as np  # lazy: a Modbus-only agent must not load numpy

    return np.zeros(0, dtype=np.float64)


def _short_pdu_str(pdu: ModbusPDU) -> str:
    return (f"{type(pdu).__name__}(dev_id={pdu.dev_id}, transaction_id={pdu.transaction_id}, "
            f"registers[{len(pdu.registers)}])")


class _HoldingRegistersAnswer(ReadHoldingRegistersResponse):
    """Function 3 answer whose ``registers`` is a :class:`RegisterBlock` (see :func:`_registers_from_pdu`)."""

    malformed: str | None = None  # why the answer could not be read (then it carries no registers)

    def decode(self, data: bytes) -> None:
        """Decode the answer's registers in one call."""
        _registers_from_pdu(self, data)

    def __str__(self) -> str:
        return _short_pdu_str(self)


class _InputRegistersAnswer(ReadInputRegistersResponse):
    """Function 4 answer whose ``registers`` is a :class:`RegisterBlock` (see :func:`_registers_from_pdu`)."""

    malformed: str | None = None  # why the answer could not be read (then it carries no registers)

    def decode(self, data: bytes) -> None:
        """Decode the answer's registers in one call."""
        _registers_from_pdu(self, data)

    def __str__(self) -> str:
        return _short_pdu_str(self)


def _fail_pending_request(client: AnyModbusClient) -> None:
    """Fail the request waiting on a connection that just closed, instead of letting it time out.

    pymodbus 3.x keeps the pending answer in ``client.ctx.response_future`` and does not fail it
    when the connection drops; when that attribute is missing (another pymodbus version) the request
    simply runs into its timeout.
    """
    future = getattr(getattr(client, "ctx", None), "response_future", None)
    if isinstance(future, asyncio.Future) and not future.done():
        future.set_exception(ConnectionException("connection closed by the device"))


#: The unit id of the last complete answer pymodbus skipped on a client because it came from another unit
#: than the one asked (see :func:`_watch_answer_units`).
_FOREIGN_UNITS: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()


def _watch_answer_units(client: AnyModbusClient) -> None:
    """Remember the unit id of each complete answer pymodbus drops as not from the unit asked.

    pymodbus 3.x skips such a frame (logging at a level the agent keeps quiet) and the request then times
    out, which sends an integrator to the cabling when the config's ``unit`` is wrong. Wrapping the framer's
    ``decode`` sees the frame first; on Modbus TCP the transaction id must also match the request, so the
    answer is known to be ours. Without these pymodbus internals (another version) nothing is watched and
    the request reports its timeout as before.
    """
    ctx = getattr(client, "ctx", None)
    framer = getattr(ctx, "framer", None)
    decode = getattr(framer, "decode", None)
    if decode is None or not hasattr(ctx, "request_dev_id"):
        return

    def watching(data: bytes) -> tuple[int, int, int, bytes]:
        used, unit, tid, frame = decode(data)
        asked = getattr(ctx, "request_dev_id", 0)
        ours = not tid or tid == getattr(ctx, "request_transaction_id", tid)  # TCP: the answer to this request
        if used and frame and asked and unit != asked and ours:
            _FOREIGN_UNITS[client] = unit
        return used, unit, tid, frame

    setattr(framer, "decode", watching)  # noqa: B010 - framer is typed Any | None here


def _no_answer(client: AnyModbusClient, unit_id: int, timeout_s: float) -> _LinkFailure:
    """The failure of a request that got no answer it could take: from another unit, or none at all."""
    unit = _FOREIGN_UNITS.pop(client, None)
    if unit is not None:
        return _LinkFailure(f"answers come from unit {unit}, not unit {unit_id}: check `unit` in the config")
    return _LinkFailure(f"no response within {timeout_s:g} s")


def exception_reason(code: int) -> str:
    """Readable reason for Modbus exception ``code``, e.g. ``exception 2 ILLEGAL DATA ADDRESS``."""
    return f"exception {code} {EXCEPTION_NAMES.get(code, 'UNKNOWN')}"


class ModbusDriver:
    """A :class:`drivers.base.Driver` for one Modbus device described by ``spec``.

    ``rng`` seeds the backoff jitter (tests). See the module docstring for the failure behaviour.
    """

    supports_subscribe = False

    def __init__(self, spec: ModbusDeviceSpec, *, rng: random.Random | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.comms = CommsStatus()
        values = [p for p in spec.points if p.kind == "value"]
        self._value_points = values
        self._waveform_points = [p for p in spec.points if p.kind == "waveform"]
        requests = plan_reads(values, spec.max_registers, spec.max_bits, spec.max_gap)
        self._plan = [_PlannedRead.of(r) for r in requests]
        self._waveform_plans = {
            p.name: plan_waveform_reads(p, spec.max_registers) for p in self._waveform_points
        }
        self._clients: list[AnyModbusClient] = []
        self._line: SerialLine | None = None  # RTU: the shared serial port this driver holds
        self._backoff = Backoff(spec.backoff_min_s, spec.backoff_max_s, rng)
        self._retry_at = 0.0
        self._had_connection = False
        self._failing_since: float | None = None
        self._refused: dict[tuple[str, int], str] = {}

    # ------------------------------------------------------------------ public API
    @property
    def connected(self) -> bool:
        """True while every connection of the driver is open."""
        return bool(self._clients) and all(c.connected for c in self._clients)

    @property
    def plan(self) -> list[ReadRequest]:
        """The requests one value cycle sends (after any ILLEGAL DATA ADDRESS splits)."""
        return [p.request for p in self._plan]

    @property
    def retry_in_s(self) -> float:
        """Seconds until the next reconnect attempt is allowed (0 when allowed now)."""
        return max(0.0, self._retry_at - time.monotonic())

    async def connect(self) -> None:
        """Open the connection(s); raise :class:`DriverError` naming the device when that fails."""
        if self.connected:
            return
        await self._close_clients()
        if isinstance(self.spec, ModbusRtuSpec):
            await self._connect_serial(self.spec)
            return
        count = self.spec.concurrency if isinstance(self.spec, ModbusTcpSpec) else 1
        clients = [self._make_client() for _ in range(count)]
        try:
            results = await asyncio.gather(*(c.connect() for c in clients))
        except (OSError, ModbusException) as exc:
            results = [False]
            error = str(exc)
        else:
            error = "connection refused or timed out"
        if not all(results):
            for c in clients:
                c.close()
            raise DriverError(f"device {self.name!r}: cannot connect to {self._where()}: {error}")
        self._clients = clients
        self._connected()

    async def _connect_serial(self, spec: ModbusRtuSpec) -> None:
        line = acquire_line(spec, self._make_client)  # type: ignore[arg-type]
        try:
            opened = await open_line(line)
        except (OSError, ModbusException) as exc:
            release_line(line)
            raise DriverError(f"device {self.name!r}: cannot open {line.describe()}: {exc}") from None
        if not opened:
            release_line(line)
            raise DriverError(f"device {self.name!r}: cannot open {line.describe()}")
        self._line = line
        self._clients = [line.client]
        self._connected()

    def _connected(self) -> None:
        if self._had_connection:
            self.comms.reconnects += 1
        self._had_connection = True

    async def read(self) -> ReadResult:
        """Read every point once. Never raises for device trouble: failures are BAD readings."""
        if not self.connected:
            down = await self._reconnect_if_due()
            if down is not None:
                return self._all_bad(down)
        result = ReadResult()
        outcome = _Cycle()
        await self._run_value_plan(result, outcome)
        for point in self._waveform_points:
            result.waveforms.append(await self._read_waveform(point, result, outcome))
        self._finish_cycle(result, outcome)
        return result

    async def subscribe(self, sink: ReadingSink) -> None:
        """Modbus has no push; the agent polls with :meth:`read`."""
        raise DriverError(f"device {self.name!r}: Modbus devices cannot push readings; poll them with read()")

    async def close(self) -> None:
        """Close the connection(s); safe at any time and more than once."""
        await self._close_clients()
        self.comms.state = CommsState.DOWN

    # ------------------------------------------------------------------ connection
    def _where(self) -> str:
        if isinstance(self.spec, ModbusRtuSpec):
            return f"{self.spec.serial_port} (RTU, unit {self.spec.unit_id})"
        kind = "RTU over TCP" if isinstance(self.spec, ModbusRtuOverTcpSpec) else "TCP"
        return f"{self.spec.host}:{self.spec.port} ({kind}, unit {self.spec.unit_id})"

    def _make_client(self) -> AnyModbusClient:
        spec = self.spec
        made: list[AnyModbusClient] = []

        def on_connection_change(up: bool) -> None:
            """pymodbus hook: a dropped connection fails the pending request at once."""
            if not up and made:
                _fail_pending_request(made[0])

        # retries=0 and reconnect_delay=0: this driver owns retries and reconnects.
        client: AnyModbusClient
        if isinstance(spec, ModbusRtuSpec):
            # shared by every device on the line: each driver enforces its own timeout_s per request
            client = AsyncModbusSerialClient(
                spec.serial_port, framer=FramerType.RTU, baudrate=spec.baudrate, bytesize=spec.bytesize,
                parity=spec.parity, stopbits=spec.stopbits, timeout=LINE_BACKSTOP_TIMEOUT_S, retries=0,
                reconnect_delay=0, name=spec.serial_port, trace_connect=on_connection_change,
            )
        else:
            framer = FramerType.RTU if isinstance(spec, ModbusRtuOverTcpSpec) else FramerType.SOCKET
            client = AsyncModbusTcpClient(
                spec.host, port=spec.port, framer=framer, timeout=spec.timeout_s, retries=0,
                reconnect_delay=0, name=spec.name, trace_connect=on_connection_change,
            )
        client.register(_HoldingRegistersAnswer)  # register answers as raw bytes: no Python int per register
        client.register(_InputRegistersAnswer)
        _watch_answer_units(client)
        made.append(client)
        return client

    def _drop_clients(self) -> None:
        """Close our TCP connections, or let go of the shared serial line."""
        clients, self._clients = self._clients, []
        if self._line is not None:
            release_line(self._line)
            self._line = None
            return
        for c in clients:
            c.close()

    async def _close_clients(self) -> None:
        had = bool(self._clients)
        self._drop_clients()
        if had:
            await asyncio.sleep(0)  # let the transports run their close callbacks

    async def _reconnect_if_due(self) -> str | None:
        """Try to connect when the backoff allows; return why the device is down, or None when up."""
        wait_s = self.retry_in_s
        if wait_s > 0:
            return f"not connected ({self.comms.last_error}); next attempt in {wait_s:.1f} s"
        try:
            await self.connect()
        except DriverError as exc:
            self._link_down(str(exc))
            return f"not connected ({exc}); next attempt in {self.retry_in_s:.1f} s"
        return None

    def _link_down(self, reason: str) -> None:
        now = time.time()
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        self.comms.state = CommsState.DOWN
        self.comms.last_error = reason
        self.comms.last_error_ts = now
        if self._failing_since is None:
            self._failing_since = now
            log.warning("device %r: %s; retrying with backoff (%g..%g s), further failures logged at "
                        "debug level", self.name, reason, self.spec.backoff_min_s, self.spec.backoff_max_s)
        else:
            log.debug("device %r: still down (%s); next attempt in %.1f s", self.name, reason, delay)

    # ------------------------------------------------------------------ value cycle
    async def _run_value_plan(self, result: ReadResult, cycle: _Cycle) -> None:
        """Execute the plan over every connection; requests are handed out in plan order."""
        slots: list[list[Reading]] = [[] for _ in self._plan]
        replacements: dict[int, list[_PlannedRead]] = {}
        queue = list(range(len(self._plan)))
        queue.reverse()

        async def worker(client: AnyModbusClient) -> None:
            """Take the next request of the plan until none are left."""
            while queue:
                index = queue.pop()
                planned = self._plan[index]
                if cycle.down_reason is not None:
                    slots[index] = self._bad(planned.request.points, f"not read: {cycle.down_reason}")
                    continue
                readings, keep = await self._read_planned(client, planned, result, cycle)
                slots[index] = readings
                if keep is not None:
                    replacements[index] = keep

        await asyncio.gather(*(worker(c) for c in list(self._clients)))
        for readings in slots:
            result.readings.extend(readings)
        if replacements:
            plan: list[_PlannedRead] = []
            for i, planned in enumerate(self._plan):
                plan.extend(replacements.get(i, [planned]))
            self._plan = plan

    async def _read_planned(self, client: AnyModbusClient, planned: _PlannedRead, result: ReadResult,
                            cycle: _Cycle) -> tuple[list[Reading], list[_PlannedRead] | None]:
        """Read one planned request; returns its readings and, after a split, the requests to keep."""
        request = planned.request
        try:
            data = await self._execute(client, request, result)
        except _LinkFailure as exc:
            cycle.link_failed(str(exc))
            return self._bad(request.points, str(exc)), None
        except _RequestRefused as exc:
            parts = split_request(request)
            if exc.code == ILLEGAL_DATA_ADDRESS and len(parts) > 1:
                log.info("device %r: %s for %s %d..%d; splitting it into %d requests", self.name, exc,
                         request.table, request.address, request.end - 1, len(parts))
                kept: list[_PlannedRead] = []
                readings: list[Reading] = []
                for part in (_PlannedRead.of(part) for part in parts):
                    if cycle.down_reason is not None:  # the link failed on an earlier part: send no more
                        readings.extend(self._bad(part.request.points, f"not read: {cycle.down_reason}"))
                        kept.append(part)
                        continue
                    part_readings, part_kept = await self._read_planned(client, part, result, cycle)
                    readings.extend(part_readings)
                    kept.extend(part_kept or [part])
                return readings, kept
            cycle.refused(self._refusal_key(request), str(exc))
            return self._bad(request.points, str(exc)), None
        try:
            readings = self._decode(planned, data, time.time())
        except (ValueError, TypeError, IndexError) as exc:  # a malformed answer must not stop the cycle
            reason = f"cannot decode the answer: {exc}"
            cycle.refused(self._refusal_key(request), reason)
            return self._bad(request.points, reason), None
        cycle.succeeded(self._refusal_key(request))
        return readings, None

    @staticmethod
    def _refusal_key(request: ReadRequest) -> tuple[str, int]:
        return (request.table, request.address)

    async def _execute(self, client: AnyModbusClient, request: ReadRequest,
                       result: ReadResult) -> Sequence[int] | list[bool]:
        """Send one read; raise _LinkFailure or _RequestRefused on failure."""
        if not client.connected:
            raise _LinkFailure("connection closed by the device")
        call: Callable[..., Awaitable[ModbusPDU]] = {
            "holding": client.read_holding_registers,
            "input": client.read_input_registers,
            "coil": client.read_coils,
            "discrete": client.read_discrete_inputs,
        }[request.table]
        timeout_s = self.spec.timeout_s
        # TCP: pymodbus enforces timeout_s and the outer limit only guards against a hang. A shared
        # serial line has a long pymodbus backstop, so the outer limit is the device's timeout.
        limit_s = timeout_s if self._line is not None else 2 * timeout_s + 1.0
        result.requests += 1
        unit_id = self.spec.unit_id
        try:
            if self._line is not None:
                # wait for our turn on the shared line first: the timeout covers only our own request
                async with self._line.turn:
                    _FOREIGN_UNITS.pop(client, None)
                    try:
                        async with asyncio.timeout(limit_s):
                            response = await call(request.address, count=request.count, device_id=unit_id)
                    except (ModbusIOException, TimeoutError):
                        failure = _no_answer(client, unit_id, timeout_s)  # before a late answer can blur it
                        # RTU frames carry no transaction id: an answer that comes late would be taken as the
                        # answer to the next request on the line (another register's value, marked good).
                        # Keep the line quiet for a while, still holding it, so a late answer arrives now,
                        # with no request waiting, and is dropped.
                        await asyncio.sleep(timeout_s)
                        raise failure from None
            else:
                _FOREIGN_UNITS.pop(client, None)
                async with asyncio.timeout(limit_s):
                    response = await call(request.address, count=request.count, device_id=unit_id)
        except (ModbusIOException, TimeoutError):
            raise _no_answer(client, unit_id, timeout_s) from None
        except ConnectionException as exc:
            raise _LinkFailure(f"connection lost: {getattr(exc, 'string', exc)}") from None
        except (OSError, ModbusException) as exc:
            raise _LinkFailure(f"communication error: {getattr(exc, 'string', exc)}") from None
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise _RequestRefused(exception_reason(code), code)
        if request.is_bits:
            bits: list[bool] = list(response.bits)
            if len(bits) < request.count:
                raise _RequestRefused(f"device answered {len(bits)} bits, {request.count} requested")
            return bits[: request.count]
        malformed = getattr(response, "malformed", None)
        if malformed:
            raise _RequestRefused(malformed)
        registers: Sequence[int] = response.registers
        if len(registers) != request.count:
            raise _RequestRefused(f"device answered {len(registers)} registers, {request.count} requested")
        return registers

    def _decode(self, planned: _PlannedRead, data: Sequence[int] | list[bool], ts: float) -> list[Reading]:
        request = planned.request
        values: list[Value]
        if planned.decoder is None:
            values, problems = decode_bits(request.points, request.address, data)  # type: ignore[arg-type]
        else:
            values, problems = planned.decoder.decode(data)
        if not problems:
            return list(map(Reading, planned.names, values, repeat(Quality.GOOD), repeat(ts)))
        return [
            Reading(p.name, None, Quality.BAD, ts, reason=problems[i]) if i in problems
            else Reading(p.name, v, Quality.GOOD, ts)
            for i, (p, v) in enumerate(zip(request.points, values, strict=True))
        ]

    # ------------------------------------------------------------------ waveforms
    async def _read_waveform(self, point: ModbusPointSpec, result: ReadResult, cycle: _Cycle) -> Waveform:
        ts = time.time()
        empty = _no_samples()
        if cycle.down_reason is not None or not self._clients:
            return Waveform(point.name, empty, point.sample_rate_hz or 0.0, ts, point.unit, Quality.BAD)
        client = self._clients[0]
        try:
            rate_hz = point.sample_rate_hz
            if point.sample_rate_address is not None:
                width = 1 if point.sample_rate_type == "uint16" else 2
                rate_request = ReadRequest(point.table, point.sample_rate_address, width, ())
                rate_words = [int(w) for w in await self._execute(client, rate_request, result)]
                rate_hz = float(decode_raw(rate_words, point.sample_rate_type, point.byte_order))
            words: list[int] = []
            for request in self._waveform_plans[point.name]:
                words.extend(int(w) for w in await self._execute(client, request, result))
        except _LinkFailure as exc:
            cycle.link_failed(str(exc))
            return Waveform(point.name, empty, point.sample_rate_hz or 0.0, ts, point.unit, Quality.BAD)
        except _RequestRefused as exc:
            cycle.refused((point.table, point.address), f"waveform {point.name!r}: {exc}")
            return Waveform(point.name, empty, point.sample_rate_hz or 0.0, ts, point.unit, Quality.BAD)
        cycle.succeeded((point.table, point.address))
        assert rate_hz is not None
        if rate_hz <= 0:
            cycle.refused((point.table, point.address), f"waveform {point.name!r}: sample rate register is 0")
            return Waveform(point.name, empty, 0.0, ts, point.unit, Quality.BAD)
        return Waveform(point.name, decode_waveform(point, words), rate_hz, ts, point.unit)

    # ------------------------------------------------------------------ bookkeeping
    def _bad(self, points: Sequence[ModbusPointSpec], reason: str) -> list[Reading]:
        ts = time.time()
        return [Reading(p.name, None, Quality.BAD, ts, reason=reason) for p in points]

    def _all_bad(self, reason: str) -> ReadResult:
        ts = time.time()
        self.comms.requests_last_cycle = 0
        return ReadResult(
            readings=self._bad(self._value_points, reason),
            waveforms=[Waveform(p.name, _no_samples(), p.sample_rate_hz or 0.0, ts, p.unit, Quality.BAD)
                       for p in self._waveform_points],
        )

    def _finish_cycle(self, result: ReadResult, cycle: _Cycle) -> None:
        now = time.time()
        self.comms.requests_last_cycle = result.requests
        for key, reason in cycle.refusals.items():
            if key not in self._refused:
                log.warning("device %r: %s %d: %s (logged once until it recovers)", self.name, key[0], key[1],
                            reason)
            self._refused[key] = reason
        for key in cycle.successes & self._refused.keys():
            log.info("device %r: %s %d reads again", self.name, key[0], key[1])
            del self._refused[key]
        if cycle.down_reason is not None:
            self._link_down(cycle.down_reason)
            self._drop_clients()
            return
        if cycle.successes:
            self._backoff.reset()  # only answers prove the device is back, not an accepted connection
        if self._failing_since is not None:
            log.info("device %r: connection restored after %.1f s", self.name, now - self._failing_since)
            self._failing_since = None
        if cycle.successes:
            self.comms.last_ok_ts = now
        if cycle.refusals:
            # answers, but no data at all (e.g. a gateway whose device is gone) is as bad as no link
            self.comms.state = CommsState.DEGRADED if cycle.successes else CommsState.DOWN
            self.comms.last_error = next(iter(cycle.refusals.values()))
            self.comms.last_error_ts = now
        else:
            self.comms.state = CommsState.OK


class _Cycle:
    """What happened during one read cycle."""

    __slots__ = ("down_reason", "refusals", "successes")

    def __init__(self) -> None:
        self.down_reason: str | None = None
        self.refusals: dict[tuple[str, int], str] = {}
        self.successes: set[tuple[str, int]] = set()

    def link_failed(self, reason: str) -> None:
        """The link broke; the first reason wins and the rest of the cycle is skipped."""
        if self.down_reason is None:
            self.down_reason = reason

    def refused(self, key: tuple[str, int], reason: str) -> None:
        """The request at ``key`` (table, address) got an exception answer."""
        self.refusals[key] = reason

    def succeeded(self, key: tuple[str, int]) -> None:
        """The request at ``key`` (table, address) returned data."""
        self.successes.add(key)
