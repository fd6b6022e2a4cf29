"""The small interfaces the remote service talks through: transport, config applier, command handlers.

The supervisor implements :class:`ConfigApplier` (it knows how to restart only what changed); the
publisher (or :class:`~edge_agent.remote.transport_paho.PahoTransport`) implements
:class:`RemoteTransport`; the lead passes command handlers (``status``, ``read``, ``capture`` …) as plain
``async def handler(args: dict) -> dict`` functions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ApplyResult = Literal["accepted", "rejected", "rolled_back"]


@dataclass(frozen=True)
class InboundMessage:
    """One message received on a subscribed topic, with its MQTT 5 request/response properties."""

    topic: str
    payload: bytes
    response_topic: str | None = None
    correlation_data: bytes | None = None


MessageHandler = Callable[[InboundMessage], Awaitable[None]]

# A remote command: JSON object in, JSON object out. Raise CommandError for bad arguments.
CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class RemoteTransport(Protocol):
    """What the remote service needs from an MQTT connection."""

    async def subscribe(self, topic_filter: str, handler: MessageHandler) -> None:
        """Deliver every message matching ``topic_filter`` to ``handler`` (kept across reconnects)."""
        ...

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                      properties: Mapping[str, Any] | None = None) -> None:
        """Publish and return once the broker acknowledged it (QoS 1) or raise ``PublishError``.

        ``properties`` may carry ``correlation_data`` (bytes) and ``content_type`` (str); a transport
        speaking MQTT 3.1.1 ignores them.
        """
        ...


@dataclass(frozen=True)
class ApplyOutcome:
    """Result of one config: accepted (running now), rejected (errors; old config kept) or rolled back."""

    result: ApplyResult
    hash: str
    errors: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    message: str = ""
    #: rejected only because the config could not be checked now (its validation process failed): not a
    #: verdict on the config, worth another try
    unchecked: bool = False


class ConfigApplier(Protocol):
    """Validates and applies a config live; the on-disk file and history are its business."""

    def active_text(self) -> str:
        """The YAML text of the config running now."""
        ...

    def active_data(self) -> dict[str, Any]:
        """The running config as plain data (the YAML loaded as dicts/lists), for patches and checks."""
        ...

    def begin_confirm(self, previous_text: str) -> None:
        """The running config is on trial: a restart before :meth:`end_confirm` goes back to ``previous_text``."""
        ...

    def end_confirm(self) -> None:
        """The trial ended (confirmed or rolled back)."""
        ...

    async def apply(self, text: str, source: str, by: str, version: int | None, *,
                    on_trial: bool = False) -> ApplyOutcome:
        """Validate ``text`` (errors as ``SOURCE:LINE: path: message``) and, if valid, make it run.

        ``on_trial``: the change will be confirmed (commit-confirm); it must be on trial from the moment it is
        on disk, as :meth:`begin_confirm` would make it.
        """
        ...


HealthCheck = Callable[[], Awaitable[bool | str]]
"""Health probe for commit-confirm: ``True`` when healthy, ``False`` or a reason string when not."""
