"""``edge-agent remote`` end to end: the CLI (paho in its own thread) against a RemoteService on Mosquitto."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.cli import main as edge_agent_main
from edge_agent.remote.cli import main
from edge_agent.remote.history import config_hash
from edge_agent.remote.service import RemoteSettings
from edge_agent.remote.signing import generate_keypair

try:
    from tests.mqtt_support import Mosquitto, mosquitto_available
    from tests.test_remote_support import PREFIX, Harness
except ImportError:  # tests/ is not a package
    from mqtt_support import Mosquitto, mosquitto_available  # type: ignore[no-redef]
    from test_remote_support import PREFIX, Harness  # type: ignore[no-redef]

pytestmark = pytest.mark.integration


async def run_cli(*argv: str) -> int:
    """Run the CLI in a worker thread (it blocks on paho) so the agent's event loop keeps serving."""
    return await asyncio.to_thread(main, list(argv))


async def announce(h: Harness) -> None:
    """The retained birth message the agent's publisher would send."""
    status = {"agent": "gw-1", "state": "online", "version": "0.1.0", "config_hash": config_hash(h.original_text)}
    await asyncio.to_thread(h.session.publish, f"{PREFIX}/status", json.dumps(status).encode(), retain=True)


def test_keygen_writes_a_usable_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = tmp_path / "k.key", tmp_path / "k.pub"
    assert edge_agent_main(["remote", "keygen", str(priv), str(pub)]) == 0
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert "key id" in capsys.readouterr().out
    assert main(["keygen", str(priv), str(pub)]) == 1
    assert "already exists" in capsys.readouterr().err


