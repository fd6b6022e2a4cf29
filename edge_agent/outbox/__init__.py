"""The durable outbox (SQLite, WAL, group commit): see :mod:`edge_agent.outbox.outbox` for the guarantee."""

from edge_agent.outbox.outbox import MODE_DISK, MODE_MEMORY_FALLBACK, Outbox, validate_record
from edge_agent.outbox.sqlite_store import RECORD_OVERHEAD_BYTES, NewRecord, Record

__all__ = ["MODE_DISK", "MODE_MEMORY_FALLBACK", "RECORD_OVERHEAD_BYTES", "NewRecord", "Outbox", "Record",
           "validate_record"]
