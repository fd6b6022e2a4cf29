"""A simulated PLC: a real pymodbus server whose registers show the plant model, with faults on demand.

:class:`ModbusSimServer` serves one unit id over Modbus TCP (or RTU framing over TCP) on a real
socket. Every ``update_interval_s`` it moves the :class:`~drivers.sim.plant.Plant` to the current
time and encodes it into a register image following a register map (default
:data:`~drivers.sim.register_map.REGISTER_MAP`); each request is answered from that image. Unmapped
register addresses answer ILLEGAL DATA ADDRESS; writes answer ILLEGAL FUNCTION (the simulated PLC is
read-only, like the agent). The vibration waveform block takes a new capture every
``waveform_interval_s`` but never while a client is part-way through reading it, so a block read in
many requests comes from one capture. Several unit ids can share the image (a multi-drop line);
other unit ids stay silent on a serial line and get exception 11 over TCP, as behind a gateway.

Faults for tests: :meth:`~ModbusSimServer.drop_connections` (close every client connection),
:meth:`~ModbusSimServer.set_delay` (answer late, e.g. longer than the client's timeout),
:meth:`~ModbusSimServer.set_exception` (answer an exception code for some or all addresses),
:meth:`~ModbusSimServer.stop` / :meth:`~ModbusSimServer.start` (kill and restart on the same port).

Run it stand-alone: ``python -m drivers.sim.modbus_server --port 5020``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.modbus.spec import BIT_TABLES, TABLES, Table
from drivers.sim.plant import Plant, PlantValue
from drivers.sim.register_map import (
    REGISTER_MAP,
    WAVEFORM_RATE_SOURCE,
    WAVEFORM_SAMPLE_RATE_HZ,
    WAVEFORM_SOURCE,
    MapEntry,
    check_register_map,
    encode_entry,
    synthetic_register_map,
)
from drivers.sim.vibration import MachineVibration

log = logging.getLogger(__name__)

#: Table addressed by each read/write function code.
_FUNCTION_TABLE: dict[int, Table] = {1: "coil", 5: "coil", 15: "coil", 2: "discrete",
                                     3: "holding", 6: "holding", 16: "holding", 22: "holding",
                                     23: "holding", 4: "input"}


@dataclass(frozen=True, slots=True)
class ExceptionFault:
    """Answer exception ``code`` to reads of ``table`` (None: any) starting in [first, last]."""

    code: int
    table: Table | None = None
    first: int = 0
    last: int = 0xFFFF

    def matches(self, table: Table, address: int) -> bool:
        """True when a request for ``table`` at ``address`` gets this fault."""
        return (self.table is None or self.table == table) and self.first <= address <= self.last


class ModbusSimServer:
    """A Modbus TCP server showing ``plant`` through ``register_map``.

    ``host``/``port`` to listen on (port 0 picks a free port; read it from :attr:`port` after
    :meth:`start`), or ``serial_port`` (with ``baudrate`` and ``parity``) to serve RTU on a serial
    device instead. ``framer`` ``socket`` is Modbus TCP, ``rtu`` sends RTU frames (with CRC) over TCP,
    as a serial gateway would. ``update_interval_s`` seconds between plant updates (None: only when
    :meth:`refresh` is called). ``clock`` returns the plant time in seconds (default: seconds since
    this object was made). ``vibration`` feeds the waveform block (default: a healthy machine at the
    plant's speed). ``answer_unit`` (one of the unit ids): answer every request as that unit, whatever unit
    the master asked for, as a device set to another address would if it answered anyway.
    """

    def __init__(
        self,
        plant: Plant,
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int | Sequence[int] = 1,
        update_interval_s: float | None = 0.1,
        register_map: Sequence[MapEntry] = REGISTER_MAP,
        framer: str = "socket",
        clock: Callable[[], float] | None = None,
        vibration: MachineVibration | None = None,
        serial_port: str | None = None,
        baudrate: int = 19200,
        parity: str = "E",
        waveform_interval_s: float = 1.0,
        answer_unit: int | None = None,
    ) -> None:
        if framer not in ("socket", "rtu"):
            raise ValueError(f"framer {framer!r} must be socket (Modbus TCP) or rtu (RTU over TCP)")
        if update_interval_s is not None and update_interval_s <= 0:
            raise ValueError(f"{update_interval_s=} must be positive seconds, or None for manual refresh()")
        check_register_map(register_map)
        self.plant = plant
        self.host = host
        self.port = port
        self.unit_ids = (unit_id,) if isinstance(unit_id, int) else tuple(unit_id)
        if not self.unit_ids or not all(1 <= u <= 247 for u in self.unit_ids):
            raise ValueError(f"unit ids {self.unit_ids} must be 1..247")
        self.unit_id = self.unit_ids[0]
        if answer_unit is not None and answer_unit not in self.unit_ids:
            raise ValueError(f"answer_unit {answer_unit} must be one of the unit ids {self.unit_ids}")
        self.answer_unit = answer_unit
        self.update_interval_s = update_interval_s
        self.register_map = tuple(register_map)
        self.framer = FramerType.SOCKET if framer == "socket" else FramerType.RTU
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.parity = parity
        started = time.monotonic()
        self.clock = clock if clock is not None else (lambda: time.monotonic() - started)
        self.vibration = vibration or MachineVibration(WAVEFORM_SAMPLE_RATE_HZ, 24.7, seed=plant.seed)
        self.requests_served = 0
        self._delay_s = 0.0
        self._faults: list[ExceptionFault] = []
        self._delayed: set[asyncio.Task[object]] = set()  # answers being held back by set_delay
        self._address_delays: dict[int, float] = {}  # start address -> delay, s (set_delay with an address)
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._updater: asyncio.Task[None] | None = None
        self.waveform_interval_s = waveform_interval_s
        self._last_waveform_t: float | None = None
        #: (plant time s, shaft Hz) of the most recent vibration captures put in the waveform block
        self.waveform_captures: collections.deque[tuple[float, float]] = collections.deque(maxlen=64)
        self._waveform = next((e.point for e in register_map if e.source == WAVEFORM_SOURCE), None)
        self._waveform_read_since: float | None = None  # a client is reading the block chunk by chunk
        self._registers: dict[str, npt.NDArray[np.uint16]] = {}
        self._bits: dict[str, npt.NDArray[np.bool_]] = {}
        self._packed_bits: dict[str, list[int]] = {}
        self._build_image()
        self.refresh()

    # ------------------------------------------------------------------ image
    def _build_image(self) -> None:
        for table in TABLES:
            entries = [e for e in self.register_map if e.point.table == table]
            end = max((e.point.address + e.point.register_count for e in entries), default=0)
            if table in BIT_TABLES:
                self._bits[table] = np.zeros(max(16, -(-end // 16) * 16), dtype=bool)
            else:
                self._registers[table] = np.zeros(max(end, 1), dtype=np.uint16)

    def _source(self, name: str) -> PlantValue:
        if name == WAVEFORM_RATE_SOURCE:
            return int(self.vibration.fs_hz)
        return self.plant.value(name)

    def refresh(self) -> None:
        """Move the plant to ``clock()`` and re-encode every mapped value into the register image."""
        t_s = self.clock()
        self.plant.update(t_s)
        for entry in self.register_map:
            p = entry.point
            if entry.is_bit_view:
                continue
            if entry.source == WAVEFORM_SOURCE:
                self._refresh_waveform(entry, t_s)
                continue
            words = encode_entry(p, self._source(entry.source))
            if p.table in BIT_TABLES:
                self._bits[p.table][p.address] = bool(words[0])
            else:
                self._registers[p.table][p.address : p.address + len(words)] = words
        for table, bits in self._bits.items():
            self._packed_bits[table] = np.packbits(bits, bitorder="little").view("<u2").tolist()

    def _refresh_waveform(self, entry: MapEntry, t_s: float) -> None:
        """A new capture every ``waveform_interval_s`` (a sensor module updates its block slowly), but
        never while a client is part-way through reading the block: a block read in several requests
        must come from one capture, as a device with a capture buffer would guarantee."""
        if self._last_waveform_t is not None and t_s - self._last_waveform_t < self.waveform_interval_s:
            return
        since = self._waveform_read_since
        if since is not None and time.monotonic() - since < 2.0:
            return
        self._last_waveform_t = t_s
        p = entry.point
        speed_rpm = float(self.plant.value("motor.speed_rpm"))
        shaft_hz = speed_rpm / 60.0 if speed_rpm > 60.0 else self.vibration.shaft_hz
        samples_g = self.vibration.capture(t_s, p.register_count, shaft_hz=shaft_hz)
        counts = np.clip(np.round((samples_g - p.offset) / p.scale), -32768, 32767).astype(np.int16)
        self._registers[p.table][p.address : p.address + p.register_count] = counts.view(np.uint16)
        self.waveform_captures.append((t_s, shaft_hz))

    def registers(self, table: Table, address: int, count: int) -> list[int]:
        """The current image of ``count`` registers (or bits as 0/1) of ``table`` from ``address``."""
        if table in BIT_TABLES:
            return [int(b) for b in self._bits[table][address : address + count]]
        return [int(w) for w in self._registers[table][address : address + count]]

    # ------------------------------------------------------------------ faults
    def drop_connections(self) -> int:
        """Close every client connection now (clients see the connection reset); returns how many."""
        if self._server is None:
            return 0
        connections = list(self._server.active_connections.values())
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abort()  # type: ignore[attr-defined]
            connection.close()
        return len(connections)

    def set_delay(self, seconds: float, address: int | None = None) -> None:
        """Answer every request ``seconds`` late (0 to answer at once), or only reads starting at ``address``."""
        if seconds < 0:
            raise ValueError(f"delay {seconds=} must not be negative")
        if address is None:
            self._delay_s = seconds
        else:
            self._address_delays[address] = seconds

    def set_exception(
        self, code: int, table: Table | None = None, first: int = 0, last: int = 0xFFFF
    ) -> None:
        """Answer Modbus exception ``code`` (2 = ILLEGAL DATA ADDRESS, 4 = SERVER DEVICE FAILURE, ...)
        to reads of ``table`` (None: every table) whose start address is in [first, last]."""
        ExcCodes(code)  # raises ValueError for a code Modbus does not define
        self._faults.append(ExceptionFault(code, table, first, last))

    @property
    def held_requests(self) -> int:
        """Requests currently held back by :meth:`set_delay` (or unanswered for an unknown unit)."""
        return len(self._delayed)

    def clear_faults(self) -> None:
        """Remove every delay and exception fault."""
        self._delay_s = 0.0
        self._address_delays.clear()
        self._faults.clear()

    async def _answer(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """pymodbus action hook: apply faults, then copy the current image into its register block."""
        self.requests_served += 1
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION
        delay_s = self._address_delays.get(address, self._delay_s)
        if delay_s > 0:
            task = asyncio.current_task()
            if task is not None:
                self._delayed.add(task)
            try:
                await asyncio.sleep(delay_s)
            finally:
                self._delayed.discard(task)
        table = _FUNCTION_TABLE.get(function_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        for fault in self._faults:
            if fault.matches(table, address):
                return ExcCodes(fault.code)
        wf = self._waveform
        if wf is not None and table == wf.table and address < wf.address + wf.register_count <= address + count:
            self._waveform_read_since = None  # the last chunk of the block: the read is complete
        elif wf is not None and table == wf.table and address == wf.address:
            self._waveform_read_since = time.monotonic()
        if table in BIT_TABLES:
            # bit blocks are packed 16 bits per register; count is in registers here
            first = address // 16
            registers[first - start_address : first - start_address + count] = (
                self._packed_bits[table][first : first + count]
            )
        else:
            image = self._registers[table]
            registers[address - start_address : address - start_address + count] = (
                image[address : address + count].tolist()
            )
        return None

    def _device(self) -> list[SimDevice]:
        """The pymodbus devices (one per unit id, same image): one SimData per contiguous run of mapped
        addresses, the rest invalid."""
        blocks: list[list[SimData]] = []
        for table in ("coil", "discrete", "holding", "input"):
            owned = sorted({a for e in self.register_map if e.point.table == table
                            for a in range(e.point.address, e.point.address + e.point.register_count)})
            runs: list[tuple[int, int]] = []
            for a in owned:
                if runs and runs[-1][1] == a:
                    runs[-1] = (runs[-1][0], a + 1)
                else:
                    runs.append((a, a + 1))
            if table in BIT_TABLES:
                data = [SimData(a, values=[False] * (b - a), datatype=DataType.BITS) for a, b in runs]
                blocks.append(data or [SimData(0, values=[False], datatype=DataType.BITS)])
            else:
                data = [SimData(a, values=[0] * (b - a), datatype=DataType.REGISTERS) for a, b in runs]
                blocks.append(data or [SimData(0, datatype=DataType.INVALID)])
        simdata = (blocks[0], blocks[1], blocks[2], blocks[3])
        devices = [SimDevice(unit, simdata=simdata, action=self._answer) for unit in self.unit_ids]
        # id 0 stands for every other unit id: nobody home
        return [*devices, SimDevice(0, simdata=simdata, action=self._unknown_unit)]

    async def _unknown_unit(self, function_code: int, start_address: int, address: int, count: int,
                            registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        """A unit id nobody answers to: silence on a serial line (the master times out), exception
        11 GATEWAY TARGET DEVICE FAILED TO RESPOND from a TCP server, as a gateway would say."""
        if self.serial_port is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        task = asyncio.current_task()
        if task is not None:
            self._delayed.add(task)
        try:
            await asyncio.Event().wait()  # until stop() cancels it
        finally:
            self._delayed.discard(task)
        return None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Listen on ``host``:``port`` (the same port again after :meth:`stop`) and start updating."""
        if self._server is not None:
            raise RuntimeError("simulated Modbus server is already running")
        if self.serial_port is not None:
            await self._start_serial(self.serial_port)
        else:
            server = ModbusTcpServer(self._device(), framer=self.framer, address=(self.host, self.port),
                                     trace_pdu=self._as_answer_unit if self.answer_unit is not None else None)
            await server.serve_forever(background=True)
            listener = server.transport
            if listener is None:
                raise OSError(f"simulated Modbus server could not listen on {self.host}:{self.port}")
            self._server = server
            self.port = int(listener.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        if self.update_interval_s is not None:
            self._updater = asyncio.create_task(self._update_forever(self.update_interval_s),
                                                name=f"modbus-sim-update:{self.port}")
        log.info("simulated Modbus server on %s (unit %s)",
                 self.serial_port or f"{self.host}:{self.port}", ",".join(map(str, self.unit_ids)))

    def _as_answer_unit(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        """pymodbus trace hook with ``answer_unit``: every request is served as that unit, and every answer
        carries it, whatever unit id the master asked for (a device set to another address that answers
        anyway, or a gateway that rewrites the unit)."""
        assert self.answer_unit is not None
        pdu.dev_id = self.answer_unit
        return pdu

    async def _start_serial(self, serial_port: str) -> None:
        """Serve RTU on a serial device (e.g. one end of a socat pty pair)."""
        server = ModbusSerialServer(self._device(), framer=FramerType.RTU, port=serial_port,
                                    baudrate=self.baudrate, parity=self.parity, reconnect_delay=0,
                                    trace_pdu=self._as_answer_unit if self.answer_unit is not None else None)
        await server.serve_forever(background=True)
        if server.transport is None:
            raise OSError(f"simulated Modbus server could not open serial port {serial_port}")
        self._server = server

    async def _update_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.refresh()

    async def stop(self) -> None:
        """Stop listening, close every connection and stop updating; safe to call twice."""
        if self._updater is not None:
            self._updater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._updater
            self._updater = None
        delayed = list(self._delayed)
        for task in delayed:
            task.cancel()
        await asyncio.gather(*delayed, return_exceptions=True)
        server, self._server = self._server, None
        if server is not None:
            listener = server.transport
            await server.shutdown()  # type: ignore[no-untyped-call]
            if isinstance(listener, asyncio.Server):
                await listener.wait_closed()

    @property
    def running(self) -> bool:
        """True while listening."""
        return self._server is not None

    async def __aenter__(self) -> ModbusSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


@contextlib.asynccontextmanager
async def serve_modbus(plant: Plant, host: str = "127.0.0.1", port: int = 0, unit_id: int = 1,
                       update_interval_s: float | None = 0.1,
                       register_map: Sequence[MapEntry] = REGISTER_MAP,
                       framer: str = "socket") -> AsyncIterator[ModbusSimServer]:
    """Run a :class:`ModbusSimServer` for the duration of an ``async with`` block."""
    server = ModbusSimServer(plant, host, port, unit_id, update_interval_s, register_map, framer)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def _main(args: argparse.Namespace) -> None:
    entries = synthetic_register_map(args.synthetic) if args.synthetic else REGISTER_MAP
    plant = Plant(seed=args.seed, scenario=args.scenario)
    interval = args.update_interval if args.update_interval > 0 else None
    vibration = MachineVibration(WAVEFORM_SAMPLE_RATE_HZ, 24.7, scenario=args.vibration, seed=args.seed)
    async with ModbusSimServer(plant, args.host, args.port, args.unit_id, interval, entries, args.framer,
                               vibration=vibration) as srv:
        print(f"listening {srv.host}:{srv.port}", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: serve the simulated plant until interrupted."""
    parser = argparse.ArgumentParser(description="Simulated PLC (Modbus TCP) over the plant model.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020, help="0 picks a free port (printed at start)")
    parser.add_argument("--unit-id", type=int, default=1)
    parser.add_argument("--framer", choices=("socket", "rtu"), default="socket")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenario", default="healthy", help="plant scenario: healthy | bearing_overheat")
    parser.add_argument("--vibration", default="healthy",
                        help="vibration scenario: healthy | unbalance | misalignment | looseness | outer_race | "
                             "inner_race | ball")
    parser.add_argument("--update-interval", type=float, default=0.1, help="seconds; 0 = never update")
    parser.add_argument("--synthetic", type=int, default=0,
                        help="serve N synthetic points instead of the register map")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
