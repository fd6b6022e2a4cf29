"""The config models, units, loader, summary and schema against known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_agent.config import (
    AgentConfig,
    ModbusPoint,
    ModbusTcpDevice,
    OpcuaDevice,
    OpcuaPoint,
    config_summary,
    format_duration,
    format_size,
    json_schema,
    load_config,
    load_config_data,
    load_config_text,
    parse_byte_size,
    parse_classic_address,
    parse_duration,
    parse_frequency,
)
from edge_agent.config.schema import SCHEMA_PATH, schema_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example.yaml"

MINIMAL = """\
agent: {id: gw-1, site: plant}
mqtt: {url: "mqtt://127.0.0.1:1883"}
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    points:
{points}
"""


def _points(*lines: str) -> str:
    return MINIMAL.replace("{points}", "\n".join(f"      - {line}" for line in lines))


# ------------------------------------------------------------------------------------------ example file
def test_example_config_loads_with_the_documented_values() -> None:
    cfg = load_config(EXAMPLE)
    assert (cfg.agent.id, cfg.agent.site, cfg.agent.data_dir) == (
        "gw-demo",
        "demo-plant",
        Path("var/edge-agent"),
    )
    assert cfg.mqtt.url == "mqtt://127.0.0.1:1883"
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.uses_tls) == ("127.0.0.1", 1883, False)
    assert cfg.topic_prefix == "edge/demo-plant/gw-demo"
    assert cfg.mqtt_client_id == "gw-demo"
    assert cfg.mqtt.keepalive == 30.0 and cfg.mqtt.protocol == "3.1.1"
    assert cfg.buffer.max_size == 256_000_000
    assert cfg.buffer.max_age == 30 * 86400

    plc, opc = cfg.devices
    assert isinstance(plc, ModbusTcpDevice) and isinstance(opc, OpcuaDevice)
    assert (plc.name, plc.host, plc.port, plc.unit_id, plc.poll_interval) == (
        "motor-plc",
        "127.0.0.1",
        5020,
        1,
        1.0,
    )
    speed, temp = plc.points
    assert (speed.table, speed.address, speed.type, speed.unit) == ("holding", 0, "uint16", "rpm")
    assert (temp.table, temp.address, temp.type, temp.byte_order, temp.unit) == (
        "input",
        10,
        "float32",
        "ABCD",
        "degC",
    )
    assert plc.byte_order_of(speed) == "ABCD"

    assert opc.endpoint == "opc.tcp://127.0.0.1:4840"
    flow, vib = opc.points
    assert (flow.node, flow.mode, flow.sampling_interval) == ("ns=2;s=Pump.Flow", "subscribe", 0.5)
    assert (vib.kind, vib.sample_rate, vib.unit) == ("waveform", 12800.0, "g")

    (asset,) = cfg.assets
    assert asset.points == [
        "motor-plc/speed",
        "motor-plc/bearing_temp",
        "pump-opcua/flow",
        "pump-opcua/vib_de",
    ]
    assert asset.machine is not None
    assert (asset.machine.group, asset.machine.foundation, asset.machine.speed_point) == (
        2,
        "rigid",
        "motor-plc/speed",
    )
    assert [(b.point, b.model) for b in asset.bearings] == [("pump-opcua/vib_de", "SKF-6205")]

    (rule,) = cfg.rules
    assert (rule.point, rule.high, rule.high_high, rule.deadband, rule.on_delay) == (
        "motor-plc/bearing_temp",
        80,
        95,
        2,
        10.0,
    )
    assert rule.low is None and rule.severity.high == "warning" and rule.severity.high_high == "critical"
    assert cfg.summaries.interval == 60.0
    assert cfg.summaries.statistics == ["count", "good", "min", "max", "mean", "last"]


def test_example_matches_the_design_document() -> None:
    design = Path("/work/shared/DESIGN.md")
    if not design.is_file():
        pytest.skip("DESIGN.md is not next to this checkout")
    block = design.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    assert EXAMPLE.read_text() == block


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.devices, f"{path.name} defines no devices"


def test_point_index_maps_device_slash_point() -> None:
    cfg = load_config(EXAMPLE)
    index = cfg.point_index()
    assert list(index) == [
        "motor-plc/speed",
        "motor-plc/bearing_temp",
        "pump-opcua/flow",
        "pump-opcua/vib_de",
    ]
    device, point = index["pump-opcua/vib_de"]
    assert device.name == "pump-opcua" and isinstance(point, OpcuaPoint) and point.kind == "waveform"
    assert cfg.device("motor-plc") is index["motor-plc/speed"][0]
    with pytest.raises(KeyError, match="devices: motor-plc, pump-opcua"):
        cfg.device("boiler")


def test_summary_shows_the_essentials_and_no_secrets(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    pw.write_text("hunter2")
    text = EXAMPLE.read_text().replace(
        "mqtt:\n  url: mqtt://127.0.0.1:1883",
        f"mqtt:\n  url: mqtt://127.0.0.1:1883\n  username: edge\n  password_file: {pw}",
    )
    summary = config_summary(load_config_text(text))
    for expected in (
        "gw-demo",
        "demo-plant",
        "mqtt://127.0.0.1:1883",
        "edge/demo-plant/gw-demo",
        "motor-plc",
        "modbus_tcp",
        "127.0.0.1:5020 unit 1",
        "every 1s",
        "2 point(s)",
        "opc.tcp://127.0.0.1:4840",
        "1 waveform(s)",
        "pump-1",
        "group 2",
        "rigid",
        "rules   1",
        "every 1m",
        "256MB",
        "30d",
    ):
        assert expected in summary, expected
    assert "hunter2" not in summary
    assert len(summary.splitlines()) < 25


def test_dumped_config_reloads_to_the_same_config() -> None:
    cfg = load_config(EXAMPLE)
    dumped = json.loads(cfg.model_dump_json())
    again = load_config_data(dumped, "dump")
    assert again == cfg
    assert again.topic_prefix == cfg.topic_prefix
    assert dumped["mqtt"]["topic_prefix"] == "edge/demo-plant/gw-demo"  # as written in the example
    assert dumped["devices"][0]["points"][0]["byte_order"] is None  # inherited, not frozen in


# ------------------------------------------------------------------------------------------ units
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("10s", 10.0),
        ("5m", 300.0),
        ("2h", 7200.0),
        ("7d", 604800.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("500us", 0.0005),
        ("2min", 120.0),
        ("10 S", 10.0),
        (" 3 ", 3.0),
        (3, 3.0),
        (0.5, 0.5),
        ("0", 0.0),
        ("1d12h", 129600.0),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size_b"),
    [
        ("256MB", 256_000_000),
        ("1GiB", 2**30),
        ("512kB", 512_000),
        ("512KB", 512_000),
        ("1MiB", 1_048_576),
        ("2 GB", 2_000_000_000),
        ("1.5kB", 1500),
        ("100B", 100),
        (4096, 4096),
        ("4096", 4096),
        ("1TiB", 2**40),
    ],
)
def test_byte_sizes(text: object, size_b: int) -> None:
    assert parse_byte_size(text) == size_b


@pytest.mark.parametrize(
    ("text", "hz"),
    [
        ("12800Hz", 12800.0),
        ("12.8kHz", 12800.0),
        ("25.6 khz", 25600.0),
        ("1MHz", 1e6),
        (100, 100.0),
        ("50", 50.0),
    ],
)
def test_frequencies(text: object, hz: float) -> None:
    assert parse_frequency(text) == pytest.approx(hz)


@pytest.mark.parametrize("bad", ["10 sec", "-1s", "s", "1h 30x", "", "nan", "1e400s", True, None, [1], "1 2"])
def test_bad_durations_name_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*: use a number of seconds"):
        parse_duration(bad)


@pytest.mark.parametrize("bad", ["256 MBs", "1.5B", "-1kB", "1e30000", "lots", False, "0.5"])
def test_bad_sizes_name_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"invalid size .*: use a number of bytes"):
        parse_byte_size(bad)


@pytest.mark.parametrize("bad", ["12.8 kiloHz", "-5Hz", "Hz", True])
def test_bad_frequencies_name_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"invalid frequency .*: use a number of Hz"):
        parse_frequency(bad)


def test_unit_fields_in_the_config() -> None:
    text = (
        MINIMAL.replace("{points}", "      - {name: a, address: 0}").replace(
            "host: 127.0.0.1", "host: 127.0.0.1\n    poll_interval: 250ms\n    timeout: 2"
        )
        + "buffer: {max_size: 1GiB, max_age: 12h}\nsummaries: {interval: 5m, statistics: [mean, twa]}\n"
    )
    cfg = load_config_text(text)
    assert (cfg.devices[0].poll_interval, cfg.devices[0].timeout) == (0.25, 2.0)
    assert (cfg.buffer.max_size, cfg.buffer.max_age) == (2**30, 43200.0)
    assert (cfg.summaries.interval, cfg.summaries.statistics) == (300.0, ["mean", "twa"])


# ------------------------------------------------------------------------------------------ modbus points
@pytest.mark.parametrize(
    ("text", "table", "address"),
    [
        ("40001", "holding", 0),
        ("40100", "holding", 99),
        ("30011", "input", 10),
        ("00001", "coil", 0),
        ("10001", "discrete", 0),
        ("49999", "holding", 9998),
        ("400001", "holding", 0),
        ("465536", "holding", 65535),
        ("310001", "input", 10000),
    ],
)
def test_classic_addresses(text: str, table: str, address: int) -> None:
    assert parse_classic_address(text) == (table, address)


@pytest.mark.parametrize("text", ["40000", "50001", "4001", "465537", "4000001", "4x001", "", "20001"])
def test_not_classic_addresses(text: str) -> None:
    assert parse_classic_address(text) is None


def test_classic_notation_in_points_sets_table_and_defaults_bit_tables_to_bool() -> None:
    cfg = load_config_text(
        _points(
            '{name: a, address: "40001", type: int16}',
            '{name: b, address: "30005", table: input, type: float32}',
            '{name: c, address: "00003"}',
            '{name: d, address: "10001"}',
            "{name: e, address: 7}",
        )
    )
    points = cfg.devices[0].points
    assert [(p.table, p.address, p.type) for p in points if isinstance(p, ModbusPoint)] == [
        ("holding", 0, "int16"),
        ("input", 4, "float32"),
        ("coil", 2, "bool"),
        ("discrete", 0, "bool"),
        ("holding", 7, "uint16"),
    ]


def test_register_spans() -> None:
    def span(**fields: object) -> int:
        return ModbusPoint.model_validate({"name": "p", "address": 0, **fields}).register_span()

    assert span(type="uint16") == 1 and span(type="float32") == 2 and span(type="float64") == 4
    assert span(type="string", length=8) == 8
    assert span(type="int16", kind="waveform", count=100, sample_rate=1000) == 100
    assert span(type="float32", kind="waveform", count=100, sample_rate=1000) == 200
    assert span(table="coil") == 1


def test_bits_of_one_register_and_the_whole_register_may_coexist() -> None:
    cfg = load_config_text(
        _points(
            "{name: status, address: 20}",
            "{name: running, address: 20, type: bool, bit: 0}",
            "{name: tripped, address: 20, type: bool, bit: 1}",
            "{name: temp, address: 21, type: float32, byte_order: CDAB}",
            "{name: also_coil_0, table: coil, address: 20}",
        )
    )
    device = cfg.devices[0]
    assert isinstance(device, ModbusTcpDevice)
    assert [device.byte_order_of(p) for p in device.points if isinstance(p, ModbusPoint)][3] == "CDAB"


def test_other_modbus_transports() -> None:
    text = """\
