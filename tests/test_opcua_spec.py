"""OPC UA specs validate themselves with errors naming the point; the node-map doc matches the server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from drivers.opcua.spec import OpcUaDeviceSpec, OpcUaPointSpec, node_id_error, parse_browse_path
from drivers.sim.node_map import NODE_MAP, node_def, plant_keys, render_node_map
from drivers.sim.plant import PLANT_VALUES

DOC = Path(__file__).resolve().parent.parent / "docs" / "node-map.md"


def test_node_map_doc_is_generated_from_the_table() -> None:
    assert DOC.read_text() == render_node_map(), "run: python -m drivers.sim.node_map > docs/node-map.md"


def test_node_map_serves_only_values_the_plant_has() -> None:
    assert set(plant_keys()) <= set(PLANT_VALUES)
    assert len({d.path for d in NODE_MAP}) == len(NODE_MAP)
    assert node_def("Motor.Speed").node_id == "ns=2;s=Motor.Speed"
    assert node_def("Motor.Speed").browse_path == "Objects/2:Motor/2:Speed"
    with pytest.raises(KeyError, match=re.escape("no simulator node 'Motor.Nope'; known: Motor.Running")):
        node_def("Motor.Nope")


def test_browse_path_parsing() -> None:
    assert parse_browse_path("/Objects/2:Motor/2:Speed") == [(0, "Objects"), (2, "Motor"), (2, "Speed")]
    with pytest.raises(ValueError, match="element 'x:Motor' is not <ns>:<name>"):
        parse_browse_path("Objects/x:Motor")
    with pytest.raises(ValueError, match="is empty"):
        parse_browse_path("/")


def test_node_id_errors_name_the_point_and_the_fix() -> None:
    assert node_id_error("ns=2;s=Motor.Speed") is None
    assert node_id_error("i=2258") is None
    why = node_id_error("ns=two;s=Motor")
    assert why is not None and "does not parse" in why and "ns=<index>;s=<name>" in why
    spec = OpcUaDeviceSpec(name="plc", endpoint="opc.tcp://127.0.0.1:4840",
                           points=(OpcUaPointSpec(name="speed", node="garbage"),
                                   OpcUaPointSpec(name="ok", node="ns=2;s=A")))
    errors = spec.node_id_errors()
    assert len(errors) == 1 and errors[0].startswith("device 'plc' point 'speed': NodeId 'garbage'")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "set exactly one of node"),
        ({"node": "ns=2;s=A", "browse_path": "Objects/2:A"}, "set exactly one of node"),
        ({"node": "ns=2;s=A", "mode": "push"}, "mode 'push' is not poll or subscribe"),
        ({"node": "ns=2;s=A", "sampling_interval_s": -1}, "sampling_interval_s=-1 must not be negative"),
        ({"node": "ns=2;s=A", "queue_size": 0}, "queue_size=0 must be at least 1"),
        ({"node": "ns=2;s=A", "deadband_type": "relative"}, "deadband_type 'relative'"),
        ({"node": "ns=2;s=A", "deadband_type": "percent", "deadband_value": 150}, "0…100"),
        ({"node": "ns=2;s=A", "kind": "waveform"}, "needs sample_rate_hz"),
        ({"node": "ns=2;s=A", "kind": "waveform", "sample_rate_hz": 1000, "mode": "subscribe"}, "mode: poll"),
        ({"node": "ns=2;s=A", "sample_rate_hz": 1000}, "only apply to kind: waveform"),
        ({"browse_path": "Objects/2:A:B"}, "element '2:A:B'"),
    ],
)
def test_point_spec_errors_name_the_point(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        OpcUaPointSpec(name="vib", **kwargs)  # type: ignore[arg-type]
    assert "vib" in str(info.value) or "exactly one" not in message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": "http://x"}, "must look like opc.tcp://"),
        ({"security_policy": "Basic128Rsa15"}, "is not None or Basic256Sha256"),
        ({"security_policy": "Basic256Sha256"}, "needs security_mode Sign or SignAndEncrypt"),
        ({"security_policy": "Basic256Sha256", "security_mode": "Sign"}, "opcua-cert"),
        ({"password": "p"}, "a password needs a username"),
        ({"points": (OpcUaPointSpec(name="a", node="i=1"), OpcUaPointSpec(name="a", node="i=2"))},
         "used twice"),
        ({"reconnect_min_s": 5.0, "reconnect_max_s": 1.0}, "reconnect_min_s"),
    ],
)
def test_device_spec_errors_name_the_device(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"name": "plc", "endpoint": "opc.tcp://127.0.0.1:4840"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message) as info:
        OpcUaDeviceSpec(**args)  # type: ignore[arg-type]
    assert "device 'plc'" in str(info.value)


def test_password_is_not_in_repr() -> None:
    spec = OpcUaDeviceSpec(name="plc", endpoint="opc.tcp://h:1", username="u", password="hunter2")
    assert "hunter2" not in repr(spec)
