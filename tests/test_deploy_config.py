"""The config install.sh ships is a valid config, fits the unit's directories, and so does its RTU example."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import load_config

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "deploy" / "config.example.yaml"


def test_shipped_example_loads_and_uses_the_state_directory() -> None:
    cfg = load_config(EXAMPLE)
    assert Path(cfg.agent.data_dir) == Path("/var/lib/edge-agent")  # the unit's StateDirectory=edge-agent
    assert cfg.mqtt.password_file == Path("/etc/edge-agent/mqtt.password")  # inside ConfigurationDirectory=


def test_commented_serial_device_example_is_valid(tmp_path: Path) -> None:
    lines, inside = [], False
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("# A Modbus RTU device"):
            inside = True
            continue
        if inside and line.lstrip().startswith("#"):
            lines.append(line.replace("# ", "", 1))
            continue
        inside = False
        lines.append(line)
    variant = tmp_path / "rtu.yaml"
    variant.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = load_config(variant)
    (rtu,) = [d for d in cfg.devices if d.name == "flowmeter"]
    assert rtu.protocol == "modbus_rtu"
    assert getattr(rtu, "serial_port", None) == "/dev/ttyUSB0"
