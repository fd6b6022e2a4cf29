"""The command line as a user meets it: check, schema, --version, and the demo's bounded run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_agent import __version__
from edge_agent.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_check_summarises_a_good_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ROOT / "config/demo.yaml")]) == 0
    out = capsys.readouterr().out
    assert "plc" in out and "motor-1" in out and "mqtt://127.0.0.1:1883" in out and "OK" in out


def test_check_names_the_line_of_a_typo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "config/demo.yaml").read_text()
    bad = text.replace("type: float32, unit: degC}", "type: flaot32, unit: degC}", 1)
    assert bad != text
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    line = next(i for i, s in enumerate(bad.splitlines(), 1) if "flaot32" in s)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line}: devices[0].points[5].type:" in err
    assert "did you mean 'float32'" in err


def test_check_reports_missing_referenced_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "config/demo.yaml").read_text().replace(
        "  topic_prefix: edge/demo-plant/gw-demo", "  topic_prefix: edge/demo-plant/gw-demo\n  username: gw\n"
        f"  password_file: {tmp_path}/nope.txt")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    assert "nope.txt" in capsys.readouterr().err


def test_schema_command_prints_the_committed_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    committed = json.loads((ROOT / "config/edge-agent.schema.json").read_text())
    assert printed == committed


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_every_example_config_in_config_dir_loads() -> None:
    from edge_agent.config import load_config

    examples = sorted((ROOT / "config").glob("*.yaml"))
    assert len(examples) >= 2
    for path in examples:
        load_config(path)


@pytest.mark.integration
def test_demo_runs_bounded_and_shows_what_reaches_the_broker(tmp_path: Path) -> None:
    """README's demo command, bounded: embedded broker, simulator and agent in one process."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "demo", "--duration", "8", "--plain", "--summary-interval", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = [line for line in proc.stdout.splitlines() if "received:" in line][-1]
    assert "telemetry" in last and "summary" in last and "status" in last
    assert "speed=" in last
    assert (tmp_path / "var/demo/outbox.sqlite").exists()


def test_opcua_cert_writes_a_pair_with_the_drivers_application_uri(tmp_path: Path) -> None:
    from cryptography import x509

    from drivers.opcua.spec import OpcUaDeviceSpec

    cert, key = tmp_path / "c.der", tmp_path / "k.pem"
    assert main(["opcua-cert", str(cert), str(key), "--hostname", "gw-7"]) == 0
    parsed = x509.load_der_x509_certificate(cert.read_bytes())
    san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uri = OpcUaDeviceSpec.__dataclass_fields__["application_uri"].default
    assert uri in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert "gw-7" in san.get_values_for_type(x509.DNSName)
    assert key.stat().st_mode & 0o077 == 0
    assert main(["opcua-cert", str(cert), str(key)]) == 2  # refuses to overwrite without --force


def test_check_takes_the_config_as_run_and_buffer_do(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(ROOT / "config/demo.yaml")]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["check"]) == 2
    assert "give the config file" in capsys.readouterr().err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("run", "check", "schema", "simulate", "demo", "analyze", "remote", "buffer", "opcua-cert"):
        assert f"\n    {command} " in out, (command, out)


def test_bad_scenarios_and_busy_ports_get_one_line_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "nonsense", "--duration", "1", "--plain"]) == 2
    assert capsys.readouterr().err.startswith("edge-agent demo: unknown scenario 'nonsense'; choose one of:")
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["simulate", "--modbus-port", str(port), "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert f"edge-agent simulate: cannot listen on 127.0.0.1 (--modbus-port {port})" in err
    assert "Traceback" not in err


def test_an_unset_password_variable_is_named_by_check_and_by_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGE_TEST_NOPE", raising=False)
    text = (ROOT / "config/demo.yaml").read_text().replace(
        "  topic_prefix: edge/demo-plant/gw-demo", "  topic_prefix: edge/demo-plant/gw-demo\n  username: gw\n"
        "  password_env: EDGE_TEST_NOPE")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["check", "-c", str(path)]) == 2
    assert f"{path}: mqtt.password_env: environment variable 'EDGE_TEST_NOPE' is not set here" \
        in capsys.readouterr().err
    assert main(["run", "-c", str(path), "--duration", "1"]) == 2
    assert f"{path}: mqtt.password_env: environment variable 'EDGE_TEST_NOPE' is not set" in capsys.readouterr().err
