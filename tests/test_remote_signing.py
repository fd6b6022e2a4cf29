"""Ed25519 envelopes: key files, sign/verify, tamper and wrong-key detection, replay protection."""

from __future__ import annotations

import base64
import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.remote.errors import KeyFileError, PayloadRefused, ReplayRefused, SignatureRefused
from edge_agent.remote.signing import (
    ReplayGuard,
    canonical_json,
    generate_keypair,
    load_private_key,
    load_public_key,
    new_envelope,
    parse_push,
    sign_envelope,
    unsigned_payload,
    verify_push,
)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub = tmp_path / "owner.key", tmp_path / "owner.pub"
    generate_keypair(priv, pub)
    return priv, pub


def test_keypair_files_are_pem_and_private_key_is_0600(keys: tuple[Path, Path]) -> None:
    priv, pub = keys
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert priv.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    load_private_key(priv)
    load_public_key(pub)


def test_keygen_refuses_to_overwrite(keys: tuple[Path, Path]) -> None:
    with pytest.raises(KeyFileError, match="already exists"):
        generate_keypair(*keys)


def test_missing_or_wrong_key_files_are_explained(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(KeyFileError, match=r"does not exist.*keygen"):
        load_public_key(tmp_path / "nope.pub")
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_public_key(keys[0])


def test_canonical_json_is_key_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1})
    assert canonical_json({"a": 1}) == b'{"a":1}'


def test_signed_push_verifies(keys: tuple[Path, Path]) -> None:
    env = new_envelope("set", "gw-1", "agent: {id: gw-1}\n", version=5, by="alice")
    wire = sign_envelope(env, load_private_key(keys[0]))
    push = parse_push(json.loads(wire))
    assert push.envelope == env
    verify_push(push, load_public_key(keys[1]))


def test_tampered_body_fails(keys: tuple[Path, Path]) -> None:
    env = new_envelope("set", "gw-1", "a: 1\n", version=5)
    message = json.loads(sign_envelope(env, load_private_key(keys[0])))
    message["envelope"]["body"] = "a: 2\n"
    with pytest.raises(SignatureRefused, match="does not verify"):
        verify_push(parse_push(message), load_public_key(keys[1]))


def test_other_key_is_named_in_the_error(tmp_path: Path, keys: tuple[Path, Path]) -> None:
    generate_keypair(tmp_path / "mallory.key", tmp_path / "mallory.pub")
    env = new_envelope("set", "gw-1", "a: 1\n")
    push = parse_push(json.loads(sign_envelope(env, load_private_key(tmp_path / "mallory.key"))))
    with pytest.raises(SignatureRefused, match=r"signed with key .* the agent trusts key"):
        verify_push(push, load_public_key(keys[1]))


def test_unsigned_push_is_refused_by_verify(keys: tuple[Path, Path]) -> None:
    push = parse_push(json.loads(unsigned_payload(new_envelope("set", "gw-1", "a: 1\n"))))
    assert push.signature is None
    with pytest.raises(SignatureRefused, match="requires signed configs"):
        verify_push(push, load_public_key(keys[1]))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.pop("envelope"), "'envelope' must be a JSON object"),
        (lambda m: m["envelope"].update(kind="delete"), "envelope.kind"),
        (lambda m: m["envelope"].update(version="7"), "envelope.version must be a int"),
        (lambda m: m["envelope"].update(version=True), "envelope.version must be a int"),
        (lambda m: m["envelope"].update(nonce="x"), "nonce must be 8 to 128"),
        (lambda m: m.update(signature="***"), "not valid base64"),
    ],
)
def test_malformed_envelopes_name_the_field(mutate: object, message: str, keys: tuple[Path, Path]) -> None:
    wire = json.loads(sign_envelope(new_envelope("set", "gw-1", "a: 1\n"), load_private_key(keys[0])))
    mutate(wire)  # type: ignore[operator]
    with pytest.raises((PayloadRefused, SignatureRefused), match=message):
        parse_push(wire)


def test_signature_is_64_bytes(keys: tuple[Path, Path]) -> None:
    wire = json.loads(sign_envelope(new_envelope("patch", "gw-1", "{}"), load_private_key(keys[0])))
    assert len(base64.b64decode(wire["signature"])) == 64


def test_replay_guard_refuses_old_versions_and_seen_nonces_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "replay.json"
    guard = ReplayGuard(state, "gw-1")
    first = new_envelope("set", "gw-1", "a: 1\n", version=10)
    guard.check(first)
    guard.record(first)
    with pytest.raises(ReplayRefused, match=r"nonce .* already used"):
        guard.check(first)
    with pytest.raises(ReplayRefused, match=r"not newer than the last accepted version 10.*at least 11"):
        guard.check(new_envelope("set", "gw-1", "a: 1\n", version=9))
    restarted = ReplayGuard(state, "gw-1")
    assert restarted.last_version == 10
    with pytest.raises(ReplayRefused, match="already used"):
        restarted.check(replace(first, version=11))
    restarted.check(new_envelope("set", "gw-1", "a: 1\n", version=11))
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_replay_guard_refuses_envelopes_for_another_agent(tmp_path: Path) -> None:
    with pytest.raises(SignatureRefused, match="addressed to agent 'gw-2'"):
        ReplayGuard(tmp_path / "r.json", "gw-1").check(new_envelope("set", "gw-2", "a: 1\n"))


def test_corrupt_replay_state_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("{not json")
    with pytest.raises(KeyFileError, match="unreadable"):
        ReplayGuard(tmp_path / "r.json", "gw-1")