agent: {id: gw-1, site: plant}
mqtt: {url: "mqtts://broker.example:8883", tls: {ca_file: ca.pem, alpn: [mqtt]}, protocol: 5, client_id: c1}
devices:
  - {name: rtu, protocol: modbus_rtu, serial_port: /dev/ttyUSB0, baudrate: 19200, parity: E, unit_id: 17,
     points: [{name: a, address: 0}]}
  - {name: bridge, protocol: modbus_rtu_over_tcp, host: 10.0.0.5, port: 4001, unit_id: 3,
     points: [{name: a, address: 0}]}
"""
    cfg = load_config_text(text)
    rtu, bridge = cfg.devices
    assert rtu.protocol == "modbus_rtu" and (rtu.baudrate, rtu.parity, rtu.stopbits, rtu.bytesize) == (
        19200,
        "E",
        1,
        8,
    )
    assert bridge.protocol == "modbus_rtu_over_tcp" and (bridge.host, bridge.port, bridge.unit_id) == (
        "10.0.0.5",
        4001,
        3,
    )
    assert (cfg.mqtt.uses_tls, cfg.mqtt.port, cfg.mqtt.protocol, cfg.mqtt_client_id) == (
        True,
        8883,
        "5",
        "c1",
    )
    assert cfg.mqtt.tls is not None and cfg.mqtt.tls.verify_hostname and cfg.mqtt.tls.alpn == ["mqtt"]


# ------------------------------------------------------------------------------------------ other sections
def test_topic_prefix_placeholders() -> None:
    base = MINIMAL.replace("{points}", "      - {name: a, address: 0}")
    assert load_config_text(base).topic_prefix == "edge/plant/gw-1"
    custom = base.replace('1883"}', '1883", topic_prefix: "factories/{site}/gateways/{id}"}')
    assert load_config_text(custom).topic_prefix == "factories/plant/gateways/gw-1"


def test_opcua_points_browse_paths_and_security() -> None:
    text = """\
