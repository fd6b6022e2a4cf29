"""Commit-confirm: a new config must prove itself healthy within a window, or it is rolled back."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from edge_agent.remote.contracts import HealthCheck

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConfirmOutcome:
    """``confirmed`` true when health passed; otherwise ``reason`` says why it was rolled back."""

    confirmed: bool
    reason: str
    checks: int
    elapsed_s: float


class CommitConfirm:
    """Poll ``health`` every ``interval_s`` for up to ``window_s`` seconds after a config change.

    The change is confirmed once ``health`` passes ``required_passes`` times in a row (so a broker
    reconnect right after the apply gets time to finish). When the window ends without that, or
    ``health`` raises, ``rollback(reason)`` is awaited once and the outcome says why.
    """

    def __init__(self, health: HealthCheck, rollback: Callable[[str], Awaitable[object]], *,
                 window_s: float, interval_s: float = 1.0, required_passes: int = 2) -> None:
        if window_s <= 0 or interval_s <= 0:
            raise ValueError(f"{window_s=} and {interval_s=} must be > 0 seconds")
        if required_passes < 1:
            raise ValueError(f"{required_passes=} must be at least 1")
        self._health = health
        self._rollback = rollback
        self.window_s = window_s
        self.interval_s = interval_s
        self.required_passes = required_passes

    async def run(self) -> ConfirmOutcome:
        """Watch health for the window; confirm, or roll back and report the last failure reason."""
        started = time.monotonic()
        deadline = started + self.window_s
        passes = checks = 0
        reason = "no health check completed within the window"
        while True:
            checks += 1
            try:
                async with asyncio.timeout(max(self.interval_s, 1.0)):
                    verdict = await self._health()
            except TimeoutError:
                verdict = "health check timed out"
            except Exception as exc:  # a failing probe is a failing config, never a crash of the agent
                verdict = f"health check raised {type(exc).__name__}: {exc}"
            if verdict is True:
                passes += 1
                if passes >= self.required_passes:
                    return ConfirmOutcome(True, "healthy", checks, time.monotonic() - started)
            else:
                passes = 0
                reason = verdict if isinstance(verdict, str) and verdict else "health check failed"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(self.interval_s, remaining))
        log.warning("config not confirmed within %.1f s (%s): rolling back", self.window_s, reason)
        message = f"not healthy within the {self.window_s:g} s confirm window: {reason}"
        await self._rollback(message)
        return ConfirmOutcome(False, message, checks, time.monotonic() - started)
