"""Ed25519-signed config envelopes: key pairs on disk, canonical signing, verification, replay protection.

Wire form of a signed push (the MQTT payload, JSON)::

    {"envelope": {"v": 1, "kind": "set" | "patch", "agent": "gw-demo", "version": 1795430400000,
                  "nonce": "9f2c…", "issued_at": 1795430400000, "by": "alice", "label": "v1.3",
                  "body": "<YAML text or JSON merge patch text>"},
     "signature": "<base64 Ed25519 signature of canonical_json(envelope)>",
     "key_id": "<first 16 hex digits of sha256(raw public key)>"}

``version`` is a monotonic integer (the CLI uses epoch milliseconds by default so engineers need no
counter); the agent refuses any version not greater than the last one it accepted, and any nonce it has
already seen. The same envelope without ``signature`` is an unsigned push carrying a label and author.

``cryptography`` (about 7 MB of RSS) is imported only by the functions that handle keys and signatures,
so an agent without ``remote.public_key_file`` never loads it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edge_agent.remote.atomic_file import write_atomic
from edge_agent.remote.errors import KeyFileError, PayloadRefused, ReplayRefused, SignatureRefused

if TYPE_CHECKING:  # loaded at run time only where keys are handled (see the module docstring)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ENVELOPE_VERSION = 1
EnvelopeKind = Literal["set", "patch"]


@dataclass(frozen=True)
class Envelope:
    """One config push: what to apply (``body``), for which agent, and its replay-protection fields."""

    kind: EnvelopeKind
    agent: str
    version: int
    nonce: str
    issued_at_ms: int
    body: str
    by: str = ""
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The JSON object that is signed (field names as on the wire)."""
        return {
            "v": ENVELOPE_VERSION,
            "kind": self.kind,
            "agent": self.agent,
            "version": self.version,
            "nonce": self.nonce,
            "issued_at": self.issued_at_ms,
            "by": self.by,
            "label": self.label,
            "body": self.body,
        }


@dataclass(frozen=True)
class ParsedPush:
    """A push as received: the envelope, and whether (and with which key id) it carried a signature."""

    envelope: Envelope
    signature: bytes | None
    key_id: str


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON bytes (sorted keys, no spaces): the exact bytes that are signed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def new_envelope(kind: EnvelopeKind, agent: str, body: str, *, version: int | None = None, by: str = "",
                 label: str = "") -> Envelope:
    """Build an envelope with a fresh random nonce; ``version`` defaults to the current epoch milliseconds."""
    now_ms = int(time.time() * 1000)
    return Envelope(kind=kind, agent=agent, version=now_ms if version is None else version,
                    nonce=secrets.token_hex(16), issued_at_ms=now_ms, body=body, by=by, label=label)


# --- keys -------------------------------------------------------------------------------------------


def generate_keypair(priv_path: Path | str, pub_path: Path | str, *, overwrite: bool = False) -> str:
    """Write a new Ed25519 key pair as PEM files (private key mode 0600); return the public key id.

    Refuses to replace an existing file unless ``overwrite`` is true, so a key is never lost by accident.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    priv, pub = Path(priv_path), Path(pub_path)
    for path in (priv, pub):
        if path.exists() and not overwrite:
            raise KeyFileError(f"{path} already exists; choose another path or delete it first")
    key = Ed25519PrivateKey.generate()
    priv_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    pub_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
    write_atomic(priv, priv_pem, mode=0o600)
    write_atomic(pub, pub_pem, mode=0o644)
    return key_id(key.public_key())


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    """Read an unencrypted PEM Ed25519 private key (as written by :func:`generate_keypair`)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_key_file(Path(path), "private")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc}); "
                           "create one with `edge-agent remote keygen PRIV PUB`") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: the key is {type(key).__name__}, not Ed25519; "
                           "create one with `edge-agent remote keygen PRIV PUB`")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """Read a PEM Ed25519 public key (as written by :func:`generate_keypair`)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_key_file(Path(path), "public")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({exc}); use the PUB file written by "
                           "`edge-agent remote keygen`") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: the key is {type(key).__name__}, not Ed25519")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint of a public key: the first 16 hex digits of sha256 of its 32 raw bytes."""
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _read_key_file(path: Path, which: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"{which} key file {path} does not exist; create a pair with "
                           "`edge-agent remote keygen PRIV PUB`") from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {which} key file {path}: {exc.strerror}") from exc


# --- sign / parse / verify --------------------------------------------------------------------------


def sign_envelope(envelope: Envelope, private_key: Ed25519PrivateKey) -> bytes:
    """Return the wire payload (JSON bytes) of ``envelope`` signed with ``private_key``."""
    signature = private_key.sign(canonical_json(envelope.to_dict()))
    return canonical_json({
        "envelope": envelope.to_dict(),
        "signature": base64.b64encode(signature).decode("ascii"),
        "key_id": key_id(private_key.public_key()),
    })


def unsigned_payload(envelope: Envelope) -> bytes:
    """Return the wire payload of an unsigned envelope (label and author, no authenticity)."""
    return canonical_json({"envelope": envelope.to_dict()})


