"""Secure OPC UA sessions (Basic256Sha256 Sign / SignAndEncrypt, user login) with generated certificates."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509

from drivers.base import CommsState, DriverError, Quality
from drivers.opcua.certs import generate_self_signed_cert
from drivers.opcua.client import OpcUaDriver
from drivers.opcua.spec import OpcUaDeviceSpec, OpcUaPointSpec
from drivers.sim.node_map import node_def
from drivers.sim.opcua_server import APPLICATION_URI, OpcUaSimServer, SimServerSecurity
from drivers.sim.plant import MOTOR_SERIAL, Plant

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CLIENT_URI = "urn:edge-agent:test-gateway"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    generate_self_signed_cert(d / "server.der", d / "server-key.pem", APPLICATION_URI, "127.0.0.1")
    generate_self_signed_cert(d / "client.der", d / "client-key.pem", CLIENT_URI, "localhost")
    return d


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def secure_sim(pki: Path) -> AsyncIterator[OpcUaSimServer]:
    security = SimServerSecurity(
        certificate=pki / "server.der",
        private_key=pki / "server-key.pem",
        policies=("Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt"),
        username="operator",
        password="s3cret",
    )
    server = OpcUaSimServer(Plant(seed=2), security=security, update_interval_s=0.2)
    await server.start()
    yield server
    await server.stop()


def secure_spec(sim: OpcUaSimServer, pki: Path, mode: str, **kw: object) -> OpcUaDeviceSpec:
    args: dict[str, object] = {
        "name": "secure-plc",
        "endpoint": sim.endpoint,
        "security_policy": "Basic256Sha256",
        "security_mode": mode,
        "certificate": str(pki / "client.der"),
        "private_key": str(pki / "client-key.pem"),
        "application_uri": CLIENT_URI,
        "username": "operator",
        "password": "s3cret",
        "timeout_s": 3.0,
        "points": (
            OpcUaPointSpec(name="serial", node=node_def("Motor.Serial").node_id),
            OpcUaPointSpec(name="speed", node=node_def("Motor.Speed").node_id),
        ),
    }
    args.update(kw)
    return OpcUaDeviceSpec(**args)  # type: ignore[arg-type]


async def test_generated_certificate_carries_uri_and_host(pki: Path) -> None:
    cert = x509.load_der_x509_certificate((pki / "client.der").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert CLIENT_URI in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert (pki / "client-key.pem").stat().st_mode & 0o777 == 0o600
    server = x509.load_der_x509_certificate((pki / "server.der").read_bytes())
    ips = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in ips.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_secure_session_reads_values(secure_sim: OpcUaSimServer, pki: Path, mode: str) -> None:
    driver = OpcUaDriver(secure_spec(secure_sim, pki, mode))
    await driver.connect()
    try:
        assert driver._client is not None
        assert driver._client.security_policy.Mode.name == mode
        result = await driver.read()
    finally:
        await driver.close()
    by = {r.point: r for r in result.readings}
    assert by["serial"].quality is Quality.GOOD and by["serial"].value == MOTOR_SERIAL
    assert by["speed"].quality is Quality.GOOD
    assert driver.comms.state is CommsState.DOWN  # closed


async def test_pinned_server_certificate_is_used(secure_sim: OpcUaSimServer, pki: Path) -> None:
    driver = OpcUaDriver(secure_spec(secure_sim, pki, "SignAndEncrypt",
                                     server_certificate=str(pki / "server.der")))
    await driver.connect()
    try:
        result = await driver.read()
    finally:
        await driver.close()
    assert all(r.quality is Quality.GOOD for r in result.readings)


async def test_server_certificate_trust_list(secure_sim: OpcUaSimServer, pki: Path, tmp_path: Path) -> None:
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / "server.der").write_bytes((pki / "server.der").read_bytes())
    driver = OpcUaDriver(secure_spec(secure_sim, pki, "Sign", server_certificate=str(trusted)))
    await driver.connect()
    try:
        result = await driver.read()
    finally:
        await driver.close()
    assert all(r.quality is Quality.GOOD for r in result.readings)

    strangers = tmp_path / "strangers"
    strangers.mkdir()
    (strangers / "client.der").write_bytes((pki / "client.der").read_bytes())  # not the server's
    driver = OpcUaDriver(secure_spec(secure_sim, pki, "Sign", server_certificate=str(strangers)))
    with pytest.raises(DriverError, match="is not in the trust list"):
        await driver.connect()
    await driver.close()


async def test_wrong_password_is_refused_with_a_clear_error(secure_sim: OpcUaSimServer, pki: Path) -> None:
    driver = OpcUaDriver(secure_spec(secure_sim, pki, "SignAndEncrypt", password="wrong"))
    with pytest.raises(DriverError, match=re.escape(f"secure-plc: cannot connect to {secure_sim.endpoint}")):
        await driver.connect()
    assert driver.comms.state is CommsState.DOWN and driver.comms.last_error
    await driver.close()


async def test_unsecured_client_is_refused_by_a_secure_only_server(secure_sim: OpcUaSimServer) -> None:
    spec = OpcUaDeviceSpec(name="open-plc", endpoint=secure_sim.endpoint, timeout_s=3.0,
                           points=(OpcUaPointSpec(name="speed", node=node_def("Motor.Speed").node_id),))
    driver = OpcUaDriver(spec)
    with pytest.raises(DriverError, match="open-plc: cannot connect"):
        await driver.connect()
    await driver.close()
