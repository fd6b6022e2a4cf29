"""Run one agent as a process: signals, an optional bounded duration, a clean exit code."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from edge_agent.agent import Agent
from edge_agent.config import AgentConfig

log = logging.getLogger(__name__)


async def run_agent(cfg: AgentConfig, config_path: Path | None, duration_s: float | None = None) -> int:
    """Run the agent until SIGINT/SIGTERM (or ``duration_s`` seconds); return the process exit code."""
    text = await asyncio.to_thread(config_path.read_text, encoding="utf-8") if config_path is not None else ""
    agent = Agent(cfg, text)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if duration_s is not None:
        loop.call_later(duration_s, stop.set)
    try:
        await agent.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
