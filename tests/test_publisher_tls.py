"""The publisher over TLS (mqtts://) against Mosquitto with a CA and certificates generated in the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.mqtt import PublisherSettings, TlsSettings
from edge_agent.outbox import Outbox
from edge_agent.publisher import Publisher, PublisherState
from edge_agent.records import Priority

try:
    from tests.mqtt_support import Mosquitto, MqttCollector, mosquitto_available, poll_until
except ImportError:
    from mqtt_support import Mosquitto, MqttCollector, mosquitto_available, poll_until  # type: ignore[no-redef]

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_thread_leak")]

PREFIX = "edge/tls/gw"


@dataclass
class Pki:
    ca_file: Path
    other_ca_file: Path
    server_cert: Path
    server_key: Path
    misnamed_cert: Path  # signed by the right CA, but for another host name
    misnamed_key: Path
    ca_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn)).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _server_cert(ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                 names: list[x509.GeneralName], *, expired: bool = False,
                 ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC) - (dt.timedelta(days=3) if expired else dt.timedelta(0))
    cert = (x509.CertificateBuilder().subject_name(_name("broker")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    d = tmp_path / "pki"
    d.mkdir()
    ca_key, ca_cert = _ca("edge-agent test CA")
    _, other_cert = _ca("some other CA")
    key, cert = _server_cert(ca_key, ca_cert, [x509.DNSName("localhost"),
                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    bad_key, bad_cert = _server_cert(ca_key, ca_cert, [x509.DNSName("broker.elsewhere.example")])
    pki = Pki(d / "ca.pem", d / "other-ca.pem", d / "server.pem", d / "server.key", d / "misnamed.pem",
              d / "misnamed.key", d / "ca.key")
    _write_key(ca_key, pki.ca_key)
    pki.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    pki.other_ca_file.write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    pki.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, pki.server_key)
    pki.misnamed_cert.write_bytes(bad_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(bad_key, pki.misnamed_key)
    return pki


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    if not mosquitto_available():
        pytest.skip("mosquitto broker not installed; TLS test skipped")
    broker = Mosquitto(tmp_path / "broker", listener_config=(
        f"cafile {pki.ca_file}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\ntls_version tlsv1.2"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


async def test_records_are_delivered_over_tls(tmp_path: Path, pki: Pki, tls_broker: Mosquitto) -> None:
    assert tls_broker.url.startswith("mqtts://127.0.0.1:")
    col = MqttCollector(tls_broker.host, tls_broker.port, f"{PREFIX}/#")
    col.client.tls_set(ca_certs=str(pki.ca_file))
    col.start()
    ob = await Outbox.open(tmp_path / "o.sqlite", 10**8, None)
    settings = PublisherSettings(url=tls_broker.url, client_id="gw", topic_prefix=PREFIX,
                                 tls=TlsSettings(ca_file=str(pki.ca_file)))
    pub = Publisher(settings, ob, lambda: {"state": "online"})
    try:
        await pub.start()
        assert await pub.wait_connected(30), pub.last_error
        await ob.put_many([(f"{PREFIX}/alerts/p", f"{i}".encode(), Priority.ALERT) for i in range(50)])
        await col.wait_until(lambda m: len([t for t, _ in m if "/alerts/" in t]) >= 50, 30)
        await poll_until(lambda: ob.stats()["records"] == 0, 30, "outbox emptied")
    finally:
        await pub.stop(5)
        await ob.close()
        col.close()
    assert [p for t, p in col.snapshot() if "/alerts/" in t] == [f"{i}".encode() for i in range(50)]


async def test_broker_signed_by_another_ca_is_refused(tmp_path: Path, pki: Pki, tls_broker: Mosquitto) -> None:
    ob = await Outbox.open(tmp_path / "o.sqlite", 10**8, None)
    settings = PublisherSettings(url=tls_broker.url, client_id="gw", topic_prefix=PREFIX,
                                 tls=TlsSettings(ca_file=str(pki.other_ca_file)))
    pub = Publisher(settings, ob, lambda: {"state": "online"})
    try:
        await ob.put(f"{PREFIX}/alerts/p", b"secret", Priority.ALERT)
        await pub.start()
        await poll_until(lambda: pub.stats()["connect_failures"] >= 1, 30, "a failed TLS handshake")
        assert pub.state in (PublisherState.BACKOFF, PublisherState.CONNECTING)
        assert not pub.connected
        assert "certificate verify failed" in (pub.last_error or "") and "ca_file" in (pub.last_error or "")
        assert ob.stats()["records"] == 1  # nothing left the outbox
    finally:
        await pub.stop(1)
        await ob.close()


def test_tls_settings_name_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"mqtt\.tls\.ca_file: file .*nope\.pem"):
        TlsSettings(ca_file=str(tmp_path / "nope.pem"))


@pytest.mark.parametrize("verify_hostname", [True, False])
async def test_certificate_for_another_host_needs_verify_hostname_off(
        tmp_path: Path, pki: Pki, verify_hostname: bool) -> None:
    if not mosquitto_available():
        pytest.skip("mosquitto broker not installed; TLS test skipped")
    broker = Mosquitto(tmp_path / "broker", listener_config=(
        f"cafile {pki.ca_file}\ncertfile {pki.misnamed_cert}\nkeyfile {pki.misnamed_key}"))
    broker.start()
    ob = await Outbox.open(tmp_path / "o.sqlite", 10**8, None)
    settings = PublisherSettings(url=broker.url, client_id="gw", topic_prefix=PREFIX,
                                 tls=TlsSettings(ca_file=str(pki.ca_file), verify_hostname=verify_hostname))
    pub = Publisher(settings, ob, lambda: {"state": "online"})
    try:
        await pub.start()
        if verify_hostname:
            await poll_until(lambda: pub.stats()["connect_failures"] >= 1, 30, "a refused certificate")
            assert "certificate verify failed" in (pub.last_error or "")
            assert not pub.connected
        else:  # the chain is still verified against the CA; only the name check is off
            assert await pub.wait_connected(30), pub.last_error
    finally:
        await pub.stop(1)
        await ob.close()
        broker.kill()


async def test_expired_broker_certificate_is_refused_with_a_clear_error(tmp_path: Path, pki: Pki) -> None:
    """A broker whose certificate (from the right CA, for the right name) has expired is refused."""
    if not mosquitto_available():
        pytest.skip("mosquitto broker not installed; TLS test skipped")
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key, cert = _server_cert(ca_key, ca_cert, [x509.DNSName("localhost"),
                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))], expired=True)
    cert_path, key_path = tmp_path / "expired.pem", tmp_path / "expired.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    broker = Mosquitto(tmp_path / "broker", listener_config=(
        f"cafile {pki.ca_file}\ncertfile {cert_path}\nkeyfile {key_path}"))
    broker.start()
    ob = await Outbox.open(tmp_path / "o.sqlite", 10**8, None)
    settings = PublisherSettings(url=broker.url, client_id="gw", topic_prefix=PREFIX,
                                 tls=TlsSettings(ca_file=str(pki.ca_file)))
    pub = Publisher(settings, ob, lambda: {"state": "online"})
    try:
        await ob.put(f"{PREFIX}/alerts/p", b"secret", Priority.ALERT)
        await pub.start()
        await poll_until(lambda: pub.stats()["connect_failures"] >= 1, 30, "a refused expired certificate")
        assert not pub.connected
        assert "certificate has expired" in (pub.last_error or ""), pub.last_error
        assert ob.stats()["records"] == 1  # nothing left the outbox
    finally:
        await pub.stop(1)
        await ob.close()
        broker.kill()
