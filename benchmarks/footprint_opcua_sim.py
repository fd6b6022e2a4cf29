"""The OPC UA side of the footprint benchmark's reference load, as a process of its own.

:class:`drivers.sim.opcua_server.OpcUaSimServer` with ``--items`` changing ``ns=2;s=Load.NNNNN`` nodes
(rewritten every ``--update`` seconds, for the agent's subscriptions) and the vibration capture
``ns=2;s=Pump.VibrationDE`` of ``--waveform-samples`` samples at ``--sample-rate`` Hz, renewed every
``--waveform-interval`` seconds. Prints ``READY opc.tcp://...`` on stdout once it listens, then serves
until SIGTERM/SIGINT.

Run: ``.venv/bin/python benchmarks/footprint_opcua_sim.py --port 4840 --items 500``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence

from drivers.sim.opcua_server import OpcUaSimServer
from drivers.sim.plant import Plant
from drivers.sim.vibration import MachineVibration

#: Nominal shaft speed of the simulated machine (Hz): about 1480 rpm, a 4-pole motor on 50 Hz.
SHAFT_HZ = 24.7


async def serve(port: int, items: int, update_s: float, samples: int, rate_hz: float,
                waveform_interval_s: float) -> None:
    """Serve until SIGTERM/SIGINT; print ``READY <endpoint>`` once listening."""
    vibration = MachineVibration(rate_hz, SHAFT_HZ, seed=1)
    server = OpcUaSimServer(Plant(seed=1), port=port, vibration=vibration, update_interval_s=update_s,
                            waveform_samples=samples, waveform_interval_s=waveform_interval_s,
                            load_nodes=items)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    try:
        print(f"READY {server.endpoint}", flush=True)
        await stop.wait()
    finally:
        await server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--items", type=int, default=500, help="changing Load.NNNNN nodes (default 500)")
    parser.add_argument("--update", type=float, default=1.0, help="seconds between value updates (default 1)")
    parser.add_argument("--waveform-samples", type=int, default=16384, help="samples per capture")
    parser.add_argument("--sample-rate", type=float, default=12800.0, help="capture sample rate, Hz")
    parser.add_argument("--waveform-interval", type=float, default=10.0, help="seconds between captures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.port, args.items, args.update, args.waveform_samples, args.sample_rate,
                      args.waveform_interval))


if __name__ == "__main__":
    main()
