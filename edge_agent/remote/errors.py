"""Errors of the remote layer; each message says what was refused and how to fix it."""

from __future__ import annotations

from edge_agent.errors import EdgeAgentError


class RemoteError(EdgeAgentError):
    """A remote request was refused; ``code`` is a short machine-readable reason."""

    code = "refused"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class PayloadRefused(RemoteError):
    """The payload is too large, too deep, not UTF-8, not parseable, or uses YAML aliases."""

    code = "bad_payload"


class SignatureRefused(RemoteError):
    """The payload is unsigned while signatures are required, or the signature does not verify."""

    code = "bad_signature"


class ReplayRefused(RemoteError):
    """A signed payload was seen before (nonce) or is not newer than the last accepted version."""

    code = "replay"


class LocalOnlyRefused(RemoteError):
    """A remote config tried to change a setting that only a local edit may change."""

    code = "local_only"


class RateLimited(RemoteError):
    """Too many requests of one kind; retry after the time given in the message."""

    code = "rate_limited"


class KeyFileError(RemoteError):
    """A key file is missing, unreadable or not an Ed25519 PEM key."""

    code = "key_file"


class CommandError(RemoteError):
    """A command handler refuses its arguments; raise it from a handler to answer ``bad_args``."""

    code = "bad_args"
