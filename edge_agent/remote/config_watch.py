"""Pick up local edits of the config file: poll mtime/size/hash every few seconds, or now on SIGHUP.

A changed file whose text differs from the running config goes through the same apply path as a
remote push (validation, live apply, history, state). An invalid edit is refused and logged once per
distinct text; the running config stays. ``request_reload()`` (wire it to SIGHUP) retries even a text
that was refused before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from edge_agent.remote.contracts import ApplyOutcome
from edge_agent.remote.history import config_hash

log = logging.getLogger(__name__)

LocalApply = Callable[[str, str], Awaitable[ApplyOutcome]]
"""``async (text, source) -> outcome``: typically ``RemoteService.apply_local``."""


#: Longest wait between tries of a local edit that could not be checked (its validation process failed), s.
MAX_RETRY_DELAY_S = 60.0


class ConfigFileWatch:
    """Watches one config file; run :meth:`run` as a task, cancel it to stop."""

    def __init__(self, path: Path | str, current_text: Callable[[], str], apply: LocalApply, *,
                 interval_s: float = 2.0, max_bytes: int = 1_000_000) -> None:
        if interval_s <= 0:
            raise ValueError(f"{interval_s=} must be > 0 seconds")
        self.path = Path(path)
        self.interval_s = interval_s
        self.max_bytes = max_bytes
        self._current_text = current_text
        self._apply = apply
        self._reload = asyncio.Event()
        self._last_stat: tuple[int, int] | None = None
        self._refused_hash: str | None = None
        # after a check that could not run: no new try before this (monotonic s), waits doubling to a minute
        self._retry_at = 0.0
        self._retry_delay_s = 0.0
        self.last_outcome: ApplyOutcome | None = None

    def request_reload(self) -> None:
        """Check the file at once and apply it even if the same text was refused before (SIGHUP)."""
        self._reload.set()

    async def run(self) -> None:
        """Poll forever (until cancelled); a failing check is logged and retried next interval."""
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel that races
            # with the event being set, and this loop would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._reload.wait()
            force = self._reload.is_set()
            self._reload.clear()
            try:
                await self.check_now(force=force)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("config file watch: checking %s failed", self.path)

    async def check_now(self, *, force: bool = False) -> ApplyOutcome | None:
        """Apply the file if it changed (or ``force``) and differs from the running config; else None."""
        stat = self._stat()
        if stat is None:
            if force:
                log.warning("reload requested but %s does not exist; the running config stays", self.path)
            return None
        if stat == self._last_stat and not force:
            return None
        if time.monotonic() < self._retry_at and not force:
            return None
        self._last_stat = stat
        try:
            raw = await asyncio.to_thread(self.read)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            log.warning("config file %s unreadable (%s); the running config stays", self.path, exc)
            return None
        text_hash = config_hash(raw)
        if text_hash == config_hash(self._current_text()):
            self._refused_hash = None
            return None
        if text_hash == self._refused_hash and not force:
            return None
        outcome = await self._apply(raw, str(self.path))
        self.last_outcome = outcome
        if outcome.unchecked:  # not a verdict: look at the file again later
            self._last_stat = None
            self._retry_delay_s = min(MAX_RETRY_DELAY_S, max(self.interval_s, 2 * self._retry_delay_s))
            self._retry_at = time.monotonic() + self._retry_delay_s
            log.warning("local edit of %s could not be checked now; trying again in %.0f s: %s",
                        self.path, self._retry_delay_s, "; ".join(outcome.errors))
            return outcome
        self._retry_at, self._retry_delay_s = 0.0, 0.0
        if outcome.result == "rejected":
            self._refused_hash = text_hash
            log.error("local edit of %s refused; the running config stays:\n  %s", self.path,
                      "\n  ".join(outcome.errors))
        else:
            self._refused_hash = None
            log.info("local edit of %s: %s %s", self.path, outcome.result, outcome.message)
        return outcome

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def read(self) -> str:
        """The file's text (UTF-8, a BOM dropped); ValueError when larger than ``max_bytes``."""
        with open(self.path, "rb") as file:
            raw = file.read(self.max_bytes + 1)
        if len(raw) > self.max_bytes:
            raise ValueError(f"larger than {self.max_bytes} bytes")
        return raw.decode("utf-8-sig")
