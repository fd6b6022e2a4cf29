"""Live reconfiguration: only what changed restarts; buffered records and alarm state are kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.sim.modbus_server import ModbusSimServer
from edge_agent.agent import Agent
from edge_agent.config import AgentConfig, load_config_data
from edge_agent.errors import ConfigChangeRefused

try:
    from tests.mqtt_support import Mosquitto, poll_until
    from tests.test_e2e_agent import agent_config, frozen_plc
except ImportError:
    from mqtt_support import Mosquitto, poll_until  # type: ignore[no-redef]
    from test_e2e_agent import agent_config, frozen_plc  # type: ignore[no-redef]

__all__ = ["frozen_plc"]


def two_device_config(base: AgentConfig, **changes: object) -> AgentConfig:
    data = base.model_dump(mode="json", exclude_none=True)
    second = dict(data["devices"][0])
    second["name"] = "plc2"
    data["devices"].append(second)
    data["rules"] = [{"point": "plc/bearing_temp", "high": 1000.0}]
    for path, value in changes.items():
        target = data
        *parents, leaf = path.split(".")
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        target[int(leaf) if isinstance(target, list) else leaf] = value
    return load_config_data(data, "reconfigure-test")


async def test_threshold_change_restarts_no_device_and_device_change_restarts_one(
        mosquitto: Mosquitto, frozen_plc: ModbusSimServer, tmp_path: Path) -> None:
    base = agent_config(tmp_path / "data", mosquitto.url, frozen_plc.port, summary_s=5.0)
    cfg = two_device_config(base)
    agent = Agent(cfg)
    await agent.start()
    try:
        await poll_until(lambda: all(r.driver.comms.state.value == "ok" for r in agent.devices.values()), 30,
                         "both devices up")
        drivers = {n: r.driver for n, r in agent.devices.items()}
        tasks = {n: r.task for n, r in agent.devices.items()}
        publisher = agent.publisher

        new_threshold = two_device_config(base, **{"rules.0.high": 900.0})
        restarted = await agent.reconfigure(cfg, new_threshold)
        assert restarted == ["rules"]
        assert {n: r.driver for n, r in agent.devices.items()} == drivers
        assert {n: r.task for n, r in agent.devices.items()} == tasks
        assert agent.publisher is publisher
        assert agent.alarms.limit_alarms["plc/bearing_temp"][0].rule.high == 900.0

        slower = two_device_config(base, **{"rules.0.high": 900.0, "devices.1.poll_interval": 0.5})
        restarted = await agent.reconfigure(new_threshold, slower)
        assert "device plc2" in restarted and "device plc" not in restarted
        assert agent.devices["plc"].driver is drivers["plc"] and agent.devices["plc"].task is tasks["plc"]
        assert agent.devices["plc"].driver.comms.reconnects == drivers["plc"].comms.reconnects
        assert agent.devices["plc2"].driver is not drivers["plc2"]
        assert agent.devices["plc2"].poll_interval_s == 0.5
        assert agent.publisher is publisher
        plc2 = agent.devices["plc2"]
        await poll_until(lambda: plc2.driver.comms.state.value == "ok", 30, "plc2 reconnected")
    finally:
        await agent.stop()


async def test_identity_change_is_refused(mosquitto: Mosquitto, frozen_plc: ModbusSimServer,
                                          tmp_path: Path) -> None:
    cfg = agent_config(tmp_path / "data", mosquitto.url, frozen_plc.port, summary_s=5.0)
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["agent"]["id"] = "someone-else"
    other = load_config_data(data, "x")
    agent = Agent(cfg)
    await agent.start()
    try:
        with pytest.raises(ConfigChangeRefused, match="cannot change while the agent runs"):
            await agent.reconfigure(cfg, other)
        assert agent.cfg is cfg
    finally:
        await agent.stop()
