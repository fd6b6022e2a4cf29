"""Capped exponential backoff with jitter, for reconnect attempts.

Attempt ``n`` (from 0) waits ``base = min(max_s, min_s * 2**n)`` scaled by a random factor in
[0.5, 1.0) ("equal jitter"), so that many gateways restarting together do not hammer a device or a
serial gateway in lock-step, while the wait still grows predictably.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays (seconds) between reconnect attempts: doubling from ``min_s`` up to ``max_s``, jittered."""

    def __init__(self, min_s: float = 0.5, max_s: float = 30.0, rng: random.Random | None = None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"backoff needs 0 < {min_s=} <= {max_s=} (seconds)")
        self.min_s = min_s
        self.max_s = max_s
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt; each call counts one more failed attempt."""
        base = min(self.max_s, self.min_s * 2.0 ** min(self.attempts, 62))
        self.attempts += 1
        return base * (0.5 + 0.5 * self._rng.random())

    def reset(self) -> None:
        """Start again from ``min_s`` (after a successful connection)."""
        self.attempts = 0