async def test_ls_ping_and_unknown_agent(tmp_path: Path, mosquitto: Mosquitto,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        await announce(h)
        assert await run_cli("ls", "--broker", mosquitto.url) == 0
        listing = capsys.readouterr().out
        assert await run_cli("--broker", mosquitto.url, "cmd", "gw-1", "ping") == 0
        ping = capsys.readouterr().out
        assert await run_cli("cmd", PREFIX, "ping", "--broker", mosquitto.url, "--json") == 0
        ping_json = json.loads(capsys.readouterr().out)
        assert await run_cli("cmd", "gw-9", "ping", "--broker", mosquitto.url) == 1
        unknown = capsys.readouterr().err
        assert await run_cli("cmd", "gw-1", "audit", "count=2", "--broker", mosquitto.url, "--json") == 0
        audit = json.loads(capsys.readouterr().out)
    assert "gw-1" in listing and "online" in listing and PREFIX in listing
    assert ping.startswith("pong from gw-1 (edge-agent 0.1.0)")
    assert ping_json["ok"] is True and ping_json["result"]["agent"] == "gw-1"
    assert "agent 'gw-9' not found" in unknown and "gw-1 (edge/lab/gw-1)" in unknown
    assert [e["name"] for e in audit["result"]["events"]] == ["ping", "ping"]


async def test_push_invalid_shows_the_agents_errors(tmp_path: Path, mosquitto: Mosquitto,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        await announce(h)
        bad = tmp_path / "bad.yaml"
        bad.write_text(h.original_text.replace("high: 80", "high: hot"))
        code = await run_cli("config", "push", "gw-1", str(bad), "--broker", mosquitto.url)
    err = capsys.readouterr().err
    assert code == 2
    assert "config REJECTED" in err and "config/set:24: rules[0].high:" in err


async def test_push_signed_wait_patch_and_get(tmp_path: Path, mosquitto: Mosquitto,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    priv, pub = tmp_path / "owner.key", tmp_path / "owner.pub"
    generate_keypair(priv, pub)
    settings = RemoteSettings(require_signature=True, public_key_file=pub, replay_state_file=tmp_path / "r.json",
                              confirm_window_s=2.0, confirm_interval_s=0.2, config_rate_per_min=600,
                              config_burst=50)
    async with Harness(tmp_path, mosquitto.url, settings=settings, with_health=True) as h:
        await announce(h)
        new = tmp_path / "new.yaml"
        new.write_text(h.original_text.replace("high: 80", "high: 88"))
        common = ("--broker", mosquitto.url, "--timeout", "30")
        unsigned = await run_cli("config", "push", "gw-1", str(new), *common)
        unsigned_err = capsys.readouterr().err
        signed = await run_cli("config", "push", "gw-1", str(new), "--sign", str(priv), "--wait",
                               "--label", "summer", *common)
        signed_out = capsys.readouterr().out
        patch = tmp_path / "patch.json"
        patch.write_text(json.dumps({"rules": [{"point": "plc/temp", "high": 91}]}))
        patched = await run_cli("config", "push", "gw-1", str(patch), "--patch", "--sign", str(priv), *common)
        patched_out = capsys.readouterr().out
        dead = tmp_path / "dead.yaml"
        dead.write_text(h.applier.active_text().replace(mosquitto.url, "mqtt://127.0.0.1:1"))
        rolled = await run_cli("config", "push", "gw-1", str(dead), "--sign", str(priv), "--wait", *common)
        rolled_err = capsys.readouterr().err
        got = await run_cli("config", "get", "gw-1", *common)
        got_out = capsys.readouterr().out
    assert unsigned == 2 and "requires signed configs" in unsigned_err
    assert signed == 0 and "config accepted" in signed_out and "confirmed healthy" in signed_out
    assert "gw-1: applied; confirming health for 2 s …" in signed_out
    assert patched == 0 and "config confirming" in patched_out  # without --wait: the first answer only
    assert rolled == 1 and "config ROLLED BACK" in rolled_err and "unreachable" in rolled_err
    assert got == 0 and "high: 91" in got_out and got_out.startswith("# gw-1 (edge/lab/gw-1): config ")
    assert h.applier.active_data()["rules"] == [{"point": "plc/temp", "high": 91}]


def write_tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge-agent test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_mosquitto(tmp_path: Path) -> Iterator[tuple[Mosquitto, Path]]:
    """Mosquitto with a TLS-only listener on 127.0.0.1, and the CA file that verifies it."""
    if not mosquitto_available():
        pytest.skip("mosquitto broker not installed")
    ca, cert, key = write_tls_material(tmp_path / "tls")
    broker = Mosquitto(tmp_path / "mosquitto-tls", listener_config=f"cafile {ca}\ncertfile {cert}\nkeyfile {key}")
    broker.start()
    try:
        yield broker, ca
    finally:
        broker.kill()


async def test_cli_over_tls_verifies_the_broker(tmp_path: Path, tls_mosquitto: tuple[Mosquitto, Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    broker, ca = tls_mosquitto
    assert broker.url.startswith("mqtts://")
    async with Harness(tmp_path, broker.url, ca_file=ca) as h:
        await announce(h)
        ok = await run_cli("cmd", "gw-1", "ping", "--broker", broker.url, "--ca-file", str(ca))
        out = capsys.readouterr().out
        unverified = await run_cli("cmd", "gw-1", "ping", "--broker", broker.url, "--timeout", "5")
        err = capsys.readouterr().err
    assert ok == 0 and out.startswith("pong from gw-1")
    assert unverified == 1 and "cannot reach the broker" in err and "CERTIFICATE_VERIFY_FAILED" in err


async def test_push_to_a_silent_agent_says_no_answer(tmp_path: Path, mosquitto: Mosquitto,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("agent: {id: gw-x, site: lab}\nmqtt: {url: mqtt://127.0.0.1:1883}\n")
    code = await run_cli("config", "push", "edge/lab/gw-x", str(config), "--broker", mosquitto.url, "--timeout", "1")
    err = capsys.readouterr().err
    assert code == 1 and "no answer from gw-x within 1 s" in err
    bad_arg = await run_cli("cmd", "edge/lab/gw-x", "read", "points", "--broker", mosquitto.url)
    assert bad_arg == 1 and "must look like key=value" in capsys.readouterr().err
