"""The OPC UA simulator's address space as one table, and the Markdown page generated from it.

The server (:mod:`drivers.sim.opcua_server`) builds its nodes from :data:`NODE_MAP` and
``docs/node-map.md`` is rendered from the same table by :func:`render_node_map`, so the documentation
and the server cannot disagree (a test compares them). Regenerate the page with
``python -m drivers.sim.node_map > docs/node-map.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Namespace URI of the simulator's nodes; the server registers it first, so its index is 2.
NAMESPACE_URI = "urn:edge-agent:sim"
NAMESPACE_INDEX = 2
ENDPOINT_PATH = "/edge-agent/sim"

VariantName = Literal["Double", "Float", "Int32", "UInt32", "Boolean", "String"]

#: Where a node's value comes from: ``plant:<key>`` is ``plant.values()[key]``; ``sim:<name>`` is
#: computed by the server itself (see :mod:`drivers.sim.opcua_server`).
Source = str


@dataclass(frozen=True, slots=True)
class NodeDef:
    """One simulator variable.

    ``path`` is both the string NodeId (``ns=2;s=<path>``) and, split at dots, the browse path under
    Objects (``Objects/2:Motor/2:Speed``). ``variant`` its OPC UA built-in type; ``array`` True for a
    one-dimensional array; ``unit``; ``eu_range`` (low, high) published as the EURange property, which
    percent deadbands need; ``source`` where the value comes from.
    """

    path: str
    variant: VariantName
    unit: str
    description: str
    source: Source
    array: bool = False
    eu_range: tuple[float, float] | None = None

    @property
    def node_id(self) -> str:
        """The NodeId string, e.g. ``ns=2;s=Motor.Speed``."""
        return f"ns={NAMESPACE_INDEX};s={self.path}"

    @property
    def browse_path(self) -> str:
        """The browse path from the Root folder, e.g. ``Objects/2:Motor/2:Speed``."""
        return "/".join(["Objects", *(f"{NAMESPACE_INDEX}:{part}" for part in self.path.split("."))])


NODE_MAP: tuple[NodeDef, ...] = (
    NodeDef("Motor.Running", "Boolean", "", "Motor running", "plant:motor.running"),
    NodeDef("Motor.Load", "Double", "%", "Motor load (% of rated)", "plant:motor.load_pct",
            eu_range=(0.0, 120.0)),
    NodeDef("Motor.Speed", "Double", "rpm", "Motor shaft speed", "plant:motor.speed_rpm",
            eu_range=(0.0, 1800.0)),
    NodeDef("Motor.Current", "Double", "A", "Motor phase current", "plant:motor.current_a",
            eu_range=(0.0, 40.0)),
    NodeDef("Motor.Power", "Double", "kW", "Motor shaft power", "plant:motor.power_kw", eu_range=(0.0, 20.0)),
    NodeDef("Motor.BearingTemperature", "Double", "degC", "Drive-end bearing temperature",
            "plant:motor.bearing_temp_c", eu_range=(-20.0, 150.0)),
    NodeDef("Motor.RunHours", "Double", "h", "Motor running hours", "plant:motor.run_hours"),
    NodeDef("Motor.Energy", "Double", "kWh", "Energy delivered", "plant:motor.energy_kwh"),
    NodeDef("Motor.Starts", "UInt32", "", "Motor starts since commissioning", "plant:motor.starts"),
    NodeDef("Motor.StatusWord", "UInt32", "", "Status bits: 1 running, 2 overheat, 4 stopped",
            "plant:motor.status_word"),
    NodeDef("Motor.State", "String", "", "stopped, running or overheat", "plant:motor.state"),
    NodeDef("Motor.Serial", "String", "", "Motor serial number", "plant:motor.serial"),
    NodeDef("Tank.Level", "Double", "%", "Tank level", "plant:tank.level_pct", eu_range=(0.0, 100.0)),
    NodeDef("Tank.Volume", "Double", "L", "Tank contents", "plant:tank.volume_l", eu_range=(0.0, 5000.0)),
    NodeDef("Tank.Pressure", "Double", "bar", "Tank bottom pressure", "plant:tank.pressure_bar",
            eu_range=(0.0, 1.0)),
    NodeDef("Tank.Filling", "Boolean", "", "Inlet valve open", "plant:tank.filling"),
    NodeDef("Tank.HighLevel", "Boolean", "", "Level at or above 75 %", "plant:tank.high_level"),
    NodeDef("Tank.LowLevel", "Boolean", "", "Level at or below 25 %", "plant:tank.low_level"),
    NodeDef("Tank.InflowTotal", "Double", "L", "Total inflow since start", "plant:tank.inflow_total_l"),
    NodeDef("Ambient.Temperature", "Double", "degC", "Ambient temperature", "plant:ambient.temp_c",
            eu_range=(-40.0, 60.0)),
    NodeDef("Pump.VibrationDE", "Double", "g", "Drive-end accelerometer capture",
            "sim:vibration_samples", array=True),
    NodeDef("Pump.VibrationDE.SampleRate", "Double", "Hz", "Sample rate of Pump.VibrationDE",
            "sim:vibration_sample_rate_hz"),
    NodeDef("Pump.VibrationDE.ShaftSpeed", "Double", "Hz", "Shaft speed the capture was generated at",
            "sim:vibration_shaft_hz"),
    NodeDef("Simulator.Scenario", "String", "", "Vibration fault scenario (healthy, unbalance, …)",
            "sim:scenario"),
    NodeDef("Simulator.Seed", "Int32", "", "Random seed of the simulation", "sim:seed"),
    NodeDef("Simulator.UptimeSeconds", "Double", "s", "Seconds since the simulator started", "sim:uptime_s"),
    NodeDef("Simulator.UpdateCount", "UInt32", "", "Value updates since start (changes every update)",
            "sim:update_count"),
    NodeDef("Simulator.Staircase", "UInt32", "",
            "UpdateCount + 10 × (UpdateCount // 5): steps of 1, and of 11 every 5th update (deadband tests)",
            "sim:staircase"),
    NodeDef("Simulator.Ratio", "Float", "", "Sine of uptime with a 60 s period (a Float node)",
            "sim:ratio", eu_range=(-1.0, 1.0)),
)


def node_def(path: str) -> NodeDef:
    """The :class:`NodeDef` at ``path`` (e.g. ``Motor.Speed``); KeyError naming the known paths."""
    for d in NODE_MAP:
        if d.path == path:
            return d
    raise KeyError(f"no simulator node {path!r}; known: {', '.join(d.path for d in NODE_MAP)}")


def plant_keys() -> list[str]:
    """The plant-model value names the simulator serves (``plant:<key>`` sources)."""
    return [d.source.removeprefix("plant:") for d in NODE_MAP if d.source.startswith("plant:")]


def render_node_map() -> str:
    """The Markdown page ``docs/node-map.md``."""
    lines = [
        "# OPC UA simulator node map",
        "",
        "Generated from `drivers/sim/node_map.py` by `python -m drivers.sim.node_map > docs/node-map.md`;",
        "do not edit by hand (a test checks that this page matches the server).",
        "",
        f"Endpoint: `opc.tcp://127.0.0.1:<port>{ENDPOINT_PATH}`, namespace `{NAMESPACE_URI}` "
        f"(index {NAMESPACE_INDEX}). Every variable is also reachable by browse path from the Root folder.",
        "Values carry the simulator's source timestamp and status Good.",
        "",
        "| NodeId | browse path | type | unit | EURange | description | source |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in NODE_MAP:
        vtype = f"{d.variant}[]" if d.array else d.variant
        eu = f"{d.eu_range[0]:g} … {d.eu_range[1]:g}" if d.eu_range else ""
        lines.append(f"| `{d.node_id}` | `{d.browse_path}` | {vtype} | {d.unit} | {eu} | {d.description} "
                     f"| `{d.source}` |")
    lines += [
        "",
        "Sources: `plant:<key>` is the plant model's value `<key>` (`drivers/sim/plant.py`); `sim:<name>` is",
        "computed by the OPC UA simulator (`vibration_*` from `drivers/sim/vibration.py` at the motor's",
        "current speed).",
        "",
        "Started with `load_nodes=N`, the simulator also serves `ns=2;s=Load.00000` … `Load.<N-1>` (Double,",
        "browse path `Objects/2:Load/2:00000` …), rewritten on every update (subscription load tests).",
        "With a `SimServerSecurity` it offers only the Basic256Sha256 policies it is given and, when a",
        "username is set, refuses anonymous sessions.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_node_map(), end="")
