"""``edge-agent remote``: the engineer's side of remote configuration and diagnostics, over the broker.

    edge-agent remote ls
    edge-agent remote keygen PRIV PUB
    edge-agent remote config push AGENT FILE [--patch] [--sign KEY] [--wait]
    edge-agent remote config get AGENT
    edge-agent remote cmd AGENT NAME [key=value ...]

AGENT is an agent id (found through the retained ``{prefix}/status`` messages under ``--prefix``,
default ``edge/+/+``) or an agent's topic prefix (anything containing ``/``). Human output by default,
``--json`` for scripts. Exit codes: 0 ok, 1 failure or no answer, 2 the agent refused the config.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from edge_agent.config.text import parse_config_text
from edge_agent.errors import ConfigError
from edge_agent.remote.cli_session import CliSession, Received
from edge_agent.remote.errors import RemoteError
from edge_agent.remote.history import config_hash
from edge_agent.remote.mqtt_client import BrokerOptions
from edge_agent.remote.signing import (
    generate_keypair,
    load_private_key,
    new_envelope,
    sign_envelope,
    unsigned_payload,
)

EXIT_OK, EXIT_FAILURE, EXIT_REFUSED = 0, 1, 2
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
DEFAULT_DISCOVERY = "edge/+/+"


@dataclass(frozen=True)
class AgentRef:
    """A resolved agent: its topic prefix and its id."""

    prefix: str
    agent_id: str


def _common_options(parser: argparse.ArgumentParser, *, leaf: bool) -> None:
    default = argparse.SUPPRESS if leaf else None
    broker_default = os.environ.get("EDGE_AGENT_BROKER", DEFAULT_BROKER)
    parser.add_argument("--broker", default=default if leaf else broker_default,
                        help="broker URL, mqtt://host:1883 or mqtts://host:8883 (env EDGE_AGENT_BROKER)")
    parser.add_argument("--prefix", default=default if leaf else DEFAULT_DISCOVERY,
                        help="agents' topic prefix, with wildcards for discovery (default edge/+/+)")
    parser.add_argument("--ca-file", default=default, help="CA certificate (PEM) to verify the broker")
    parser.add_argument("--cert-file", default=default, help="client certificate (PEM)")
    parser.add_argument("--key-file", default=default, help="client private key (PEM)")
    parser.add_argument("--username", default=default, help="broker username")
    parser.add_argument("--password-file", default=default, help="file holding the broker password")
    parser.add_argument("--json", action="store_true", default=default if leaf else False,
                        help="print machine-readable JSON")
    parser.add_argument("--timeout", type=float, default=default if leaf else 30.0,
                        help="seconds to wait for the agent (default 30)")


def build_parser() -> argparse.ArgumentParser:
    """Parser of ``edge-agent remote``; options may come before or after the sub-command."""
    parser = argparse.ArgumentParser(prog="edge-agent remote", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_options(parser, leaf=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("ls", help="list agents seen through their retained status")
    _common_options(p, leaf=True)
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("keygen", help="create an Ed25519 key pair for signed config pushes")
    p.add_argument("priv", help="private key file to write (mode 0600; keep it secret)")
    p.add_argument("pub", help="public key file to write (copy to the gateway: remote.public_key_file)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    _common_options(p, leaf=True)
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("config", help="push or show an agent's config")
    config_sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    push = config_sub.add_parser("push", help="send a whole YAML config (or a merge patch with --patch)")
    push.add_argument("agent", help="agent id or topic prefix")
    push.add_argument("file", help="YAML config file (with --patch: a JSON/YAML merge patch)")
    push.add_argument("--patch", action="store_true",
                      help="FILE is an RFC 7386 merge patch of the running config")
    push.add_argument("--sign", metavar="KEY", help="sign with this Ed25519 private key (from `keygen`)")
    push.add_argument("--wait", action="store_true",
                      help="also wait through the agent's commit-confirm window for the final result")
    push.add_argument("--version", type=int, default=None,
                      help="monotonic version number (default: current epoch milliseconds)")
    push.add_argument("--label", default="", help="free-text label shown in config/state (e.g. v1.3)")
    push.add_argument("--by", default=os.environ.get("USER", ""), help="author shown in config/state")
    _common_options(push, leaf=True)
    push.set_defaults(func=cmd_config_push)
    get = config_sub.add_parser("get", help="print an agent's running config and its state")
    get.add_argument("agent", help="agent id or topic prefix")
    _common_options(get, leaf=True)
    get.set_defaults(func=cmd_config_get)

    p = sub.add_parser("cmd", help="run a remote diagnostics command (ping, status, read, capture, …)")
    p.add_argument("agent", help="agent id or topic prefix")
    p.add_argument("name", help="command name")
    p.add_argument("args", nargs="*", metavar="key=value", help="arguments; values are JSON or plain text")
    _common_options(p, leaf=True)
    p.set_defaults(func=cmd_cmd)
    return parser


def main(argv: list[str]) -> int:
    """Entry point of ``edge-agent remote``; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except RemoteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_FAILURE


