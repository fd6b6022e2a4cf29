"""Read planning: which registers go into which Modbus request.

Pure functions. :func:`plan_reads` merges the value points of each table into the fewest requests
that respect the protocol's size limits, bridging holes of up to ``max_gap`` registers (reading a
few unused registers is cheaper than another round trip, but a device may refuse addresses it does
not implement). :func:`split_request` breaks a merged request into one request per point span, for
when the device answers ILLEGAL DATA ADDRESS to the merged one. :func:`plan_waveform_reads` cuts a
long waveform block into requests of at most ``max_registers``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drivers.modbus.spec import (
    BIT_TABLES,
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    TABLES,
    ModbusPointSpec,
    Table,
)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: ``count`` registers (or bits) of ``table`` from ``address``, serving ``points``."""

    table: Table
    address: int
    count: int
    points: tuple[ModbusPointSpec, ...]

    @property
    def end(self) -> int:
        """First address after the request."""
        return self.address + self.count

    @property
    def is_bits(self) -> bool:
        """True for coil and discrete-input reads (counts are bits, not registers)."""
        return self.table in BIT_TABLES


def _check_limits(max_registers: int, max_bits: int, max_gap: int) -> None:
    if not 1 <= max_registers <= MAX_REGISTERS_PER_READ:
        raise ValueError(f"{max_registers=} must be 1..{MAX_REGISTERS_PER_READ} (Modbus V1.1b3 §6.3)")
    if not 1 <= max_bits <= MAX_BITS_PER_READ:
        raise ValueError(f"{max_bits=} must be 1..{MAX_BITS_PER_READ} (Modbus V1.1b3 §6.1)")
    if max_gap < 0:
        raise ValueError(f"{max_gap=} must be >= 0")


def plan_reads(
    points: Iterable[ModbusPointSpec],
    max_registers: int = MAX_REGISTERS_PER_READ,
    max_bits: int = MAX_BITS_PER_READ,
    max_gap: int = 0,
) -> list[ReadRequest]:
    """Merge value points into the fewest read requests per table.

    Points are sorted by address; a point joins the open request when the hole before it is at most
    ``max_gap`` registers (bits for coil/discrete) and the request stays within ``max_registers``
    (``max_bits``). Overlapping points (e.g. several bits of one status word) share registers.
    Requests come out grouped by table (holding, input, coil, discrete), ascending address. Waveform
    points are not planned here (see :func:`plan_waveform_reads`).
    """
    _check_limits(max_registers, max_bits, max_gap)
    by_table: dict[str, list[ModbusPointSpec]] = {table: [] for table in TABLES}
    for p in points:
        if p.kind != "value":
            raise ValueError(f"point {p.name!r} is a waveform; plan it with plan_waveform_reads")
        by_table[p.table].append(p)
    requests: list[ReadRequest] = []
    for table in TABLES:
        limit = max_bits if table in BIT_TABLES else max_registers
        ordered = sorted(by_table[table], key=lambda p: (p.address, p.register_count))
        group: list[ModbusPointSpec] = []
        start = end = 0
        for p in ordered:
            span = p.register_count
            if span > limit:
                raise ValueError(f"point {p.name!r} spans {span} registers, more than one request may read "
                                 f"({limit})")
            p_end = p.address + span
            if group and p.address - end <= max_gap and max(end, p_end) - start <= limit:
                group.append(p)
                end = max(end, p_end)
                continue
            if group:
                requests.append(ReadRequest(table, start, end - start, tuple(group)))
            group, start, end = [p], p.address, p_end
        if group:
            requests.append(ReadRequest(table, start, end - start, tuple(group)))
    return requests


def split_request(request: ReadRequest) -> list[ReadRequest]:
    """Smaller requests serving the same points, for when the device refused ``request``.

    A request that bridges holes is cut into its hole-free runs (the holes are the likely cause of
    an ILLEGAL DATA ADDRESS); a request without holes is cut into one request per distinct point span
    (points sharing registers, like the bits of one status word, stay together). Returns a single
    request equal to ``request`` when it cannot be split further.
    """
    runs = plan_reads(request.points, MAX_REGISTERS_PER_READ, MAX_BITS_PER_READ, max_gap=0)
    if len(runs) > 1:
        return runs
    spans: dict[tuple[int, int], list[ModbusPointSpec]] = {}
    for p in request.points:
        spans.setdefault((p.address, p.register_count), []).append(p)
    return [
        ReadRequest(request.table, address, count, tuple(group))
        for (address, count), group in sorted(spans.items())
    ]


def plan_waveform_reads(
    point: ModbusPointSpec, max_registers: int = MAX_REGISTERS_PER_READ
) -> list[ReadRequest]:
    """Consecutive requests of at most ``max_registers`` covering the ``count`` samples of a waveform."""
    if point.kind != "waveform":
        raise ValueError(f"point {point.name!r} is not a waveform")
    _check_limits(max_registers, MAX_BITS_PER_READ, 0)
    total = point.register_count
    return [
        ReadRequest(point.table, point.address + first, min(max_registers, total - first), (point,))
        for first in range(0, total, max_registers)
    ]


def registers_read(requests: Iterable[ReadRequest]) -> int:
    """Total registers and bits the requests transfer (for statistics)."""
    return sum(r.count for r in requests)
