"""The agent's side of remote configuration and remote diagnostics over MQTT.

::

    config/set    ─▶ limits ─▶ envelope, signature ─▶ replay ─▶ YAML safety ─▶ local-only ─▶ applier
    config/patch  ─▶ (the same, after applying the JSON merge patch to the running config)
    config/state  ◀─ retained: active version/hash/by and the last attempt (accepted/rejected/rolled back)
    cmd/{name}    ─▶ size and rate limits ─▶ handler under a timeout ─▶ reply on the MQTT 5 response
                     topic (correlation data echoed) or on cmd/{name}/result

All topics are under ``{prefix}/``. Every request is audited. Nothing a sender does can stop the
service: payloads are bounded before parsing, handlers run under a timeout, and any failure turns into
an error reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from edge_agent import __version__
from edge_agent.remote.audit import AuditLog
from edge_agent.remote.commit_confirm import CommitConfirm
from edge_agent.remote.contracts import (
    ApplyOutcome,
    CommandHandler,
    ConfigApplier,
    HealthCheck,
    InboundMessage,
    RemoteTransport,
)
from edge_agent.remote.errors import RemoteError, SignatureRefused
from edge_agent.remote.guard import (
    PayloadLimits,
    RateLimiter,
    check_local_only,
    decode_utf8,
    load_yaml_mapping,
    parse_json_object,
)
from edge_agent.remote.history import HASH_DIGITS, config_hash
from edge_agent.remote.merge_patch import merge_patch
from edge_agent.remote.signing import (
    ParsedPush,
    ReplayGuard,
    key_id,
    load_public_key,
    parse_push,
    verify_push,
)

log = logging.getLogger(__name__)

AttemptResult = Literal["accepted", "confirming", "rejected", "rolled_back"]
AttemptKind = Literal["set", "patch", "local", "rollback"]
_COMMAND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# A value under a secret-looking key (password_file / password_env name where to find it: not secret).
_SECRET_LINE = re.compile(r"^(\s*-?\s*[\"']?(?:password|passwd|secret|token|api[_-]?key|private_key)[\"']?\s*:[ \t]*)"
                          r"(?=\S)(.+)$", re.IGNORECASE | re.MULTILINE)
STATE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RemoteSettings:
    """Limits and policies of the remote service (the ``remote:`` config section maps onto this)."""

    require_signature: bool = False
    public_key_file: Path | None = None
    replay_state_file: Path | None = None
    config_limits: PayloadLimits = field(default_factory=PayloadLimits)
    command_limits: PayloadLimits = field(default_factory=lambda: PayloadLimits(16 * 1024, 16, 10_000))
    max_response_bytes: int = 1_000_000
    command_timeout_s: float = 30.0
    command_rate_per_min: float = 60.0
    command_burst: int = 10
    config_rate_per_min: float = 6.0
    config_burst: int = 3
    confirm_window_s: float = 0.0
    confirm_interval_s: float = 1.0
    max_concurrent_commands: int = 4
    max_pending_messages: int = 64
    state_retry_s: float = 5.0
    commands_enabled: frozenset[str] | None = None  # None: every command; ping is always answered

    @classmethod
    def from_config(cls, remote: Any, data_dir: Path | str) -> RemoteSettings:
        """Settings from the config's ``remote:`` section (``edge_agent.config.RemoteConfig``).

        ``max_payload`` bounds config pushes (commands get at most 16 kB of it), ``confirm_window`` is
        the commit-confirm window in seconds, ``command_rate`` is per minute (burst: a tenth of a minute's
        budget, at least 3), and the replay state lives in ``data_dir/remote-replay.json``.
        """
        rate = float(remote.command_rate)
        enabled = remote.commands_enabled
        return cls(
            require_signature=bool(remote.require_signature),
            public_key_file=Path(remote.public_key_file) if remote.public_key_file else None,
            replay_state_file=Path(data_dir) / "remote-replay.json",
            config_limits=PayloadLimits(max_bytes=int(remote.max_payload)),
            command_limits=PayloadLimits(max_bytes=min(int(remote.max_payload), 16 * 1024), max_depth=16,
                                         max_nodes=10_000),
            command_rate_per_min=rate,
            command_burst=max(3, int(rate / 10)),
            confirm_window_s=float(remote.confirm_window),
            commands_enabled=frozenset(enabled) if enabled is not None else None,
        )


@dataclass(frozen=True)
class ActiveConfig:
    """Identity of the running config, as shown in ``config/state``; times in UTC epoch milliseconds."""

    hash: str
    version: int | None = None
    label: str = ""
    applied_at_ms: int = 0
    by: str = "local"
    source: str = "file"


@dataclass(frozen=True)
class Attempt:
    """The last config change attempt and its result, as shown in ``config/state``."""

    request_id: str
    kind: AttemptKind
    result: AttemptResult
    hash: str
    at_ms: int
    by: str = ""
    version: int | None = None
    label: str = ""
    errors: list[str] = field(default_factory=list)
    message: str = ""
    restarted: list[str] = field(default_factory=list)


@dataclass
class _Pending:
    """What commit-confirm needs to undo a change."""

    previous_text: str
    previous_active: ActiveConfig
    attempt: Attempt


def _now_ms() -> int:
    return int(time.time() * 1000)


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error envelope of every remote reply: ``{"ok": false, "error": {"code", "message"}}``."""
    return {"ok": False, "error": {"code": code, "message": message}}


