"""``edge-agent demo``: the whole product on one machine, with nothing installed beyond the package.

It starts an embedded MQTT broker (amqtt) and the simulated PLC on free loopback ports, runs the agent
with the demo config pointed at them, and shows what reaches the broker in a live terminal view.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from edge_agent.agent import Agent
from edge_agent.config import load_config_data, parse_config_text
from edge_agent.demo_broker import EmbeddedBroker
from edge_agent.errors import ConfigError
from edge_agent.live_view import LiveView
from edge_agent.simulate import start_simulator

log = logging.getLogger(__name__)

SIM_DEFAULT_PORT = 5020


def demo_config_text() -> str:
    """The packaged demo config (the same file as ``config/demo.yaml``)."""
    return resources.files("edge_agent").joinpath("resources/demo.yaml").read_text(encoding="utf-8")


def point_config_at(data: dict[str, Any], broker_url: str, sim_port: int,
                    summary_interval_s: float | None, data_dir: str | None) -> dict[str, Any]:
    """Rewrite a config (as plain data) to use the demo's broker and simulator ports."""
    data["mqtt"]["url"] = broker_url
    for device in data.get("devices", []):
        if device.get("protocol", "").startswith("modbus") and device.get("host") in ("127.0.0.1", "localhost"):
            device["port"] = sim_port
    if summary_interval_s is not None:
        data.setdefault("summaries", {})["interval"] = summary_interval_s
    if data_dir is not None:
        data["agent"]["data_dir"] = data_dir
    return data


def _log_to_file(path: Path) -> None:
    """The screen belongs to the live view: send warnings to a file instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.handlers.clear()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)


async def run_demo(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or ``args.duration`` seconds; return the exit code."""
    if args.config:
        source = args.config
        text = await asyncio.to_thread(Path(args.config).read_text, encoding="utf-8")
    else:
        source, text = "demo.yaml", demo_config_text()
    try:
        data = parse_config_text(text, source)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    if not args.plain:
        _log_to_file(Path("var/demo.log"))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.duration is not None:
        loop.call_later(args.duration, stop.set)

    async with EmbeddedBroker() as broker:
        sim = await start_simulator("127.0.0.1", 0, None, args.scenario, seed=1)
        try:
            data = point_config_at(data, broker.url, sim.modbus.port, args.summary_interval, None)
            try:
                cfg = load_config_data(data, source)
            except ConfigError as exc:
                for line in exc.errors:
                    print(line, file=sys.stderr)
                return 2
            print(f"demo: broker {broker.url}, simulated PLC modbus://127.0.0.1:{sim.modbus.port} "
                  f"(scenario {args.scenario}), "
                  f"agent {cfg.agent.id} publishing under {cfg.topic_prefix}/", flush=True)
            agent = Agent(cfg, text)
            view = LiveView(broker.host, broker.port, cfg.topic_prefix, plain=args.plain)
            view.start()
            await agent.start()
            try:
                while not stop.is_set():
                    view.draw()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
            finally:
                await agent.stop()
                view.draw()
                view.stop()
        finally:
            await sim.stop()
    print("demo stopped", flush=True)
    return 0