agent: {id: gw-1, site: plant}
mqtt: {url: "mqtt://[::1]:1883"}
devices:
  - name: opc
    protocol: opcua
    endpoint: opc.tcp://plc.local:4840/server
    security_policy: Basic256Sha256
    security_mode: SignAndEncrypt
    certificate: client.der
    private_key: client.pem
    username: op
    password_env: OPC_PW
    points:
      - {name: a, browse_path: "2:Pump/2:Flow", mode: subscribe, deadband: {type: percent, value: 1}}
      - {name: b, node: "ns=3;i=1001", sampling_interval: 100ms, queue_size: 10}
      - {name: c, node: "nsu=urn:plant;s=Wave", kind: waveform, sample_rate_node: "ns=3;s=Wave.Rate"}
"""
    cfg = load_config_text(text)
    assert cfg.mqtt.host == "::1"
    opc = cfg.devices[0]
    assert isinstance(opc, OpcuaDevice) and opc.security_mode == "SignAndEncrypt"
    a, b, c = opc.points
    assert a.browse_path == ["2:Pump", "2:Flow"] and a.deadband is not None
    assert (b.sampling_interval, b.queue_size, b.mode) == (0.1, 10, "poll")
    assert c.sample_rate_node == "ns=3;s=Wave.Rate"


def test_assets_bearings_and_rules() -> None:
    text = (
        MINIMAL.replace(
            "{points}",
            "\n".join(
                [
                    "      - {name: speed, address: 0}",
                    "      - {name: vib, table: input, address: 100, type: int16, kind: waveform,"
                    " count: 1024, sample_rate: 10kHz}",
                ]
            ),
        )
        + """\