class RemoteService:
    """Serves ``{prefix}/config/*`` and ``{prefix}/cmd/*`` for one agent; start with :meth:`start`."""

    def __init__(self, prefix: str, agent_id: str, transport: RemoteTransport, applier: ConfigApplier,
                 commands: Mapping[str, CommandHandler], audit: AuditLog,
                 settings: RemoteSettings | None = None, *, health: HealthCheck | None = None,
                 initial: ActiveConfig | None = None) -> None:
        if not prefix or any(c in prefix for c in "+#") or prefix.endswith("/"):
            raise ValueError(f"topic prefix {prefix!r} must be non-empty, without wildcards or trailing '/'")
        self.prefix = prefix
        self.agent_id = agent_id
        self.settings = settings or RemoteSettings()
        self._transport = transport
        self._applier = applier
        self._audit = audit
        self._health = health
        self._commands: dict[str, CommandHandler] = {"ping": self._cmd_ping, "audit": self._cmd_audit,
                                                     "config": self._cmd_config}
        for name, handler in commands.items():
            if not _COMMAND_NAME.match(name):
                raise ValueError(f"command name {name!r} must match {_COMMAND_NAME.pattern}")
            self._commands[name] = handler
        s = self.settings
        self._public_key = load_public_key(s.public_key_file) if s.public_key_file is not None else None
        if s.require_signature and self._public_key is None:
            raise RemoteError("remote.require_signature is true but remote.public_key_file is not set; "
                              "set it to the PUB file from `edge-agent remote keygen`", code="settings")
        self._replay: ReplayGuard | None = None
        if self._public_key is not None:
            if s.replay_state_file is None:
                raise RemoteError("signed configs need a replay state file (replay_state_file); "
                                  "put it in the agent's data_dir", code="settings")
            self._replay = ReplayGuard(s.replay_state_file, agent_id)
        self._command_rate = RateLimiter(s.command_rate_per_min, s.command_burst)
        self._config_rate = RateLimiter(s.config_rate_per_min, s.config_burst)
        self._command_slots = asyncio.Semaphore(s.max_concurrent_commands)
        self._config_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._state_dirty = asyncio.Event()
        self._state_task: asyncio.Task[None] | None = None
        self._started_monotonic = time.monotonic()
        self.active = initial or ActiveConfig(config_hash(applier.active_text()), applied_at_ms=_now_ms())
        self.last_attempt: Attempt | None = None
        self.dropped_messages = 0
        self.recent_activity: deque[dict[str, Any]] = deque(maxlen=50)

    # --- topics ----------------------------------------------------------------------------------------

    @property
    def state_topic(self) -> str:
        """Retained topic of the config state."""
        return f"{self.prefix}/config/state"

    @property
    def config_result_topic(self) -> str:
        """MQTT 3.1.1 fallback reply topic of config pushes (not retained; ``config/state`` is)."""
        return f"{self.prefix}/config/result"

    def result_topic(self, command: str) -> str:
        """MQTT 3.1.1 fallback reply topic of ``command``."""
        return f"{self.prefix}/cmd/{command}/result"

    # --- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the config and command topics and publish the current state (retained)."""
        await self._transport.subscribe(f"{self.prefix}/config/set", self._on_message)
        await self._transport.subscribe(f"{self.prefix}/config/patch", self._on_message)
        await self._transport.subscribe(f"{self.prefix}/cmd/+", self._on_message)
        self._state_task = asyncio.create_task(self._state_loop(), name="remote-config-state")
        self._state_dirty.set()

    async def close(self) -> None:
        """Cancel running requests and the state publisher; waits until they are gone."""
        tasks = [*self._tasks, *([self._state_task] if self._state_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._state_task = None

    async def _on_message(self, msg: InboundMessage) -> None:
        if len(self._tasks) >= self.settings.max_pending_messages:
            self.dropped_messages += 1
            if self.dropped_messages in (1, 10, 100) or self.dropped_messages % 1000 == 0:
                log.warning("remote: %d request(s) dropped, more than %d pending (flood?)",
                            self.dropped_messages, self.settings.max_pending_messages)
            return
        task = asyncio.create_task(self._dispatch(msg), name=f"remote:{msg.topic}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, msg: InboundMessage) -> None:
        try:
            if msg.topic == f"{self.prefix}/config/set":
                await self._handle_config(msg, "set")
            elif msg.topic == f"{self.prefix}/config/patch":
                await self._handle_config(msg, "patch")
            elif msg.topic.startswith(f"{self.prefix}/cmd/"):
                await self._handle_command(msg, msg.topic[len(self.prefix) + 5:])
        except asyncio.CancelledError:
            raise
        except Exception:  # the last line of defence: a request must never take the service down
            log.exception("remote: unexpected failure handling %s", msg.topic)

    # --- config --------------------------------------------------------------------------------------------

    async def _handle_config(self, msg: InboundMessage, kind: Literal["set", "patch"]) -> None:
        request_id = msg.correlation_data.hex() if msg.correlation_data else ""
        try:
            self._config_rate.check("config")
        except RemoteError as exc:
            await self._record({"kind": f"config/{kind}", "request_id": request_id, "result": "rate_limited"})
            await self._reply(msg, self.config_result_topic, error_body(exc.code, str(exc)))
            return
        async with self._config_lock:
            attempt, pending = await self._try_remote_config(msg, kind, request_id)
            await self._publish_attempt(msg, attempt)
            if pending is not None:
                await self._publish_attempt(msg, await self._confirm(pending))

    async def _try_remote_config(self, msg: InboundMessage, kind: Literal["set", "patch"],
                                 request_id: str) -> tuple[Attempt, _Pending | None]:
        limits = self.settings.config_limits
        version: int | None = None
        # Identity of a payload that may not even be text: sha256 of its bytes, same width as config_hash.
        label, by, new_hash = "", "remote", hashlib.sha256(msg.payload).hexdigest()[:HASH_DIGITS]
        try:
            text = decode_utf8(msg.payload, limits, f"config/{kind} payload")
            push = self._parse_envelope(text, kind)
            body = text
            if push is not None:
                body, version, label = push.envelope.body, push.envelope.version, push.envelope.label
                by = push.envelope.by or by
                request_id = request_id or push.envelope.nonce
            request_id = request_id or new_hash
            signed_by = self._check_signature(push)
            if signed_by:
                by = f"{by} (key {signed_by})"
            # Parsing up to max_bytes of YAML takes long enough to stall the loop: do it in a thread.
            active_data = await asyncio.to_thread(self._applier.active_data)
            new_data, new_text = await asyncio.to_thread(_candidate, kind, body, active_data, limits)
            new_hash = config_hash(new_text)
            check_local_only(active_data, new_data)
            if push is not None and signed_by and self._replay is not None:
                await asyncio.to_thread(self._replay.record, push.envelope)
        except RemoteError as exc:
            return Attempt(request_id or new_hash, kind, "rejected", new_hash, _now_ms(), by, version, label,
                           errors=[f"{exc.code}: {exc}"], message=str(exc)), None
        except (ValueError, TypeError, RecursionError, MemoryError) as exc:  # a parser corner not yet mapped
            log.warning("remote: config/%s payload broke a parser: %r", kind, exc)
            message = f"the payload could not be read ({type(exc).__name__}: {exc})"
            return Attempt(request_id or new_hash, kind, "rejected", new_hash, _now_ms(), by, version, label,
                           errors=[f"bad_payload: {message}"], message=message), None
        previous_text, previous_active = self._applier.active_text(), self.active
        # Loader errors name this source; a patch's line numbers refer to the patched (merged) config.
        source = "config/set" if kind == "set" else "config/patch (merged)"
        # Under commit-confirm the change is on trial from the moment it reaches the disk (see _confirm).
        on_trial = self._health is not None and self.settings.confirm_window_s > 0
        outcome = await self._apply(new_text, source, by, version, on_trial=on_trial)
        attempt = self._attempt_from(outcome, request_id, kind, by, version, label)
        if outcome.result != "accepted":
            return attempt, None
        self.active = ActiveConfig(outcome.hash, version, label, attempt.at_ms, by, f"remote config/{kind}")
        unchanged = outcome.hash == config_hash(previous_text)
        if self._health is None or self.settings.confirm_window_s <= 0 or unchanged:
            return attempt, None
        confirming = replace(attempt, result="confirming",
                             message=f"applied; confirming health for {self.settings.confirm_window_s:g} s")
        return confirming, _Pending(previous_text, previous_active, confirming)

    def _parse_envelope(self, text: str, kind: str) -> ParsedPush | None:
        if not text.lstrip().startswith("{"):
            return None
        try:
            decoded = parse_json_object(text, self.settings.config_limits, f"config/{kind} payload")
        except RemoteError:
            return None  # not JSON: maybe a YAML flow mapping; the YAML checks will judge it
        if "envelope" not in decoded:
            return None
        push = parse_push(decoded)
        if push.envelope.kind != kind:
            raise RemoteError(f"a {push.envelope.kind!r} envelope was sent to config/{kind}; send it to "
                              f"config/{push.envelope.kind}", code="bad_payload")
        return push

    def _check_signature(self, push: ParsedPush | None) -> str:
        """Verify and replay-check when required (or when signed and a key is configured); return key id."""
        if self._public_key is None or self._replay is None:
            return ""
        if push is None:
            if self.settings.require_signature:
                raise SignatureRefused("this agent requires signed configs (remote.require_signature: true) "
                                       "and the payload is bare YAML/JSON; push with "
                                       "`edge-agent remote config push --sign PRIVATE_KEY`")
            return ""
        if push.signature is None and not self.settings.require_signature:
            return ""
        verify_push(push, self._public_key)
        self._replay.check(push.envelope)
        return key_id(self._public_key)

    async def _apply(self, text: str, source: str, by: str, version: int | None, *,
                     on_trial: bool = False) -> ApplyOutcome:
        try:
            return await self._applier.apply(text, source, by, version, on_trial=on_trial)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the applier is supposed to report, not raise; keep serving either way
            log.exception("remote: config applier raised")
            return ApplyOutcome("rejected", config_hash(text), [f"internal: {type(exc).__name__}: {exc}"])

    def _attempt_from(self, outcome: ApplyOutcome, request_id: str, kind: AttemptKind, by: str,
                      version: int | None, label: str) -> Attempt:
        return Attempt(request_id, kind, outcome.result, outcome.hash, _now_ms(), by, version, label,
                       errors=list(outcome.errors), message=outcome.message,
                       restarted=list(outcome.restarted))

    async def _confirm(self, pending: _Pending) -> Attempt:
        assert self._health is not None
        rollback_outcome: list[ApplyOutcome] = []

        async def rollback(reason: str) -> None:
            rollback_outcome.append(await self._apply(pending.previous_text, "rollback", "commit-confirm",
                                                      pending.previous_active.version))

        confirm = CommitConfirm(self._health, rollback, window_s=self.settings.confirm_window_s,
                                interval_s=self.settings.confirm_interval_s)
        # On trial until this returns: a stop, a crash or a power cut meanwhile is undone at the next start.
        await asyncio.to_thread(self._applier.begin_confirm, pending.previous_text)
        result = await confirm.run()
        attempt = replace(pending.attempt, at_ms=_now_ms())
        if result.confirmed or (rollback_outcome and rollback_outcome[0].result == "accepted"):
            await asyncio.to_thread(self._applier.end_confirm)
        # else the rollback failed: the marker stays, so that the next start goes back to the previous config
        if result.confirmed:
            return replace(attempt, result="accepted",
                           message=f"confirmed healthy after {result.elapsed_s:.1f} s")
        undo = rollback_outcome[0]
        if undo.result == "accepted":
            self.active = replace(pending.previous_active, applied_at_ms=_now_ms(), by="commit-confirm",
                                  source="rollback")
            return replace(attempt, result="rolled_back", message=result.reason,
                           errors=[f"rolled_back: {result.reason}"])
        log.critical("remote: rollback to the previous config failed: %s; the next start goes back to it",
                     undo.errors)
        return replace(attempt, result="accepted", errors=[f"rolled_back: {result.reason}",
                                                           *(f"rollback failed: {e}" for e in undo.errors)],
                       message="unhealthy, and the rollback failed: the new config is still running")

    async def apply_local(self, text: str, source: str = "file",
                          reread: Callable[[], str] | None = None) -> ApplyOutcome:
        """Apply a config from the local file (edit or SIGHUP): no remote guards, same state and audit.

        ``reread`` reads the file again once the config lock is held: ``text`` may be a stale read, taken
        while a push or its rollback was rewriting the file (the file would then be applied as it was a
        moment ago, e.g. a push that was just rolled back applied again as a "local edit").
        """
        async with self._config_lock:
            if reread is not None:
                try:
                    text = await asyncio.to_thread(reread)
                except (OSError, UnicodeDecodeError, ValueError) as exc:
                    return ApplyOutcome("rejected", config_hash(text), [f"{source}: cannot read it again: {exc}"],
                                        message="the file could not be read; the running config stays")
            previous_text, previous_active = self._applier.active_text(), self.active
            # Commit-confirm undoes a change that broke a working uplink. With the broker already unreachable
            # (an outage, the very thing an engineer on site may be fixing) there is nothing to protect, and a
            # rollback would throw the engineer's edit away: the edit stays.
            confirm = (self._health is not None and self.settings.confirm_window_s > 0
                       and await self._health() is True)
            outcome = await self._apply(text, source, "local", None, on_trial=confirm)
            attempt = self._attempt_from(outcome, config_hash(text), "local", "local", None, "")
            if outcome.result == "accepted":
                self.active = ActiveConfig(outcome.hash, None, "", attempt.at_ms, "local", source)
            await self._publish_attempt(None, attempt)
            if outcome.result == "accepted" and confirm:
                final = await self._confirm(_Pending(previous_text, previous_active,
                                                     replace(attempt, result="confirming")))
                await self._publish_attempt(None, final)
                if final.result == "rolled_back":
                    return ApplyOutcome("rolled_back", outcome.hash, final.errors, message=final.message)
            return outcome

    async def _publish_attempt(self, msg: InboundMessage | None, attempt: Attempt) -> None:
        self.last_attempt = attempt
        self._state_dirty.set()
        level = logging.INFO if attempt.result in ("accepted", "confirming") else logging.WARNING
        log.log(level, "remote config %s from %s: %s %s", attempt.kind, attempt.by or "?", attempt.result,
                "; ".join(attempt.errors[:5]))
        await self._record({**asdict(attempt), "kind": f"config/{attempt.kind}"})
        if msg is not None:
            body: dict[str, Any] = {"ok": attempt.result in ("accepted", "confirming"),
                                    "result": asdict(attempt), "active": asdict(self.active),
                                    "confirm_window_s": self.settings.confirm_window_s}
            await self._reply(msg, self.config_result_topic, body)

    def status_summary(self) -> dict[str, Any]:
        """For the agent's status: running config identity, last attempt, recent audit events, drops."""
        return {
            "config": asdict(self.active),
            "last_attempt": asdict(self.last_attempt) if self.last_attempt else None,
            "recent": list(self.recent_activity)[-10:],
            "dropped_requests": self.dropped_messages,
            "signature_required": self.settings.require_signature,
        }

    def state(self) -> dict[str, Any]:
        """The ``config/state`` payload: active config identity and the last attempt."""
        return {
            "v": STATE_SCHEMA_VERSION, "id": uuid.uuid4().hex, "ts": _now_ms(), "agent": self.agent_id,
            "active": asdict(self.active),
            "last_attempt": asdict(self.last_attempt) if self.last_attempt else None,
            "signature_required": self.settings.require_signature,
            "key_id": key_id(self._public_key) if self._public_key is not None else None,
            "replay_floor": self._replay.last_version if self._replay is not None else None,
        }

    async def _state_loop(self) -> None:
        """Publish the latest state whenever it changes; retry until the broker takes it (reconnects)."""
        failures = 0
        while True:
            await self._state_dirty.wait()
            self._state_dirty.clear()
            payload = json.dumps(self.state(), sort_keys=True).encode("utf-8")
            try:
                await self._transport.publish(self.state_topic, payload, qos=1, retain=True)
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("remote: config state not published (%s); retrying every %g s",
                                exc, self.settings.state_retry_s)
                self._state_dirty.set()
                await asyncio.sleep(self.settings.state_retry_s)
                continue
            if failures:
                log.info("remote: config state published after %d failed attempt(s)", failures)
            failures = 0

    # --- commands ------------------------------------------------------------------------------------------

    async def _handle_command(self, msg: InboundMessage, name: str) -> None:
        started = time.monotonic()
        request_id = msg.correlation_data.hex() if msg.correlation_data else ""
        args: dict[str, Any] = {}
        body: dict[str, Any]
        limits = self.settings.command_limits
        try:
            if not _COMMAND_NAME.match(name):
                raise RemoteError(f"{name[:40]!r} is not a command name", code="unknown_command")
            # unknown names share one budget: made-up names must not each get a fresh one
            self._command_rate.check(name if name in self._commands else "<unknown command>")
            text = decode_utf8(msg.payload, limits, f"cmd/{name} payload")
            args = parse_json_object(text, limits, f"cmd/{name} arguments") if text.strip() else {}
            fallback_id = args.pop("request_id", "")
            request_id = request_id or (fallback_id if isinstance(fallback_id, str) else "")
            handler = self._commands.get(name)
            allowed = self.settings.commands_enabled
            if handler is not None and allowed is not None and name != "ping" and name not in allowed:
                raise RemoteError(f"command {name!r} is disabled on this agent (remote.commands_enabled: "
                                  f"{', '.join(sorted(allowed)) or 'none'})", code="disabled")
            if handler is None:
                raise RemoteError(f"unknown command {name!r}; available: {', '.join(sorted(self._commands))}",
                                  code="unknown_command")
            if self._command_slots.locked():
                raise RemoteError(f"busy: {self.settings.max_concurrent_commands} commands are running; "
                                  "retry shortly", code="busy")
            async with self._command_slots, asyncio.timeout(self.settings.command_timeout_s):
                result = await handler(dict(args))
            if not isinstance(result, dict):
                raise TypeError(f"handler returned {type(result).__name__}, not a dict")
            body = {"ok": True, "result": result}
        except TimeoutError:
            timeout_s = self.settings.command_timeout_s
            body = error_body("timeout", f"{name} did not finish within {timeout_s:g} s")
        except RemoteError as exc:
            body = error_body(exc.code, str(exc))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("remote: command %s failed", name)
            body = error_body("internal", f"{type(exc).__name__}: {exc}")
        body["request_id"] = request_id
        body["cmd"] = name
        await self._record({"kind": "cmd", "name": name[:40], "args": args, "request_id": request_id,
                            "ok": body["ok"], "error": body.get("error"),
                            "duration_ms": round((time.monotonic() - started) * 1000, 1)})
        await self._reply(msg, self.result_topic(name), body)

    async def _reply(self, msg: InboundMessage, fallback_topic: str, body: dict[str, Any]) -> None:
        envelope = {"v": STATE_SCHEMA_VERSION, "id": uuid.uuid4().hex, "ts": _now_ms(),
                    "agent": self.agent_id, **body}
        payload = json.dumps(envelope, default=str, allow_nan=False).encode("utf-8") \
            if _json_safe(envelope) else b""
        if not payload or len(payload) > self.settings.max_response_bytes:
            why = "not JSON-serialisable" if not payload else f"{len(payload)} bytes, limit " \
                  f"{self.settings.max_response_bytes}"
            envelope.update(error_body("response_too_large" if payload else "internal", f"reply was {why}"))
            envelope.pop("result", None)
            payload = json.dumps(envelope, default=str).encode("utf-8")
        topic = msg.response_topic or fallback_topic
        properties: dict[str, Any] = {"content_type": "application/json"}
        if msg.correlation_data is not None:
            properties["correlation_data"] = msg.correlation_data
        try:
            await self._transport.publish(topic, payload, qos=1, retain=False, properties=properties)
        except Exception as exc:
            log.warning("remote: reply on %s not delivered: %s", topic, exc)

    async def _record(self, event: dict[str, Any]) -> None:
        try:
            written = await asyncio.to_thread(self._audit.append, event)
        except OSError as exc:
            log.error("remote: audit log write failed: %s", exc)
            written = dict(event)
        self.recent_activity.append(written)

    # --- built-in commands ---------------------------------------------------------------------------------

    async def _cmd_ping(self, args: dict[str, Any]) -> dict[str, Any]:
        """Liveness: agent id, software version, uptime in seconds, running config hash."""
        return {"pong": True, "agent": self.agent_id, "version": __version__,
                "uptime_s": round(time.monotonic() - self._started_monotonic, 3),
                "config_hash": self.active.hash}

    async def _cmd_audit(self, args: dict[str, Any]) -> dict[str, Any]:
        """The last ``count`` (default 20, at most 200) audit events."""
        count = args.get("count", 20)
        if not isinstance(count, int) or not 1 <= count <= 200:
            raise RemoteError("count must be an integer from 1 to 200", code="bad_args")
        return {"events": await asyncio.to_thread(self._audit.recent, count)}

    async def _cmd_config(self, args: dict[str, Any]) -> dict[str, Any]:
        """The running config text (secret-looking values masked) and the config state."""
        text = mask_secret_lines(self._applier.active_text())
        return {"text": text, "state": self.state()}


def _candidate(kind: str, body: str, active_data: dict[str, Any],
               limits: PayloadLimits) -> tuple[dict[str, Any], str]:
    """The proposed config as data and as YAML text: ``body`` itself, or the patched running config."""
    if kind == "patch":
        patched = merge_patch(active_data, parse_json_object(body, limits, "merge patch"))
        if not isinstance(patched, dict):
            raise RemoteError("the merge patch must be a JSON object", code="bad_payload")
        import yaml

        return patched, yaml.safe_dump(patched, sort_keys=False, allow_unicode=True, width=100)
    return load_yaml_mapping(body, limits, f"config/{kind}"), body


def mask_secret_lines(yaml_text: str) -> str:
    """``yaml_text`` with the value of every ``password:``/``secret:``/``token:``/``api_key:`` line masked."""
    return _SECRET_LINE.sub(lambda m: f"{m.group(1)}***", yaml_text)


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value, default=str, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return True