def parse_push(message: dict[str, Any]) -> ParsedPush:
    """Check the shape of a decoded push (``{"envelope": …, "signature"?: …}``) and return it typed.

    Raises :class:`PayloadRefused` naming the first field that is missing or of the wrong type.
    """
    env = message.get("envelope")
    if not isinstance(env, dict):
        raise PayloadRefused("'envelope' must be a JSON object")
    if env.get("v") != ENVELOPE_VERSION:
        raise PayloadRefused(f"envelope.v must be {ENVELOPE_VERSION}, got {env.get('v')!r}")
    kind = env.get("kind")
    if kind not in ("set", "patch"):
        raise PayloadRefused(f"envelope.kind must be 'set' or 'patch', got {kind!r}")
    fields: dict[str, type] = {"agent": str, "version": int, "nonce": str, "issued_at": int, "body": str,
                               "by": str, "label": str}
    for name, typ in fields.items():
        value = env.get(name, "" if name in ("by", "label") else None)
        if not isinstance(value, typ) or isinstance(value, bool):
            raise PayloadRefused(f"envelope.{name} must be a {typ.__name__}, got {type(value).__name__}")
    if not 8 <= len(env["nonce"]) <= 128:
        raise PayloadRefused("envelope.nonce must be 8 to 128 characters")
    signature: bytes | None = None
    raw_sig = message.get("signature")
    if raw_sig is not None:
        if not isinstance(raw_sig, str):
            raise SignatureRefused("'signature' must be a base64 string")
        try:
            signature = base64.b64decode(raw_sig, validate=True)
        except (binascii.Error, ValueError):
            raise SignatureRefused("'signature' is not valid base64") from None
    raw_key_id = message.get("key_id", "")
    envelope = Envelope(kind=kind, agent=env["agent"], version=env["version"], nonce=env["nonce"],
                        issued_at_ms=env["issued_at"], body=env["body"], by=env.get("by", ""),
                        label=env.get("label", ""))
    return ParsedPush(envelope=envelope, signature=signature,
                      key_id=raw_key_id if isinstance(raw_key_id, str) else "")


def verify_push(push: ParsedPush, public_key: Ed25519PublicKey) -> None:
    """Raise :class:`SignatureRefused` unless ``push`` carries a valid signature by ``public_key``."""
    from cryptography.exceptions import InvalidSignature

    if push.signature is None:
        raise SignatureRefused("this agent requires signed configs (remote.require_signature: true); "
                               "push with `edge-agent remote config push --sign PRIVATE_KEY`")
    try:
        public_key.verify(push.signature, canonical_json(push.envelope.to_dict()))
    except InvalidSignature:
        expected = key_id(public_key)
        hint = (f"it was signed with key {push.key_id}, the agent trusts key {expected}"
                if push.key_id and push.key_id != expected else "the payload was altered or the key is wrong")
        raise SignatureRefused(f"signature does not verify: {hint}") from None


# --- replay protection ------------------------------------------------------------------------------


class ReplayGuard:
    """Refuses signed pushes whose version is not newer than the last accepted one, or whose nonce was seen.

    State (last version, recent nonces) is persisted atomically as JSON in ``state_path`` so a restart
    does not reopen the door to replays.
    """

    def __init__(self, state_path: Path | str, agent_id: str, *, nonce_cache_size: int = 1024) -> None:
        self._path = Path(state_path)
        self._agent_id = agent_id
        self._nonces: deque[str] = deque(maxlen=nonce_cache_size)
        self.last_version = 0
        self._load()

    def check(self, envelope: Envelope) -> None:
        """Raise :class:`ReplayRefused` (or :class:`SignatureRefused` for another agent) without recording."""
        if envelope.agent != self._agent_id:
            raise SignatureRefused(f"the envelope is addressed to agent {envelope.agent!r}, this is agent "
                                   f"{self._agent_id!r}; push to the right agent")
        if envelope.nonce in self._nonces:
            raise ReplayRefused(f"nonce {envelope.nonce} was already used: this push is a replay")
        if envelope.version <= self.last_version:
            raise ReplayRefused(f"version {envelope.version} is not newer than the last accepted version "
                                f"{self.last_version}: a replay of an old config, or push with a higher "
                                f"--version (at least {self.last_version + 1})")

    def record(self, envelope: Envelope) -> None:
        """Remember ``envelope``'s nonce and raise the version floor to its version (persisted)."""
        self._nonces.append(envelope.nonce)
        self.last_version = max(self.last_version, envelope.version)
        state = {"agent": self._agent_id, "last_version": self.last_version, "nonces": list(self._nonces)}
        write_atomic(self._path, canonical_json(state), mode=0o600)

    def _load(self) -> None:
        try:
            state = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # A damaged replay file must not silently reset protection: refuse to start instead.
            raise KeyFileError(f"replay state {self._path} is unreadable ({exc}); inspect it, then delete it "
                               "to reset (old signed configs could then be replayed once)") from exc
        self.last_version = int(state.get("last_version", 0))
        self._nonces.extend(str(n) for n in state.get("nonces", []))


def fingerprint_file(path: Path | str) -> str:
    """Key id of the public key stored in ``path`` (for status pages and error messages)."""
    return key_id(load_public_key(path))


__all__ = [
    "Envelope", "ParsedPush", "ReplayGuard", "canonical_json", "fingerprint_file", "generate_keypair",
    "key_id", "load_private_key", "load_public_key", "new_envelope", "parse_push", "sign_envelope",
    "unsigned_payload", "verify_push",
]
