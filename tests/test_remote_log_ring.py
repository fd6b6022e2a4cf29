"""The ``logs`` command's ring buffer: bounded, filtered, and secrets never stored."""

from __future__ import annotations

import logging

import pytest

from edge_agent.remote.errors import CommandError
from edge_agent.remote.log_ring import RecentLogs, redact_line


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("connecting with password=hunter2 to broker", "hunter2"),
        ('{"token": "abc.def.ghi", "x": 1}', "abc.def.ghi"),
        ("url mqtts://gw:s3cr3t@broker.example:8883 refused", "s3cr3t"),
        ("Authorization: Bearer-xyz", "Bearer-xyz"),
        ("key -----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY----- done", "MC4CAQAw"),
    ],
)
def test_secrets_are_redacted(line: str, secret: str) -> None:
    cleaned = redact_line(line)
    assert secret not in cleaned
    assert "***" in cleaned or "redacted" in cleaned


def test_plain_lines_are_kept() -> None:
    assert redact_line("device plc reconnected after 3 attempts") == "device plc reconnected after 3 attempts"


async def test_ring_is_bounded_filtered_and_served_as_a_command() -> None:
    ring = RecentLogs(capacity=5, level=logging.DEBUG)
    logger = logging.getLogger("test.remote.ring")
    logger.addHandler(ring)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        for i in range(8):
            logger.info("line %d password=pw%d", i, i)
        logger.warning("device plc down")
    finally:
        logger.removeHandler(ring)
    result = await ring.command({"count": 10})
    assert len(result["lines"]) == 5 and result["dropped_older"] == 4
    assert all("pw" not in line for line in result["lines"])
    assert (await ring.command({"level": "warning"}))["lines"][0].endswith("WARNING test.remote.ring: device plc down")
    assert len((await ring.command({"contains": "line 7"}))["lines"]) == 1
    with pytest.raises(CommandError, match="count must be"):
        await ring.command({"count": 0})
    with pytest.raises(CommandError, match="level 'loud'"):
        await ring.command({"level": "loud"})
