"""Bad configs produce every error at once, each as ``FILE:LINE: path: message`` with a fix.

Data-driven: ``tests/configs/bad/<case>.yaml`` is loaded and must fail with exactly as many errors as
``<case>.expected`` has lines, each expected line appearing (as a substring) in a distinct error.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge_agent.config import load_config, load_config_data, load_config_text
from edge_agent.errors import ConfigError

BAD_DIR = Path(__file__).parent / "configs" / "bad"
CASES = sorted(p.stem for p in BAD_DIR.glob("*.yaml"))

VALID = """\
agent: {id: gw-1, site: plant}
mqtt: {url: "mqtt://127.0.0.1:1883"}
devices:
  - name: plc
    protocol: modbus_tcp
    host: 127.0.0.1
    points:
      - {name: speed, address: 0, unit: rpm}
"""


def _errors_of(load: object) -> list[str]:
    assert callable(load)
    with pytest.raises(ConfigError) as info:
        load()
    assert info.value.errors, "ConfigError without errors"
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def test_every_case_has_an_expected_file() -> None:
    assert len(CASES) >= 20
    missing = [c for c in CASES if not (BAD_DIR / f"{c}.expected").is_file()]
    assert not missing, f"cases without .expected: {missing}"


@pytest.mark.parametrize("case", CASES)
def test_bad_config_reports_expected_errors(case: str) -> None:
    path = BAD_DIR / f"{case}.yaml"
    expected = [line for line in (BAD_DIR / f"{case}.expected").read_text().splitlines() if line.strip()]
    errors = _errors_of(lambda: load_config(path))
    unmatched = list(errors)
    for want in expected:
        hit = next((e for e in unmatched if want in e), None)
        assert hit is not None, f"expected {want!r} among:\n" + "\n".join(errors)
        unmatched.remove(hit)
    assert not unmatched, "unexpected extra errors:\n" + "\n".join(unmatched)
    for error in errors:
        assert error.startswith(f"{path}:"), error


def test_many_errors_in_many_sections_come_in_one_exception() -> None:
    errors = _errors_of(lambda: load_config(BAD_DIR / "multiple_sections.yaml"))
    sections = {e.split(": ", 2)[1].split(".")[0].split("[")[0] for e in errors}
    assert {"mqtt", "buffer", "devices", "assets", "rules"} <= sections
    lines = [int(e.split(":")[1]) for e in errors]
    assert lines == sorted(lines), "errors are listed in file order"


def test_password_in_url_is_not_echoed() -> None:
    errors = _errors_of(lambda: load_config(BAD_DIR / "url_with_credentials.yaml"))
    assert not any("secret" in e for e in errors)


def test_yaml_bomb_is_refused_without_expanding() -> None:
    # "billion laughs": expanded, this would be 10**9 list items; the loader refuses the first alias.
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    text = "\n".join(levels) + "\n"
    errors = _errors_of(lambda: load_config_text(text, "bomb.yaml"))
    assert errors == ["bomb.yaml:2: YAML aliases (*a0) are not allowed; write the value out"]


def test_merge_keys_need_aliases_and_are_refused_too() -> None:
    text = "base: &b {id: gw-1}\nagent:\n  <<: *b\n  site: plant\n"
    errors = _errors_of(lambda: load_config_text(text, "merge.yaml"))
    assert errors[0].startswith("merge.yaml:3: YAML aliases (*b)")


def test_deep_nesting_is_refused() -> None:
    text = "agent: " + "[" * 200 + "]" * 200 + "\n"
    errors = _errors_of(lambda: load_config_text(text, "deep.yaml"))
    assert errors == ["deep.yaml:1: nesting deeper than 32 levels"]


def test_nesting_deep_enough_to_stop_libyaml_gets_the_same_message() -> None:
    # libyaml (bundled with PyYAML >= 6.0.3) has its own, much higher, nesting limit and can hit it while
    # scanning ahead, before the loader sees the 33rd level: the engineer still reads our message.
    text = "agent: " + "[" * 100_000 + "]" * 100_000 + "\n"
    errors = _errors_of(lambda: load_config_text(text, "deeper.yaml"))
    assert errors == ["deeper.yaml:1: nesting deeper than 32 levels"]


def test_size_limit_applies_to_text_and_files(tmp_path: Path) -> None:
    text = VALID + "# " + "x" * 2000 + "\n"
    errors = _errors_of(lambda: load_config_text(text, "big.yaml", max_bytes=1000))
    assert errors[0].startswith("big.yaml: the config is ") and "limit of 1000 bytes" in errors[0]
    path = tmp_path / "big.yaml"
    path.write_text(text)
    errors = _errors_of(lambda: load_config(path, max_bytes=1000))
    assert errors == [f"{path}: the config file is larger than the limit of 1000 bytes"]
    assert load_config(path, max_bytes=len(text)).agent.id == "gw-1"


def test_default_size_limit_is_one_megabyte() -> None:
    text = VALID + "#" * 1_000_001 + "\n"
    errors = _errors_of(lambda: load_config_text(text, "huge.yaml"))
    assert "limit of 1000000 bytes" in errors[0]


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    errors = _errors_of(lambda: load_config(missing))
    assert errors[0].startswith(f"{missing}: cannot read the config file")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(VALID.replace("plant", "pl\xe4nt").encode("latin-1"))
    errors = _errors_of(lambda: load_config(latin))
    assert errors[0].startswith(f"{latin}: the config file is not UTF-8 text")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + VALID.encode())
    assert load_config(path).agent.site == "plant"


def test_python_tags_are_refused() -> None:
    text = VALID + "extra: !!python/object/apply:os.system [echo hi]\n"
    errors = _errors_of(lambda: load_config_text(text, "tag.yaml"))
    assert errors[0].startswith("tag.yaml:9: YAML syntax error:")


def test_huge_integer_literal_is_an_error_not_a_crash() -> None:
    text = VALID + "buffer: {max_size: " + "9" * 5000 + "}\n"
    errors = _errors_of(lambda: load_config_text(text, "int.yaml"))
    assert errors[0].startswith("int.yaml: YAML value error:")


def test_json_data_errors_carry_paths_without_lines() -> None:
    data = {
        "agent": {"id": "gw-1", "site": "plant"},
        "mqtt": {"url": "mqtt://127.0.0.1:1883"},
        "devices": [{"name": "plc", "protocol": "modbus_tcp", "host": "h", "points": [{"name": "a"}]}],
        "rules": [{"point": "plc/b", "high": 1}],
        "colour": "blue",
    }
    errors = _errors_of(lambda: load_config_data(json.loads(json.dumps(data)), "remote"))
    assert sorted(errors) == [
        "remote: colour: unknown key 'colour' (allowed here: agent, mqtt, buffer, devices, assets, rules, "
        "summaries, alarms, remote, service)",
        "remote: devices[0].points[0]: missing required field 'address'",
        "remote: rules[0].point: unknown point 'plc/b': device 'plc' has no such point (its points: a)",
    ]
    errors = _errors_of(lambda: load_config_data(["not", "a", "mapping"], "remote"))
    assert errors[0].startswith("remote: the top level must be an object")


def test_password_sources_are_exclusive_and_read_at_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both = VALID.replace(
        '{url: "mqtt://127.0.0.1:1883"}',
        '{url: "mqtt://127.0.0.1:1883", username: u, password_file: /x, password_env: X}',
    )
    errors = _errors_of(lambda: load_config_text(both, "pw.yaml"))
    assert errors == ["pw.yaml:2: mqtt: give either password_file or password_env, not both"]

    secret_file = tmp_path / "pw"
    secret_file.write_text("s3cret\nignored\n")
    cfg = load_config_text(VALID.replace('1883"}', f'1883", username: u, password_file: "{secret_file}"}}'))
    assert cfg.mqtt.read_password() == "s3cret"

    cfg = load_config_text(VALID.replace('1883"}', '1883", username: u, password_env: EDGE_TEST_PW}'))
    monkeypatch.delenv("EDGE_TEST_PW", raising=False)
    with pytest.raises(ConfigError, match="environment variable 'EDGE_TEST_PW' is not set"):
        cfg.mqtt.read_password()
    monkeypatch.setenv("EDGE_TEST_PW", "from-env")
    assert cfg.mqtt.read_password() == "from-env"
    assert "from-env" not in repr(cfg) and os.environ["EDGE_TEST_PW"] == "from-env"


HEAD = "agent: {id: gw-1, site: plant}\n"
MQTT = 'mqtt: {url: "mqtt://127.0.0.1:1883"}\n'
PLC = "devices:\n  - {name: plc, protocol: modbus_tcp, host: h, points: [{name: a, address: 0}]}\n"
OPC = "devices:\n  - {name: opc, protocol: opcua, endpoint: 'opc.tcp://h:4840', points: [%s]}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEAD + 'mqtt: {url: "mqtt://"}\n', "x.yaml:2: mqtt.url: invalid url 'mqtt://': no host"),
        (
            HEAD + 'mqtt: {url: "mqtt://h/x"}\n',
            "mqtt.url: invalid url 'mqtt://h/x': no path, query or fragment",
        ),
        (HEAD + 'mqtt: {url: "mqtt://h:0"}\n', "mqtt.url: invalid url 'mqtt://h:0': port 0"),
        (
            HEAD + 'mqtt: {url: "mqtt://h:99999"}\n',
            "mqtt.url: invalid url 'mqtt://h:99999': Port out of range",
        ),
        (HEAD + 'mqtt: {url: "tcp://h"}\n', "scheme must be mqtt or mqtts, not 'tcp'"),
        (HEAD + 'mqtt: {url: "mqtt://h", topic_prefix: /edge}\n', "use levels separated by single '/'"),
        (HEAD + 'mqtt: {url: "mqtt://h", topic_prefix: "a/{plant}"}\n', "unknown placeholder {plant}"),
        (HEAD + 'mqtt: {url: "mqtt://h", client_id: ""}\n', "mqtt.client_id: must not be empty"),
        (
            HEAD + 'mqtt: {url: "mqtt://h", keepalive: 1d}\n',
            "mqtt.keepalive: must be at most 65535, got '1d'",
        ),
        (HEAD + 'mqtt: {url: "mqtt://h", password_env: "1X"}\n', "mqtt.password_env: '1X' does not match"),
        (
            HEAD + MQTT + PLC + "rules: [{point: plc/temperature, high: 1}]\n",
            "rules[0].point: unknown point 'plc/temperature': device 'plc' has no such point",
        ),
        (
            HEAD
            + MQTT
            + PLC
            + "rules: [{name: r, point: plc/a, high: 1}, {name: r, point: plc/a, low: 1}]\n",
            "x.yaml:5: rules[1].name: duplicate rule name 'r' (also rules[0])",
        ),
        (
            HEAD + MQTT + "summaries: {statistics: [mean, mean]}\n",
            "summaries.statistics[1]: 'mean' is listed twice",
        ),
        (HEAD + MQTT + "summaries: {statistics: []}\n", "summaries.statistics: needs at least 1 item(s)"),
        (HEAD + MQTT + "buffer: {max_size: 0}\n", "buffer.max_size: must be greater than 0, got 0"),
        (
            HEAD + MQTT + OPC % "{name: a, node: 'i=1', deadband: {type: absolute, value: 1}}",
            "devices[0].points[0].deadband: deadband filters a subscription; set mode: subscribe or drop it",
        ),
        (
            HEAD + MQTT + OPC % "{name: a, node: 'i=1', sample_rate: 1kHz}",
            "devices[0].points[0].sample_rate: sample_rate applies to kind waveform only",
        ),
        (
            HEAD + MQTT + OPC % "{name: a, node: 'i=1', mode: push}",
            "devices[0].points[0].mode: unknown mode 'push'; allowed: poll, subscribe",
        ),
        (
            HEAD + MQTT + "devices:\n  - {name: plc, protocol: modbus_tcp, host: h, publish_raw: yes}\n",
            "devices[0].publish_raw: invalid publish_raw 'yes': use false, true or on_change",
        ),
        (
            HEAD
            + MQTT
            + "devices:\n  - {name: rtu, protocol: modbus_rtu, serial_port: /dev/ttyS0, unit_id: 0}\n",
            "devices[0].unit_id: must be at least 1, got 0",
        ),
        (
            HEAD + MQTT + "devices:\n  - {name: b, protocol: modbus_rtu_over_tcp, host: h}\n",
            "x.yaml:4: devices[0]: missing required field 'port'",
        ),
    ],
)
def test_inline_bad_values(text: str, expected: str) -> None:
    errors = _errors_of(lambda: load_config_text(text, "x.yaml"))
    assert any(expected in e for e in errors), "\n".join(errors)


def test_unreadable_password_file_names_the_file_not_the_content(tmp_path: Path) -> None:
    cfg = load_config_text(
        HEAD + f'mqtt: {{url: "mqtt://h", username: u, password_file: "{tmp_path}/none"}}\n'
    )
    with pytest.raises(ConfigError, match=r"password_file '.*/none': cannot read"):
        cfg.mqtt.read_password()
    assert load_config_text(HEAD + MQTT).mqtt.read_password() is None


def test_credentials_written_into_an_opc_ua_endpoint_are_never_echoed(tmp_path: Path) -> None:
    text = (f"agent: {{id: gw-1, site: plant, data_dir: {tmp_path}}}\nmqtt: {{url: mqtt://127.0.0.1:1883}}\n"
            "devices:\n  - name: opc\n    protocol: opcua\n"
            "    endpoint: opc.tcp://operator:Hunter2Secret@10.0.0.5:4840\n"
            "    points:\n      - {name: flow, node: \"ns=3;i=1001\"}\n")
    errors = _errors_of(lambda: load_config_text(text, "site.yaml"))
    assert len(errors) == 1 and errors[0].startswith("site.yaml:6: devices[0].endpoint: ")
    assert "Hunter2Secret" not in errors[0] and "opc.tcp://***@10.0.0.5:4840" in errors[0]
    assert "password_file" in errors[0]


def test_what_the_modbus_driver_would_refuse_is_a_config_error_with_its_line(tmp_path: Path) -> None:
    text = (f"agent: {{id: gw-1, site: plant, data_dir: {tmp_path}}}\nmqtt: {{url: mqtt://127.0.0.1:1883}}\n"
            "devices:\n  - name: plc\n    protocol: modbus_tcp\n    host: 127.0.0.1\n    points:\n"
            "      - {name: running, address: 3, type: bool}\n"
            "      - {name: vib, address: 1000, type: float32, kind: waveform, count: 8, sample_rate: 1000Hz}\n"
            "      - {name: speed, address: 0}\n")
    errors = _errors_of(lambda: load_config_text(text, "site.yaml"))
    assert errors == [
        "site.yaml:8: devices[0].points[0]: point 'running': a bool in a holding register needs bit: 0..15",
        "site.yaml:9: devices[0].points[1]: point 'vib': waveform samples are 16-bit registers; "
        "set type: int16 or uint16",
    ]
    wide = text.replace("    points:\n", "    max_registers: 2\n    points:\n").replace(
        "      - {name: running, address: 3, type: bool}\n", "      - {name: energy, address: 30, type: float64}\n"
    ).replace("type: float32, kind: waveform", "type: int16, kind: waveform")
    [error] = _errors_of(lambda: load_config_text(wide, "site.yaml"))
    assert error.startswith("site.yaml:4: devices[0]: ") and "max_registers" in error


def test_a_key_of_another_protocol_says_whose_it_is() -> None:
    """'port' on a serial device used to suggest 'points'; 'table' on an OPC UA point, 'writable'."""
    text = (
        'agent: {id: gw, site: s}\nmqtt: {url: "mqtt://127.0.0.1:1883"}\ndevices:\n'
        "  - {name: rtu, protocol: modbus_rtu, serial_port: /dev/ttyUSB0, port: 502, points: [{name: a, address: 0}]}\n"
        '  - {name: ua, protocol: opcua, endpoint: "opc.tcp://127.0.0.1:4840",\n'
        '     points: [{name: b, node: "ns=2;s=X", table: holding}]}\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "k.yaml")
    first, second = info.value.errors
    assert first.startswith("k.yaml:4: devices[0].port: unknown key 'port' here: it is a setting of modbus_tcp "
                            "devices, modbus_rtu_over_tcp devices (allowed here: ")
    assert second.startswith("k.yaml:6: devices[1].points[0].table: unknown key 'table' here: it is a setting of "
                             "Modbus points (allowed here: ")
