"""Log lines as an operator and a log shipper see them, and secrets that must never reach either."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent import logging_setup
from edge_agent.logging_setup import Redactor, redact, register_secret, setup_logging

PEM_KEY = """-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oJp0wjYH2tNgoAoGCCqGSM49
AwEHoUQDQgAEmXlrxHjMJ3ZwVjFtXUiJCk5bmUq7QfDl4JnYbKoLqm8=
-----END EC PRIVATE KEY-----"""


@pytest.fixture(autouse=True)
def isolated_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets a fresh redactor and leaves the root logger and component levels as it found them."""
    monkeypatch.setattr(logging_setup, "_redactor", Redactor())
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    names = [*logging_setup.QUIET_BY_DEFAULT, "edge_agent", "edge_agent.publisher", "edge_agent.scheduler"]
    saved_levels = {name: logging.getLogger(name).level for name in names}
    yield
    for handler in root.handlers:
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def logged(fmt: str = "text", level: str = "info", **kwargs: object) -> io.StringIO:
    out = io.StringIO()
    setup_logging(level=level, fmt=fmt, stream=out, **kwargs)  # type: ignore[arg-type]
    return out


def test_text_lines_are_human_readable() -> None:
    out = logged()
    logging.getLogger("edge_agent.publisher").warning("broker %s unreachable", "127.0.0.1:1883")
    line = out.getvalue().strip()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} WARNING edge_agent\.publisher: broker 127\.0\.0\.1:1883 unreachable",
        line,
    ), line


