"""The sections for alarms, maintenance, remote, service and raw telemetry; local-only settings; full example.

Error messages with line numbers for each section are data-driven in tests/configs/bad/ (alarms_section,
maintenance, remote_section, remote_signature, service_section, health_host, raw_telemetry).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from edge_agent.config import (
    DEFAULT_RAW_HEARTBEAT_S,
    LOCAL_ONLY_FIELDS,
    RULE_MODELS,
    AgentConfig,
    AlarmsConfig,
    HealthEndpoint,
    MaintenanceConfig,
    ModbusPoint,
    OpcuaPoint,
    RemoteConfig,
    ServiceConfig,
    ServiceInterval,
    StormConfig,
    ZoneSeverity,
    config_summary,
    is_loopback_host,
    load_config,
    load_config_data,
    load_config_text,
    local_only_violations,
    missing_files,
    parse_rate_per_minute,
)
from edge_agent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FULL_EXAMPLE = ROOT / "config" / "full-example.yaml"

BASE = """\
agent: {id: gw-1, site: plant}
mqtt: {url: "mqtt://127.0.0.1:1883"}
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    points:
      - {name: speed, address: 0, unit: rpm}
      - {name: current, address: 1, unit: A}
      - {name: running, table: coil, address: 0}
"""


def _load(extra: str) -> AgentConfig:
    return load_config_text(BASE + extra)


def _errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "t.yaml")
    return info.value.errors


# ------------------------------------------------------------------------------------------ defaults
def test_new_sections_default_when_absent_or_empty() -> None:
    for cfg in (_load(""), _load("alarms:\nremote:\nservice:\n")):
        assert cfg.alarms == AlarmsConfig()
        assert (
            cfg.alarms.update_interval,
            cfg.alarms.storm.summary_after,
            cfg.alarms.storm.release_after,
        ) == (
            10.0,
            30.0,
            60.0,
        )
        remote = cfg.remote
        assert (remote.enabled, remote.require_signature, remote.public_key_file) == (True, False, None)
        assert (remote.max_payload, remote.confirm_window, remote.keep_configs, remote.command_rate) == (
            256_000,
            60.0,
            10,
            10.0,
        )
        assert remote.commands_enabled is None and remote.command_enabled("capture")
        service = cfg.service
        assert (service.health.enabled, service.health.host, service.health.port) == (
            False,
            "127.0.0.1",
            9753,
        )
        assert (service.log_level, service.log_format, service.component_levels) == ("info", "text", {})
        assert cfg.summaries.per_vibration_point_features is True


# ------------------------------------------------------------------------------------------ alarms
def test_alarms_section_values() -> None:
    cfg = _load("alarms: {update_interval: 1m, storm: {summary_after: 2m, release_after: 0}}\n")
    assert cfg.alarms == AlarmsConfig(
        update_interval=60.0, storm=StormConfig(summary_after=120.0, release_after=0)
    )


# ------------------------------------------------------------------------------------------ maintenance
@pytest.mark.parametrize(
    ("maintenance", "source", "threshold"),
    [
        ("{running_point: plc/running}", "plc/running", None),
        ("{speed_point: plc/speed, speed_threshold: 100, hysteresis: 10}", "plc/speed", 100.0),
        ("{current_point: plc/current, current_threshold: 2.5}", "plc/current", 2.5),
    ],
)
def test_maintenance_running_sources(maintenance: str, source: str, threshold: float | None) -> None:
    cfg = _load(f"assets:\n  - {{name: m, points: [plc/speed], maintenance: {maintenance}}}\n")
    m = cfg.assets[0].maintenance
    assert m is not None and (m.source_point, m.running_threshold, m.intervals) == (source, threshold, [])


def test_maintenance_intervals_in_run_hours_or_starts() -> None:
    cfg = _load(
        "assets:\n  - name: m\n    maintenance:\n      running_point: plc/running\n      max_gap: 10m\n"
        "      intervals:\n        - {name: regrease, every: 2000h}\n"
        "        - {name: coupling, starts: 500, severity: critical}\n"
    )
    m = cfg.assets[0].maintenance
    assert m is not None and m.max_gap == 600.0
    regrease, coupling = m.intervals
    assert (regrease.every, regrease.every_run_hours, regrease.starts, regrease.severity) == (
        7_200_000.0,
        2000.0,
        None,
        "warning",
    )
    assert (coupling.every, coupling.every_run_hours, coupling.starts, coupling.severity) == (
        None,
        None,
        500,
        "critical",
    )


def test_maintenance_duplicate_interval_names_are_refused() -> None:
    errors = _errors(
        BASE + "assets:\n  - name: m\n    maintenance:\n      running_point: plc/running\n      intervals:\n"
        "        - {name: a, starts: 1}\n        - {name: a, starts: 2}\n"
    )
    assert errors == [
        "t.yaml:17: assets[0].maintenance.intervals[1].name: duplicate service interval name 'a' "
        "(also intervals[0])"
    ]


def test_a_hysteresis_that_would_never_let_the_machine_stop_is_refused() -> None:
    errors = _errors(BASE + "assets:\n  - {name: m, maintenance: {speed_point: plc/speed, speed_threshold: 100, "
                     "hysteresis: 500}}\n")
    assert len(errors) == 1 and "assets[0].maintenance.hysteresis: a band of 500 puts the stop level at -150" \
        in errors[0] and "use a band below 200" in errors[0], errors


def test_an_unknown_bearing_model_is_refused_with_the_closest_one() -> None:
    vib = "      - {name: vib, address: 100, kind: waveform, count: 1024, sample_rate: 10000}\n"
    asset = "assets:\n  - {name: m, points: [plc/vib], bearings: [{point: plc/vib, model: SKF-6250}]}\n"
    errors = _errors(BASE + vib + asset)
    assert len(errors) == 1, errors
    assert "assets[0].bearings[0].model: unknown bearing 'SKF-6250'" in errors[0]
    assert "(did you mean SKF-6205?)" in errors[0]


# ------------------------------------------------------------------------------------------ remote
@pytest.mark.parametrize(
    ("text", "per_minute"),
    [
        ("10/min", 10.0),
        ("1/s", 60.0),
        ("600/h", 10.0),
        (5, 5.0),
        ("2.5", 2.5),
        ("3 / MIN", 3.0),
        ("1/sec", 60.0),
    ],
)
def test_command_rate_forms(text: object, per_minute: float) -> None:
    assert parse_rate_per_minute(text) == per_minute
    cfg = _load(f"remote: {{command_rate: {json.dumps(text)}}}\n")
    assert cfg.remote.command_rate == per_minute


@pytest.mark.parametrize("bad", ["10 per minute", "/s", "1/d", "-1/s", True, "1e999/s"])
def test_bad_command_rates_name_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"invalid rate .*: use a number per minute or a number per unit"):
        parse_rate_per_minute(bad)


def test_zero_command_rate_is_refused() -> None:
    assert _errors(BASE + "remote: {command_rate: 0/min}\n") == [
        "t.yaml:11: remote.command_rate: must be greater than 0, got '0/min'"
    ]


def test_remote_section_values(tmp_path: Path) -> None:
    key = tmp_path / "remote.pub"
    cfg = _load(
        f"remote: {{require_signature: true, public_key_file: {key}, max_payload: 1MiB, confirm_window: 0,"
        " keep_configs: 3, command_rate: 1/s, commands_enabled: [status, read]}\n"
    )
    remote = cfg.remote
    assert (remote.require_signature, remote.public_key_file, remote.max_payload) == (True, key, 2**20)
    assert (remote.confirm_window, remote.keep_configs, remote.command_rate) == (0.0, 3, 60.0)
    assert [remote.command_enabled(c) for c in ("status", "read", "capture", "ping")] == [
        True,
        True,
        False,
        True,
    ]
    assert missing_files(cfg) == [f"remote.public_key_file: no such file '{key}'"]
    key.write_text("-----BEGIN PUBLIC KEY-----\n")
    assert missing_files(cfg) == []
    off = _load("remote: {enabled: false}\n").remote
    assert not off.command_enabled("ping") and not off.command_enabled("status")


# ------------------------------------------------------------------------------------------ local-only
def test_local_only_fields_are_named() -> None:
    assert LOCAL_ONLY_FIELDS == (
        "remote.require_signature",
        "remote.public_key_file",
        "devices[*].points[*].writable",
    )


def test_local_only_violations_name_every_changed_field() -> None:
    local = _load("remote: {require_signature: true, public_key_file: /etc/edge-agent/remote.pub}\n")
    unchanged = _load(
        "remote: {require_signature: true, public_key_file: /etc/edge-agent/remote.pub,"
        " command_rate: 1/s, keep_configs: 2}\n"
    )
    assert local_only_violations(local, unchanged) == []
    off = _load("remote: {require_signature: false, public_key_file: /tmp/other.pub}\n")
    assert local_only_violations(local, off) == [
        "remote.require_signature: a remote config may not change it (true -> false); only an edit of the "
        "config file on the gateway may change it",
        "remote.public_key_file: a remote config may not change it ('/etc/edge-agent/remote.pub' -> "
        "'/tmp/other.pub'); only an edit of the config file on the gateway may change it",
    ]
    # turning signatures on remotely is refused too: it could lock the owner out with a key they lack
    assert [v.split(":")[0] for v in local_only_violations(_load(""), local)] == [
        "remote.require_signature",
        "remote.public_key_file",
    ]


def test_remote_configs_cannot_make_points_writable_but_may_turn_writes_off() -> None:
    readonly = load_config_text(BASE)
    writable = load_config_text(
        BASE.replace(
            "{name: current, address: 1, unit: A}", "{name: current, address: 1, unit: A, writable: true}"
        )
    )
    assert local_only_violations(readonly, writable) == [
        "devices[0].points[1].writable (plc/current): a remote config may not make a point writable; "
        "only an edit of the config file on the gateway may change it"
    ]
    assert local_only_violations(writable, readonly) == []
    assert local_only_violations(writable, writable) == []


# ------------------------------------------------------------------------------------------ service
def test_service_section_values() -> None:
    cfg = _load(
        "service:\n  health: {enabled: true, host: '::1', port: 9200}\n  log_level: DEBUG\n"
        "  log_format: json\n"
        "  component_levels: {drivers.modbus: debug, pymodbus: Warning, edge_agent.publisher: error}\n"
    )
    assert cfg.service == ServiceConfig(
        health=HealthEndpoint(enabled=True, host="::1", port=9200),
        log_level="debug",
        log_format="json",
        component_levels={"drivers.modbus": "debug", "pymodbus": "warning", "edge_agent.publisher": "error"},
    )


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("gateway.local", False),
        ("::", False),
    ],
)
def test_health_host_must_be_loopback_unless_allowed(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback
    text = f"service: {{health: {{host: '{host}'}}}}\n"
    if loopback:
        assert _load(text).service.health.host == host
    else:
        assert _errors(BASE + text) == [
            f"t.yaml:11: service.health.host: health host '{host}' is not a loopback address; "
            "the endpoint has no authentication, so use 127.0.0.1 (or set allow_remote: true to expose it)"
        ]
        allowed = _load(f"service: {{health: {{host: '{host}', allow_remote: true}}}}\n").service.health
        assert (allowed.host, allowed.allow_remote) == (host, True)


# ------------------------------------------------------------------------------------------ raw telemetry
def test_raw_telemetry_defaults_and_effective_settings() -> None:
    cfg = load_config_text(
        BASE.replace(
            "    host: 127.0.0.1\n", "    host: 127.0.0.1\n    publish_raw: on_change\n    deadband: 2\n"
        )
        .replace(
            "{name: speed, address: 0, unit: rpm}",
            "{name: speed, address: 0, unit: rpm, publish_deadband: 5}",
        )
        .replace(
            "{name: current, address: 1, unit: A}",
            "{name: current, address: 1, unit: A, publish_deadband_percent: 1.5}",
        )
    )
    device = cfg.devices[0]
    speed, current, running = device.points
    assert (device.raw_qos, device.heartbeat, device.raw_heartbeat) == (1, None, DEFAULT_RAW_HEARTBEAT_S)
    assert device.raw_deadband_of(speed) == (5.0, 0.0)
    assert device.raw_deadband_of(current) == (0.0, 1.5)
    assert device.raw_deadband_of(running) == (2.0, 0.0)  # the device's deadband
    plain = load_config_text(BASE).devices[0]
    assert (plain.publish_raw, plain.raw_heartbeat, plain.raw_deadband_of(plain.points[0])) == (
        False,
        None,
        (0, 0),
    )


def test_raw_telemetry_every_poll_with_qos_0_and_opcua_percent_deadband() -> None:
    cfg = load_config_text(
        BASE.replace("    host: 127.0.0.1\n", "    host: 127.0.0.1\n    publish_raw: true\n    raw_qos: 0\n")
        + "  - name: opc\n    protocol: opcua\n    endpoint: opc.tcp://127.0.0.1:4840\n"
        "    publish_raw: on_change\n    deadband_percent: 0.5\n    heartbeat: 10m\n"
        "    points: [{name: f, node: 'ns=2;s=F', publish_deadband: 0.1}, {name: g, node: 'ns=2;s=G'}]\n"
    )
    modbus, opc = cfg.devices
    assert (modbus.publish_raw, modbus.raw_qos, modbus.raw_heartbeat) == (True, 0, None)
    f, g = opc.points
    assert isinstance(f, OpcuaPoint) and opc.raw_heartbeat == 600.0
    assert (opc.raw_deadband_of(f), opc.raw_deadband_of(g)) == ((0.1, 0.0), (0.0, 0.5))


def test_dormant_raw_settings_stay_valid_when_publish_raw_is_switched_off() -> None:
    # a remote merge patch {devices: ...publish_raw: false} must not invalidate the rest of the device
    cfg = load_config_text(
        BASE.replace(
            "    host: 127.0.0.1\n",
            "    host: 127.0.0.1\n    publish_raw: false\n    deadband: 1\n    heartbeat: 1m\n",
        )
    )
    assert cfg.devices[0].raw_heartbeat is None


# ------------------------------------------------------------------------------------------ full example
NEW_MODELS: tuple[type[BaseModel], ...] = (
    AlarmsConfig,
    StormConfig,
    MaintenanceConfig,
    ServiceInterval,
    RemoteConfig,
    ServiceConfig,
    HealthEndpoint,
    ZoneSeverity,
    *(model for kind, model in RULE_MODELS.items() if kind != "threshold"),
)
NEW_FIELDS_OF_OLD_MODELS = {
    "ThresholdRule": {"when", "min_update_interval"},
    "ModbusTcpDevice": {"publish_raw", "raw_qos", "deadband", "heartbeat"},
    "OpcuaDevice": {"publish_raw", "deadband_percent"},
    "ModbusPoint": {"publish_deadband", "publish_deadband_percent"},
    "OpcuaPoint": {"publish_deadband"},
    "SummariesConfig": {"per_vibration_point_features", "max_message_size"},
    "Asset": {"maintenance"},
}
#: Fields the full example shows in a comment only (a file path that would not exist here).
COMMENTED_FIELDS = {("RemoteConfig", "public_key_file")}


def _fields_set(model: BaseModel, out: dict[str, set[str]]) -> None:
    out.setdefault(type(model).__name__, set()).update(model.model_fields_set)
    for name in type(model).model_fields:
        value: Any = getattr(model, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, BaseModel):
                _fields_set(item, out)


def test_full_example_uses_every_new_field() -> None:
    cfg = load_config(FULL_EXAMPLE)
    used: dict[str, set[str]] = {}
    _fields_set(cfg, used)
    missing = [
        f"{model.__name__}.{field}"
        for model in NEW_MODELS
        for field in model.model_fields
        if field not in used.get(model.__name__, set()) and (model.__name__, field) not in COMMENTED_FIELDS
    ]
    missing += [
        f"{model}.{field}"
        for model, fields in NEW_FIELDS_OF_OLD_MODELS.items()
        for field in sorted(fields - used.get(model, set()))
    ]
    assert not missing, f"config/full-example.yaml does not show: {missing}"
    text = FULL_EXAMPLE.read_text()
    for _, field in COMMENTED_FIELDS:
        assert f"# {field}:" in text
    assert {r.kind for r in cfg.rules} == set(RULE_MODELS)


def test_full_example_values_and_summary() -> None:
    cfg = load_config(FULL_EXAMPLE)
    assert missing_files(cfg) == []
    pump = cfg.assets[0]
    assert pump.maintenance is not None
    assert [(i.name, i.every_run_hours, i.starts) for i in pump.maintenance.intervals] == [
        ("regrease", 2000.0, None),
        ("coupling-check", None, 500),
    ]
    assert (cfg.remote.command_rate, cfg.remote.max_payload, cfg.service.health.enabled) == (
        10.0,
        256_000,
        True,
    )
    motor = cfg.devices[0]
    assert (motor.raw_qos, motor.raw_heartbeat) == (0, 300.0)
    speed = motor.points[0]
    assert isinstance(speed, ModbusPoint) and motor.raw_deadband_of(speed) == (5.0, 0.0)
    summary = config_summary(cfg)
    for expected in (
        "rules   14 (threshold 1, rate 1, deviation 2, stale 2, bad_quality 2, iso_zone 2, fault 1, trend 3)",
        "alarms  updates at most every 10s; device-down summary after 30s, released after 1m",
        "raw telemetry on change QoS 0, heartbeat 5m",
        "run time from motor-plc/current, 2 service interval(s)",
        "vibration feature statistics",
        "remote  on, unsigned allowed, confirm window 1m, up to 256kB, 10 command(s)/min",
        "service log info as text, drivers.modbus debug, pymodbus warning; health on http://127.0.0.1:9753",
    ):
        assert expected in summary, expected


def test_full_example_dumps_and_reloads_to_the_same_config() -> None:
    cfg = load_config(FULL_EXAMPLE)
    assert load_config_data(json.loads(cfg.model_dump_json()), "dump") == cfg
