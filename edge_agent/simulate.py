"""``edge-agent simulate``: the simulated plant served over Modbus TCP and, optionally, OPC UA.

One plant model and one vibrating machine feed both servers, sharing one clock, so both protocols show
the same values. ``--scenario`` picks a healthy plant or a fault that grows over minutes: a bearing that
overheats (process values) or a vibration fault (unbalance, misalignment, looseness, outer_race,
inner_race, ball); ``--seed`` makes a run reproducible.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from drivers.sim.plant import Plant
from drivers.sim.plant import Scenario as PlantScenario
from drivers.sim.vibration import MachineVibration
from drivers.sim.vibration import Scenario as VibrationScenario

VIBRATION_SCENARIOS = {s.value for s in VibrationScenario} - {"healthy"}
PLANT_SCENARIOS = {s.value for s in PlantScenario} - {"healthy"}
SCENARIOS = sorted({"healthy"} | VIBRATION_SCENARIOS | PLANT_SCENARIOS)
#: Shaft speed of the simulated motor's vibration (Hz): about 1480 rpm, a 4-pole motor on 50 Hz.
SHAFT_HZ = 24.7


@dataclass(slots=True)
class SimulatedPlant:
    """The running simulator: its plant, its machine and the servers that expose them."""

    plant: Plant
    vibration: MachineVibration
    modbus: Any = None
    opcua: Any = None

    async def stop(self) -> None:
        """Stop every server."""
        for server in (self.modbus, self.opcua):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.stop()


def check_scenario(name: str) -> str:
    """Return ``name`` if it is a known scenario; otherwise raise ValueError listing them."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}")
    return name


async def start_simulator(host: str, modbus_port: int | None, opcua_port: int | None, scenario: str = "healthy",
                          seed: int = 1, waveform_sample_rate_hz: float = 5120.0) -> SimulatedPlant:
    """Start the plant's servers (a port of 0 picks a free one; None skips that protocol)."""
    check_scenario(scenario)
    from drivers.sim.modbus_server import ModbusSimServer

    plant = Plant(seed=seed, scenario=scenario if scenario in PLANT_SCENARIOS else "healthy")
    vibration = MachineVibration(waveform_sample_rate_hz, SHAFT_HZ,
                                 scenario=scenario if scenario in VIBRATION_SCENARIOS else "healthy", seed=seed)
    started = time.monotonic()

    def clock() -> float:
        return time.monotonic() - started

    sim = SimulatedPlant(plant, vibration)
    try:
        if modbus_port is not None:
            sim.modbus = ModbusSimServer(plant, host=host, port=modbus_port, clock=clock, vibration=vibration)
            await sim.modbus.start()
        if opcua_port is not None:
            from drivers.sim.opcua_server import OpcUaSimServer

            sim.opcua = OpcUaSimServer(plant, host=host, port=opcua_port, vibration=vibration,
                                       scenario=scenario, seed=seed, clock=clock)
            await sim.opcua.start()
    except BaseException:
        await sim.stop()
        raise
    return sim


async def run_simulator(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM or ``args.duration`` seconds."""
    try:
        sim = await start_simulator(args.host, args.modbus_port, args.opcua_port, args.scenario, args.seed)
    except ValueError as exc:
        print(f"edge-agent simulate: {exc}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:  # pymodbus says RuntimeError("Could not start listen...")
        ports = f"--modbus-port {args.modbus_port}" + (f" / --opcua-port {args.opcua_port}" if args.opcua_port else "")
        print(f"edge-agent simulate: cannot listen on {args.host} ({ports}): {exc}; is another simulator "
              "running there? pick other ports", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if args.duration is not None:
        loop.call_later(args.duration, stop.set)
    if sim.modbus is not None:
        print(f"Modbus TCP on {args.host}:{sim.modbus.port} (unit 1); register map: docs/register-map.md",
              flush=True)
    if sim.opcua is not None:
        print(f"OPC UA on {sim.opcua.endpoint}; node map: docs/node-map.md", flush=True)
    print(f"scenario {args.scenario}, seed {args.seed}; Ctrl-C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        await sim.stop()
    return 0