assets:
  - name: fan
    points: [plc/speed, plc/vib]
    machine: {group: 1, foundation: flexible, nominal_speed: 1480, running_point: plc/speed}
    bearings:
      - {point: plc/vib, geometry: {balls: 9, ball_diameter_mm: 7.94, pitch_diameter_mm: 39.04}}
      - {point: plc/vib, multiples: {bpfo: 3.585, bpfi: 5.415, bsf: 2.357, ftf: 0.398}}
rules:
  - {name: overspeed, point: plc/speed, high_high: 1600, high: 1550, low: 100, low_low: 50, off_delay: 30s,
     severity: {high: info}}
  - {point: plc/speed, low: 10}
"""
    )
    cfg = load_config_text(text)
    fan = cfg.assets[0]
    assert fan.machine is not None and fan.machine.nominal_speed == 1480
    assert fan.bearings[0].geometry is not None and fan.bearings[0].geometry.contact_angle_deg == 0.0
    assert fan.bearings[1].multiples is not None and fan.bearings[1].multiples.bpfo == 3.585
    overspeed, low = cfg.rules
    assert (overspeed.name, overspeed.off_delay, overspeed.severity.high, overspeed.severity.low) == (
        "overspeed",
        30.0,
        "info",
        "warning",
    )
    assert low.kind == "threshold" and low.high is None


def test_yaml_1_2_scalars() -> None:
    # YAML 1.1 would read yes as true, 010 as octal 8 and 1e3 as text; we follow YAML 1.2's core schema.
    text = MINIMAL.replace(
        "{points}", "      - {name: a, address: 010, unit: yes, scale: 1e3, enum: {0: off, 1: on}}"
    )
    point = load_config_text(text).devices[0].points[0]
    assert isinstance(point, ModbusPoint)
    assert (point.address, point.unit, point.scale, point.enum) == (10, "yes", 1000.0, {0: "off", 1: "on"})


def test_an_agent_without_devices_is_valid() -> None:
    cfg = load_config_text('agent: {id: a, site: s}\nmqtt: {url: "mqtt://h"}\n')
    assert cfg.devices == [] and cfg.mqtt.port == 1883 and cfg.agent.data_dir == Path("var/edge-agent")


def test_models_validate_without_the_loader() -> None:
    with pytest.raises(ValueError, match="duplicate device name 'a'"):
        AgentConfig.model_validate(
            {
                "agent": {"id": "x", "site": "y"},
                "mqtt": {"url": "mqtt://h"},
                "devices": [{"name": "a", "protocol": "opcua", "endpoint": "opc.tcp://h:4840"}] * 2,
            }
        )


# ------------------------------------------------------------------------------------------ schema
def test_committed_schema_file_is_current() -> None:
    assert SCHEMA_PATH == ROOT / "config" / "edge-agent.schema.json"
    assert SCHEMA_PATH.read_text() == schema_text(), "regenerate with: python -m edge_agent.config"
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema()


def test_schema_describes_units_and_forbids_unknown_keys() -> None:
    schema = json_schema()
    assert schema["title"] == "edge-agent configuration" and schema["$id"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"agent", "mqtt"}
    poll = schema["$defs"]["ModbusTcpDevice"]["properties"]["poll_interval"]
    assert {"type": "number", "minimum": 0} in poll["anyOf"]
    pattern = next(alt["pattern"] for alt in poll["anyOf"] if alt.get("type") == "string")
    import re

    for good in ("250ms", "10s", "1h30m", "7D", "3"):
        assert re.match(pattern, good), good
    for bad in ("10 sec", "1 2", "s"):
        assert not re.match(pattern, bad), bad
    assert all(
        d.get("additionalProperties") is False for d in schema["$defs"].values() if d.get("type") == "object"
    )


def test_format_helpers() -> None:
    assert [format_duration(s) for s in (0.25, 10, 300, 5400, 2592000, 90.5)] == [
        "250ms",
        "10s",
        "5m",
        "1h30m",
        "30d",
        "1m30.5s",
    ]
    assert [format_size(b) for b in (512, 512_000, 256_000_000, 1_500_000_000)] == [
        "512B",
        "512kB",
        "256MB",
        "1.5GB",
    ]


def test_empty_sections_mean_defaults() -> None:
    text = (
        'agent: {id: a, site: s}\nmqtt: {url: "mqtt://h"}\nbuffer:\ndevices:\nassets:\nrules:\nsummaries:\n'
    )
    cfg = load_config_text(text)
    assert cfg.devices == [] and cfg.assets == [] and cfg.rules == []
    assert cfg.buffer.max_size == 256_000_000 and cfg.summaries.interval == 60.0
    cfg = load_config_text(MINIMAL.replace("{points}", "").replace("    points:\n", "    points:"))
    assert cfg.devices[0].points == []


def test_parse_config_text_reads_yaml_like_the_loader() -> None:
    from edge_agent.config import parse_config_text
    from edge_agent.errors import ConfigError

    data = parse_config_text(EXAMPLE.read_text(), "example.yaml")
    assert load_config_data(data) == load_config(EXAMPLE)
    assert parse_config_text("a: yes\nb: 010\n") == {"a": "yes", "b": 10}
    with pytest.raises(ConfigError, match=r"^x.yaml:2: duplicate key 'a'"):
        parse_config_text("a: 1\na: 2\n", "x.yaml")
    with pytest.raises(ConfigError, match="YAML aliases"):
        parse_config_text("a: &x 1\nb: *x\n")


def test_remote_changes_cannot_add_writable_points() -> None:
    from edge_agent.config import newly_writable_points, writable_points

    local = load_config_text(_points("{name: a, address: 0, writable: true}", "{name: b, address: 1}"))
    same = load_config_text(_points("{name: a, address: 0, writable: true}", "{name: b, address: 1}"))
    more = load_config_text(_points("{name: a, address: 0}", "{name: b, address: 1, writable: true}"))
    assert writable_points(local) == {"plc/a"}
    assert newly_writable_points(local, same) == []
    assert newly_writable_points(local, more) == ["plc/b"]
    assert newly_writable_points(more, local) == ["plc/a"]


def test_missing_files_are_listed_with_their_field(tmp_path: Path) -> None:
    from edge_agent.config import missing_files

    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "certs").mkdir()
    text = MINIMAL.replace("{points}", "      - {name: a, address: 0}").replace(
        'mqtt: {url: "mqtt://127.0.0.1:1883"}',
        'mqtt: {url: "mqtts://h", tls: {ca_file: ca.pem, cert_file: certs, key_file: key.pem},'
        " username: u, password_file: pw}",
    ) + (
        "  - {name: opc, protocol: opcua, endpoint: 'opc.tcp://h:4840', security_policy: Basic256Sha256,"
        " security_mode: Sign, certificate: c.der, private_key: ca.pem}\n"
    )
    cfg = load_config_text(text)
    assert missing_files(cfg, base_dir=tmp_path) == [
        "mqtt.tls.cert_file: 'certs' is not a regular file",
        "mqtt.tls.key_file: no such file 'key.pem'",
        "mqtt.password_file: no such file 'pw'",
        "devices[1].certificate: no such file 'c.der'",
    ]
    assert missing_files(load_config(EXAMPLE)) == []


def test_summary_of_serial_devices_and_hex_octal_yaml_numbers() -> None:
    text = """\
agent: {id: gw-1, site: plant}
mqtt: {url: "mqtt://h"}
devices:
  - {name: rtu, protocol: modbus_rtu, serial_port: /dev/ttyUSB0, baudrate: 19200, parity: E, stopbits: 2,
     points: [{name: a, address: 0x10}, {name: b, address: 0o17}], publish_raw: on_change}
"""
    cfg = load_config_text(text)
    assert [p.address for p in cfg.devices[0].points if isinstance(p, ModbusPoint)] == [16, 15]
    assert "rtu                  modbus_rtu           /dev/ttyUSB0 19200 8E2 unit 1" in config_summary(cfg)
    assert "raw telemetry on change" in config_summary(cfg)


def test_write_schema(tmp_path: Path) -> None:
    from edge_agent.config import write_schema

    write_schema(tmp_path / "s.json")
    assert (tmp_path / "s.json").read_text() == schema_text()