# --- helpers ------------------------------------------------------------------------------------------


def _session(args: argparse.Namespace) -> CliSession:
    password = None
    if args.password_file:
        password = Path(args.password_file).read_text(encoding="utf-8").strip()
    options = BrokerOptions.from_url(args.broker, ca_file=args.ca_file, cert_file=args.cert_file,
                                     key_file=args.key_file, username=args.username, password=password)
    return CliSession(options, timeout_s=min(args.timeout, 20.0))


def _decode(message: Received) -> dict[str, Any]:
    try:
        value = json.loads(message.payload)
    except ValueError:
        return {"raw": message.payload.decode("utf-8", "replace")}
    return value if isinstance(value, dict) else {"raw": value}


def discover(session: CliSession, prefix_filter: str) -> list[tuple[str, dict[str, Any]]]:
    """(prefix, status payload) of every agent with a retained ``{prefix}/status`` under the filter."""
    found = []
    for message in session.collect_retained(f"{prefix_filter}/status"):
        if message.payload:
            found.append((message.topic[: -len("/status")], _decode(message)))
    return sorted(found)


def resolve_agent(session: CliSession, agent: str, prefix_filter: str) -> AgentRef:
    """Turn an agent id or prefix into an :class:`AgentRef` (its id from the retained config state)."""
    if "/" in agent:
        prefix = agent.rstrip("/")
        states = session.collect_retained(f"{prefix}/config/state")
        agent_id = _decode(states[0]).get("agent") if states else None
        return AgentRef(prefix, str(agent_id) if agent_id else prefix.rsplit("/", 1)[-1])
    seen = discover(session, prefix_filter)
    matches = [p for p, status in seen if status.get("agent") == agent or p.rsplit("/", 1)[-1] == agent]
    if len(matches) == 1:
        return AgentRef(matches[0], agent)
    if not matches:
        known = ", ".join(f"{s.get('agent', p.rsplit('/', 1)[-1])} ({p})" for p, s in seen) or "none"
        raise RemoteError(f"agent {agent!r} not found under {prefix_filter} (agents seen: {known}); "
                          "pass its topic prefix instead, or --prefix to search elsewhere", code="not_found")
    raise RemoteError(f"agent id {agent!r} is ambiguous: {', '.join(matches)}; pass the topic prefix",
                      code="ambiguous")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _request(session: CliSession, topic: str, payload: bytes, correlation: bytes, fallback_topic: str,
             timeout_s: float, fallback_ids: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """Publish a request with MQTT 5 response properties and return the first matching reply."""
    session.subscribe(fallback_topic)
    wanted = {correlation.hex(), *fallback_ids}
    session.publish(topic, payload, correlation_data=correlation, response_topic=session.reply_topic)
    return _next_reply(session, correlation, wanted, timeout_s)


def _next_reply(session: CliSession, correlation: bytes, wanted: set[str],
                timeout_s: float) -> dict[str, Any] | None:
    def matches(message: Received) -> bool:
        if message.correlation_data == correlation:
            return True
        body = _decode(message)
        result = body.get("result")
        ids = {body.get("request_id"), result.get("request_id") if isinstance(result, dict) else None}
        return bool(ids & wanted)

    message = session.wait_for(matches, timeout_s)
    return _decode(message) if message is not None else None


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


# --- sub-commands -------------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    """Write a key pair and say what to do with each half."""
    kid = generate_keypair(args.priv, args.pub, overwrite=args.force)
    if args.json:
        _print_json({"private_key": args.priv, "public_key": args.pub, "key_id": kid})
    else:
        print(f"wrote private key {args.priv} (mode 0600: keep it secret) and public key {args.pub}")
        print(f"key id {kid}; copy {args.pub} to the gateway and set remote.public_key_file and "
              "remote.require_signature: true in its local config")
    return EXIT_OK


def cmd_ls(args: argparse.Namespace) -> int:
    """List agents with a retained status under ``--prefix``."""
    with _session(args) as session:
        seen = discover(session, args.prefix)
    if args.json:
        _print_json([{"prefix": p, "status": s} for p, s in seen])
        return EXIT_OK
    if not seen:
        print(f"no agents seen under {args.prefix}/status")
        return EXIT_OK
    print(f"{'AGENT':<20} {'STATE':<8} {'VERSION':<10} {'CONFIG':<17} PREFIX")
    for prefix, status in seen:
        state = (status.get("state") or status.get("status") or status.get("raw")
                 or ("online" if status.get("online") else "?"))
        print(f"{status.get('agent', prefix.rsplit('/', 1)[-1])!s:<20} {state!s:<8} "
              f"{status.get('version', '')!s:<10} {status.get('config_hash', '')!s:<17} {prefix}")
    return EXIT_OK


def cmd_cmd(args: argparse.Namespace) -> int:
    """Send one command and print its reply."""
    command_args: dict[str, Any] = {}
    for item in args.args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise RemoteError(f"argument {item!r} must look like key=value", code="usage")
        command_args[key] = _parse_value(value)
    correlation = uuid.uuid4().bytes
    command_args["request_id"] = correlation.hex()
    with _session(args) as session:
        ref = resolve_agent(session, args.agent, args.prefix)
        reply = _request(session, f"{ref.prefix}/cmd/{args.name}", json.dumps(command_args).encode(),
                         correlation, f"{ref.prefix}/cmd/{args.name}/result", args.timeout)
    if reply is None:
        print(f"error: no answer from {ref.agent_id} to {args.name} within {args.timeout:g} s "
              "(agent offline, or remote commands disabled?)", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        _print_json(reply)
    elif reply.get("ok"):
        print(_format_result(ref.agent_id, args.name, reply.get("result", {})))
    else:
        error = reply.get("error") or {}
        print(f"{ref.agent_id}: {args.name} failed ({error.get('code', '?')}): {error.get('message', '')}",
              file=sys.stderr)
    return EXIT_OK if reply.get("ok") else EXIT_FAILURE


def _format_result(agent: str, name: str, result: dict[str, Any]) -> str:
    if name == "ping":
        return (f"pong from {result.get('agent', agent)} (edge-agent {result.get('version', '?')}), "
                f"up {result.get('uptime_s', 0):.1f} s, config {result.get('config_hash', '?')}")
    return yaml.safe_dump(result, sort_keys=False, allow_unicode=True, width=100).rstrip()


def cmd_config_get(args: argparse.Namespace) -> int:
    """Print the running config (secrets masked by the agent) with its state as a header."""
    correlation = uuid.uuid4().bytes
    with _session(args) as session:
        ref = resolve_agent(session, args.agent, args.prefix)
        payload = json.dumps({"request_id": correlation.hex()}).encode()
        reply = _request(session, f"{ref.prefix}/cmd/config", payload, correlation,
                         f"{ref.prefix}/cmd/config/result", args.timeout)
    if reply is None:
        print(f"error: no answer from {ref.agent_id} within {args.timeout:g} s", file=sys.stderr)
        return EXIT_FAILURE
    if args.json or not reply.get("ok"):
        _print_json(reply)
        return EXIT_OK if reply.get("ok") else EXIT_FAILURE
    result = reply["result"]
    active = result.get("state", {}).get("active", {})
    print(f"# {ref.agent_id} ({ref.prefix}): config {active.get('hash')} version {active.get('version')} "
          f"{active.get('label') or ''}".rstrip())
    print(f"# applied at {active.get('applied_at_ms')} (epoch ms) by {active.get('by')} "
          f"from {active.get('source')}")
    print(result.get("text", ""), end="" if str(result.get("text", "")).endswith("\n") else "\n")
    return EXIT_OK


def cmd_config_push(args: argparse.Namespace) -> int:
    """Push a config or merge patch, then report what the agent did with it."""
    kind: Literal["set", "patch"] = "patch" if args.patch else "set"
    body = _read_push_body(Path(args.file), patch=args.patch)
    correlation = uuid.uuid4().bytes
    with _session(args) as session:
        ref = resolve_agent(session, args.agent, args.prefix)
        envelope = new_envelope(kind, ref.agent_id, body, version=args.version, by=args.by, label=args.label)
        payload = (sign_envelope(envelope, load_private_key(args.sign)) if args.sign
                   else unsigned_payload(envelope))
        session.subscribe(f"{ref.prefix}/config/state")
        reply = _request(session, f"{ref.prefix}/config/{kind}", payload, correlation,
                         f"{ref.prefix}/config/result", args.timeout, fallback_ids=(envelope.nonce,))
        final = reply
        while (args.wait and final is not None and isinstance(final.get("result"), dict)
               and final["result"].get("result") == "confirming"):
            if not args.json:
                message = final["result"].get("message", "confirming")
                print(f"{ref.agent_id}: {message} …", flush=True)
            # The agent answers again when its confirm window ends: wait at least that long.
            window_s = float(final.get("confirm_window_s") or 0.0)
            final = _next_reply(session, correlation, {correlation.hex(), envelope.nonce},
                                max(args.timeout, window_s + 30.0))
    if final is None:
        got = "no final result" if reply is not None else "no answer"
        ident = config_hash(body) if kind == "set" else "-"
        print(f"error: {got} from {ref.agent_id} within {args.timeout:g} s (config {kind}, hash {ident}); "
              "check `edge-agent remote ls`", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        _print_json(final)
    return _report_push(ref, final, quiet=args.json)


def _read_push_body(path: Path, *, patch: bool) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RemoteError(f"cannot read {path}: {exc.strerror or exc}", code="usage") from exc
    if not patch:
        return text
    try:  # a merge patch may be written as JSON or as YAML; read like a config (YAML 1.2: 010 is ten)
        data = parse_config_text(text, str(path))
    except ConfigError as exc:
        raise RemoteError(f"not a JSON/YAML merge patch (an object): {exc}", code="usage") from None
    return json.dumps(data, sort_keys=False)


def _report_push(ref: AgentRef, reply: dict[str, Any], *, quiet: bool) -> int:
    attempt = reply.get("result") if isinstance(reply.get("result"), dict) else None
    if attempt is None:  # an error envelope (rate limited, …)
        error = reply.get("error") or {}
        if not quiet:
            print(f"{ref.agent_id}: push refused ({error.get('code', '?')}): {error.get('message', '')}",
                  file=sys.stderr)
        return EXIT_FAILURE
    outcome = attempt.get("result")
    if quiet:
        codes = {"accepted": EXIT_OK, "confirming": EXIT_OK, "rejected": EXIT_REFUSED}
        return codes.get(str(outcome), EXIT_FAILURE)
    ident = f"hash {attempt.get('hash')}"
    if attempt.get("version"):
        ident += f", version {attempt['version']}"
    if outcome in ("accepted", "confirming"):
        restarted = attempt.get("restarted") or []
        note = f"; restarted: {', '.join(restarted)}" if restarted else ""
        extra = f" ({attempt['message']})" if attempt.get("message") else ""
        print(f"{ref.agent_id}: config {outcome}, {ident}{note}{extra}")
        return EXIT_OK
    if outcome == "rejected":
        print(f"{ref.agent_id}: config REJECTED ({ident}); the running config is unchanged:", file=sys.stderr)
    else:
        print(f"{ref.agent_id}: config ROLLED BACK ({ident}): {attempt.get('message', '')}", file=sys.stderr)
    for line in attempt.get("errors", []):
        print(f"  {line}", file=sys.stderr)
    return EXIT_REFUSED if outcome == "rejected" else EXIT_FAILURE