def test_json_lines_carry_fields_and_tracebacks() -> None:
    out = logged(fmt="json")
    log = logging.getLogger("edge_agent.scheduler")
    log.info("cycle overran", extra={"device": "motor-plc", "skipped": 2})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("poll failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "info"
    assert first["logger"] == "edge_agent.scheduler"
    assert first["msg"] == "cycle overran"
    assert first["device"] == "motor-plc" and first["skipped"] == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert second["level"] == "error"
    assert "RuntimeError: boom" in second["exc"]


def test_levels_per_component() -> None:
    out = logged(level="warning", component_levels={"edge_agent.publisher": "debug"})
    logging.getLogger("edge_agent.publisher").debug("publisher detail")
    logging.getLogger("edge_agent.scheduler").info("scheduler chatter")
    logging.getLogger("asyncua.client").info("asyncua chatter")  # quiet by default
    logging.getLogger("edge_agent.scheduler").warning("scheduler warning")
    text = out.getvalue()
    assert "publisher detail" in text
    assert "scheduler warning" in text
    assert "scheduler chatter" not in text
    assert "asyncua chatter" not in text


def test_bad_levels_and_formats_are_named() -> None:
    with pytest.raises(ValueError, match=r"log level 'verbose' is not one of debug, info, warning, error, critical"):
        setup_logging(level="verbose")
    with pytest.raises(ValueError, match=r"log level of component 'pymodbus' 'loud'"):
        setup_logging(component_levels={"pymodbus": "loud"})
    with pytest.raises(ValueError, match=r"log format 'xml' is not one of text, json"):
        setup_logging(fmt="xml")


def test_second_setup_replaces_the_handler() -> None:
    first = io.StringIO()
    setup_logging(stream=first)
    out = logged(fmt="json")
    logging.getLogger("edge_agent").info("once")
    assert first.getvalue() == ""
    assert len(out.getvalue().splitlines()) == 1


def test_journal_stream_gets_priorities_and_no_timestamps(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    with open(tmp_path / "journal", "w+", encoding="utf-8") as stream:
        info = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        setup_logging(stream=stream)
        logging.getLogger("edge_agent.publisher").warning("broker down")
        logging.getLogger("edge_agent.publisher").info("broker up")
        try:
            raise ValueError("bad frame")
        except ValueError:
            logging.getLogger("edge_agent.publisher").exception("decode failed")
        stream.seek(0)
        lines = stream.read().splitlines()
    assert lines[:3] == ["<4>edge_agent.publisher: broker down", "<6>edge_agent.publisher: broker up",
                         "<3>edge_agent.publisher: decode failed"]
    assert lines[3] == "<3>Traceback (most recent call last):"
    assert lines[-1] == "<3>ValueError: bad frame"
    assert all(line.startswith("<3>") for line in lines[2:])


def test_syslog_priorities_of_levels() -> None:
    got = [logging_setup.syslog_priority(level) for level in (5, 10, 20, 25, 30, 35, 40, 50, 60)]
    assert got == [7, 7, 6, 6, 4, 4, 3, 2, 2]


def test_other_streams_are_not_mistaken_for_the_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_STREAM", "1:2")
    with open(tmp_path / "log", "w+", encoding="utf-8") as stream:
        assert not logging_setup.stream_is_journal(stream)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connecting to mqtt://gw:hunter2@broker:1883", "connecting to mqtt://gw:***@broker:1883"),
        ("url=mqtts://gw-demo:p%40ss:w0rd@10.0.0.5:8883/x", "url=mqtts://gw-demo:***@10.0.0.5:8883/x"),
        ("password=hunter2 user=gw", "password=*** user=gw"),
        ("PASSWORD: hunter2", "PASSWORD: ***"),
        ("{'username': 'gw', 'password': 'correct horse'}", "{'username': 'gw', 'password': '***'}"),
        ('{"mqtt_password": "s3cr\\"et", "port": 1883}', '{"mqtt_password": "***", "port": 1883}'),
        ("api_key=AKIA1234&region=eu", "api_key=***&region=eu"),
        ("token: eyJhbGciOiJIUzI1NiJ9.e30.abc", "token: ***"),
        ("header Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "header Authorization: *** ***"),
        ("client_secret='x9x9x9'", "client_secret='***'"),
        (f"loaded key {PEM_KEY} ok", "loaded key -----BEGIN EC PRIVATE KEY----- *** ok"),
        ("cut -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "cut -----BEGIN PRIVATE KEY----- ***"),
        # references to secrets, and ordinary words, stay readable
        ("password_file=/etc/edge-agent/mqtt.pass", "password_file=/etc/edge-agent/mqtt.pass"),
        ("password_env: MQTT_PASSWORD", "password_env: MQTT_PASSWORD"),
        ("max_tokens=5 passed=3 bypass=1", "max_tokens=5 passed=3 bypass=1"),
        ("mqtt://127.0.0.1:1883 connected", "mqtt://127.0.0.1:1883 connected"),
        ("opc.tcp://plc:4840/ua/server", "opc.tcp://plc:4840/ua/server"),
    ],
)
def test_redaction_rules(text: str, expected: str) -> None:
    assert redact(text) == expected


SECRET_CHARS = string.ascii_letters + string.digits + "-._~!$*+%"


@given(st.text(alphabet=SECRET_CHARS, min_size=4, max_size=40))
def test_any_url_password_is_masked(password: str) -> None:
    masked = redact(f"broker mqtt://gw:{password}@broker.local:1883 down")
    assert masked == "broker mqtt://gw:***@broker.local:1883 down"


@given(st.text(alphabet=SECRET_CHARS + "=", min_size=1, max_size=40))
def test_any_assigned_password_is_masked(password: str) -> None:
    assert redact(f"password={password}, user=gw") == "password=***, user=gw"
    assert redact(f'{{"password": "{password}"}}') == '{"password": "***"}'


def test_secrets_never_reach_the_log_in_any_format() -> None:
    """End to end: message args, extras, exception text and registered literals, in text and JSON."""
    password = "Zq9-unique-hunter2"
    for fmt in ("text", "json"):
        out = logged(fmt=fmt, secrets=[password])
        log = logging.getLogger("edge_agent.publisher")
        log.info("connecting to %s", f"mqtt://gw:{password}@broker:1883")
        log.info("read the password from file: %s", password)
        log.warning("retrying", extra={"url": f"mqtts://gw:{password}@broker:8883"})
        try:
            raise ConnectionError(f"auth failed for password={password}")
        except ConnectionError:
            log.exception("connect failed")
        logging.getLogger("paho.mqtt").error("CONNACK refused %r", {"password": password})
        text = out.getvalue()
        assert password not in text, text
        assert text.count("***") >= 5
        assert "ConnectionError" in text


def test_extra_fields_of_any_type_are_masked_in_json_lines() -> None:
    """Non-text ``extra=`` values (dicts, lists, objects) and extras named after a secret never carry one."""
    password = "Zq9-unique-hunter2"
    out = logged(fmt="json")

    class Endpoint:
        def __str__(self) -> str:
            return f"opc.tcp://ua:{password}@plc:4840"

    logging.getLogger("edge_agent").warning(
        "connect failed", extra={"settings": {"url": f"mqtt://gw:{password}@broker", "port": 1883},
                                 "tries": [f"password={password}"], "endpoint": Endpoint(),
                                 "api_key": password, "retries": 3, "device": "plc-1"})
    line = json.loads(out.getvalue())
    assert password not in out.getvalue(), line
    assert line["api_key"] == "***" and "gw:***@broker" in line["settings"]
    assert line["retries"] == 3 and line["device"] == "plc-1"  # plain values stay as they were


def test_registered_secret_is_masked_anywhere() -> None:
    out = logged()
    register_secret("tok")  # too short to mask safely: ignored
    register_secret("k8s-token-77f3a9")
    logging.getLogger("edge_agent").info("value k8s-token-77f3a9 and tokens")
    assert out.getvalue().rstrip().endswith("edge_agent: value *** and tokens")


def test_a_bad_format_string_still_gives_a_line() -> None:
    record = logging.LogRecord("edge_agent", logging.INFO, __file__, 1, "%d devices at password=%s",
                               ("three", "hunter2"), None)
    assert logging_setup.RedactionFilter().filter(record)
    assert "bad log format" in record.getMessage()
    assert "hunter2" not in record.getMessage()
