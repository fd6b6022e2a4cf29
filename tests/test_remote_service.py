"""RemoteService end to end on a real Mosquitto: config set/patch, signatures, replays, commit-confirm,
commands with MQTT 5 and 3.1.1 replies, limits, fuzzed payloads. Everything goes over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.remote.cli_session import CliSession
from edge_agent.remote.errors import CommandError
from edge_agent.remote.history import config_hash
from edge_agent.remote.mqtt_client import BrokerOptions
from edge_agent.remote.service import RemoteSettings, mask_secret_lines
from edge_agent.remote.signing import generate_keypair, load_private_key, new_envelope, sign_envelope, unsigned_payload

try:
    from tests.mqtt_support import Mosquitto, poll_until
    from tests.test_remote_support import PREFIX, Harness, make_config
except ImportError:  # tests/ is not a package
    from mqtt_support import Mosquitto, poll_until  # type: ignore[no-redef]
    from test_remote_support import PREFIX, Harness, make_config  # type: ignore[no-redef]

pytestmark = pytest.mark.integration


def attempt_of(reply: dict[str, Any]) -> dict[str, Any]:
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    return result


async def test_ping_replies_on_the_response_topic_with_correlation(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        reply = await h.request("cmd/ping", {})
    assert reply["ok"] is True
    assert reply["result"]["pong"] is True and reply["result"]["agent"] == "gw-1"
    assert reply["agent"] == "gw-1" and reply["v"] == 1 and isinstance(reply["ts"], int)
    assert reply["result"]["config_hash"] == config_hash(h.original_text)


async def test_mqtt311_fallback_reply_topic(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        def run() -> dict[str, Any]:
            h.session.subscribe(f"{PREFIX}/cmd/ping/result")
            h.session.publish(f"{PREFIX}/cmd/ping", b'{"request_id": "req-311"}')
            message = h.session.wait_for(lambda m: m.topic.endswith("/cmd/ping/result"), 30)
            assert message is not None
            return dict(json.loads(message.payload))

        reply = await asyncio.to_thread(run)
    assert reply["ok"] and reply["request_id"] == "req-311"


async def test_valid_push_is_applied_persisted_and_reported(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        new_text = h.original_text.replace("port: 5021", "port: 5031")
        envelope = new_envelope("set", "gw-1", new_text, by="alice", label="v2")
        attempt = attempt_of(await h.request("config/set", unsigned_payload(envelope)))
        state = await h.wait_state(lambda s: s["active"]["hash"] == config_hash(new_text))
    assert attempt["result"] == "accepted", attempt
    assert attempt["restarted"] == ["device:pump"]  # the other device was not touched
    assert h.changes == [["device:pump"]]
    assert h.config_path.read_text() == new_text
    assert state["active"]["by"] == "alice" and state["active"]["label"] == "v2"
    assert state["last_attempt"]["result"] == "accepted"
    assert [e.hash for e in h.history.entries()] == [config_hash(h.original_text), config_hash(new_text)]
    kinds = [e["kind"] for e in h.audit.recent(10)]
    assert "config/set" in kinds


async def test_bare_yaml_push_is_accepted_when_signatures_are_not_required(tmp_path: Path,
                                                                             mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        new_text = h.original_text.replace("high: 80", "high: 81")
        attempt = attempt_of(await h.request("config/set", new_text))
    assert attempt["result"] == "accepted" and attempt["restarted"] == ["rules"]


async def test_invalid_push_is_refused_with_line_numbers_and_old_config_kept(tmp_path: Path,
                                                                             mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        bad = h.original_text.replace("high: 80", "high: hot")
        reply = await h.request("config/set", bad)
        state = await h.wait_state(lambda s: (s["last_attempt"] or {}).get("result") == "rejected")
        ping = await h.request("cmd/ping", {})
    attempt = attempt_of(reply)
    assert reply["ok"] is False and attempt["result"] == "rejected"
    expected = "config/set:24: rules[0].high:"
    assert any(line.startswith(expected) for line in attempt["errors"]), attempt["errors"]
    assert state["last_attempt"]["errors"] == attempt["errors"]
    assert state["active"]["hash"] == config_hash(h.original_text)
    assert h.config_path.read_text() == h.original_text and h.changes == []
    assert ping["result"]["config_hash"] == config_hash(h.original_text)


async def test_merge_patch_changes_one_threshold(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        patch = {"rules": [{"point": "plc/temp", "high": 85, "deadband": 2}]}
        attempt = attempt_of(await h.request("config/patch", patch))
    assert attempt["result"] == "accepted", attempt
    assert h.changes == [["rules"]]
    running = h.applier.active_data()
    assert running["rules"] == [{"point": "plc/temp", "high": 85, "deadband": 2}]
    original = yaml.safe_load(h.original_text)
    assert {k: v for k, v in running.items() if k != "rules"} == {k: v for k, v in original.items() if k != "rules"}
    assert yaml.safe_load(h.config_path.read_text()) == running


async def test_patch_with_null_removes_a_member_and_invalid_patch_is_refused(tmp_path: Path,
                                                                           mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        removed = attempt_of(await h.request("config/patch", {"rules": None}))
        broken = attempt_of(await h.request("config/patch", {"mqtt": None}))
    assert removed["result"] == "accepted" and "rules" not in h.applier.active_data()
    assert broken["result"] == "rejected"
    assert any(line.startswith("config/patch (merged)") and "mqtt" in line for line in broken["errors"]), broken


async def test_remote_config_cannot_enable_plc_writes(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        text = h.original_text.replace("{name: flow, table: input, address: 0, type: uint16}",
                                       "{name: flow, table: holding, address: 0, type: uint16, writable: true}")
        attempt = attempt_of(await h.request("config/set", text))
        patch = attempt_of(await h.request("config/patch", {"remote": {"public_key_file": "/tmp/mallory.pub"}}))
    assert attempt["result"] == "rejected"
    assert attempt["errors"][0].startswith("local_only: devices[pump].points[flow]: remote config enables")
    assert patch["result"] == "rejected"
    assert patch["errors"][0].startswith("local_only: remote.public_key_file: changed from None to '/tmp/mallory.pub'")
    assert h.changes == []


@pytest.fixture
def owner_keys(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub = tmp_path / "keys" / "owner.key", tmp_path / "keys" / "owner.pub"
    generate_keypair(priv, pub)
    return priv, pub


def signed_settings(pub: Path, tmp_path: Path) -> RemoteSettings:
    return RemoteSettings(require_signature=True, public_key_file=pub, replay_state_file=tmp_path / "replay.json",
                          config_rate_per_min=600, config_burst=50)


async def test_signatures_required_unsigned_and_forged_pushes_are_refused(
        tmp_path: Path, mosquitto: Mosquitto, owner_keys: tuple[Path, Path]) -> None:
    priv, pub = owner_keys
    generate_keypair(tmp_path / "mallory.key", tmp_path / "mallory.pub")
    async with Harness(tmp_path, mosquitto.url, settings=signed_settings(pub, tmp_path)) as h:
        new_text = h.original_text.replace("high: 80", "high: 90")
        bare = attempt_of(await h.request("config/set", new_text))
        unsigned = attempt_of(await h.request("config/set", unsigned_payload(new_envelope("set", "gw-1", new_text))))
        forged = attempt_of(await h.request("config/set", sign_envelope(
            new_envelope("set", "gw-1", new_text), load_private_key(tmp_path / "mallory.key"))))
        genuine = attempt_of(await h.request("config/set", sign_envelope(
            new_envelope("set", "gw-1", new_text, by="owner"), load_private_key(priv))))
        state = await h.wait_state(lambda s: s["active"]["hash"] == config_hash(new_text))
    for refused in (bare, unsigned, forged):
        assert refused["result"] == "rejected" and refused["errors"][0].startswith("bad_signature:"), refused
    assert "--sign" in bare["errors"][0]
    assert "signed with key" in forged["errors"][0]
    assert genuine["result"] == "accepted" and genuine["by"].startswith("owner (key ")
    assert state["signature_required"] is True and state["replay_floor"] == genuine["version"]


async def test_replayed_signed_configs_are_refused(tmp_path: Path, mosquitto: Mosquitto,
                                                   owner_keys: tuple[Path, Path]) -> None:
    priv, pub = owner_keys
    key = load_private_key(priv)
    async with Harness(tmp_path, mosquitto.url, settings=signed_settings(pub, tmp_path)) as h:
        v1 = h.original_text.replace("high: 80", "high: 81")
        v2 = h.original_text.replace("high: 80", "high: 82")
        first = sign_envelope(new_envelope("set", "gw-1", v1, version=100), key)
        assert attempt_of(await h.request("config/set", first))["result"] == "accepted"
        second = sign_envelope(new_envelope("set", "gw-1", v2, version=101), key)
        assert attempt_of(await h.request("config/set", second))["result"] == "accepted"
        replay_same = attempt_of(await h.request("config/set", first))
        replay_fresh_nonce = attempt_of(await h.request("config/set", sign_envelope(
            new_envelope("set", "gw-1", v1, version=100), key)))
        other_agent = attempt_of(await h.request("config/set", sign_envelope(
            new_envelope("set", "gw-2", v1, version=102), key)))
    assert replay_same["errors"][0].startswith("replay: nonce")
    assert replay_fresh_nonce["errors"][0].startswith("replay: version 100 is not newer")
    assert "addressed to agent 'gw-2'" in other_agent["errors"][0]
    assert h.applier.active_text() == v2


async def test_commit_confirm_rolls_back_a_config_that_cuts_off_the_broker(tmp_path: Path,
                                                                           mosquitto: Mosquitto) -> None:
    settings = RemoteSettings(confirm_window_s=3.0, confirm_interval_s=0.2, config_rate_per_min=600, config_burst=50)
    async with Harness(tmp_path, mosquitto.url, settings=settings, with_health=True) as h:
        good = h.original_text.replace("high: 80", "high: 79")
        confirming, final_good = await h.replies("config/set", good.encode(), count=2)
        dead_broker = good.replace(mosquitto.url, "mqtt://127.0.0.1:1")
        first, final = await h.replies("config/set", dead_broker.encode(), count=2)
        state = await h.wait_state(lambda s: (s["last_attempt"] or {}).get("result") == "rolled_back")
    assert attempt_of(confirming)["result"] == "confirming"
    assert attempt_of(final_good)["result"] == "accepted" and "confirmed" in attempt_of(final_good)["message"]
    assert attempt_of(first)["result"] == "confirming"
    rolled = attempt_of(final)
    assert rolled["result"] == "rolled_back"
    assert "unreachable" in rolled["message"] and "3 s confirm window" in rolled["message"]
    assert state["active"]["hash"] == config_hash(good) and state["active"]["source"] == "rollback"
    assert h.applier.active_text() == good and h.config_path.read_text() == good
    assert h.changes == [["rules"], ["publisher"], ["publisher"]]  # applied, then restored
    entries = h.history.entries()
    assert [(e.source, e.result) for e in entries[-2:]] == [("config/set", "rolled_back"), ("rollback", "accepted")]
    assert entries[-2].hash == config_hash(dead_broker)


async def test_state_published_while_broker_down_arrives_after_reconnect(tmp_path: Path,
                                                                         mosquitto: Mosquitto) -> None:
    settings = RemoteSettings(state_retry_s=0.2)
    async with Harness(tmp_path, mosquitto.url, settings=settings) as h:
        await h.wait_state(lambda s: s["last_attempt"] is None)
        await mosquitto.astop()
        assert await h.transport.wait_connected(0.01) in (True, False)
        local = h.original_text.replace("high: 80", "high: 70")
        outcome = await h.service.apply_local(local, "agent.yaml")
        assert outcome.result == "accepted"
        await mosquitto.astart()
        assert await h.transport.wait_connected(30), "transport did not reconnect"
        deadline = asyncio.get_running_loop().time() + 30
        state = await h.retained_state()  # the restarted broker lost its retained messages: wait for ours
        while state is None or state["active"]["hash"] != config_hash(local):
            assert asyncio.get_running_loop().time() < deadline, state
            await asyncio.sleep(0.1)
            state = await h.retained_state()
        fresh = await asyncio.to_thread(ping_with_fresh_session, mosquitto.url)
    assert state["last_attempt"]["kind"] == "local" and state["last_attempt"]["result"] == "accepted"
    assert fresh["ok"] is True, "subscriptions were not renewed after the reconnect"


def ping_with_fresh_session(url: str) -> dict[str, Any]:
    """A ping from a new client (the harness's own client lost its subscriptions with the broker)."""
    with CliSession(BrokerOptions.from_url(url), timeout_s=30) as session:
        correlation = b"after-reconnect"
        session.publish(f"{PREFIX}/cmd/ping", b"{}", correlation_data=correlation, response_topic=session.reply_topic)
        message = session.wait_for(lambda m: m.correlation_data == correlation, 30)
    assert message is not None, "no reply to ping after the broker restart"
    return dict(json.loads(message.payload))


async def _slow(args: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(60)
    return {}


async def _boom(args: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("sensor exploded")


async def _strict(args: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(args.get("points"), list):
        raise CommandError("points must be a list of device/point names")
    return {"values": {p: 1.0 for p in args["points"]}}


async def test_command_errors_timeouts_and_arguments(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = RemoteSettings(command_timeout_s=0.5)
    commands = {"slow": _slow, "boom": _boom, "read": _strict}
    async with Harness(tmp_path, mosquitto.url, settings=settings, commands=commands) as h:
        slow = await h.request("cmd/slow", {})
        boom = await h.request("cmd/boom", {})
        bad = await h.request("cmd/read", {"points": "plc/temp"})
        good = await h.request("cmd/read", {"points": ["plc/temp"]})
        unknown = await h.request("cmd/nope", {})
        not_json = await h.request("cmd/read", b"\xff\x00")
        events = h.audit.recent(20)
    assert slow["error"]["code"] == "timeout"
    assert boom["error"] == {"code": "internal", "message": "RuntimeError: sensor exploded"}
    assert bad["error"]["code"] == "bad_args" and "points must be a list" in bad["error"]["message"]
    assert good == {**good, "ok": True, "result": {"values": {"plc/temp": 1.0}}, "cmd": "read"}
    assert unknown["error"]["code"] == "unknown_command" and "ping" in unknown["error"]["message"]
    assert not_json["error"]["code"] == "bad_payload"
    cmd_events = [e for e in events if e["kind"] == "cmd"]
    assert [e["name"] for e in cmd_events] == ["slow", "boom", "read", "read", "nope", "read"]
    assert [e["ok"] for e in cmd_events] == [False, False, False, True, False, False]


async def test_concurrent_commands_beyond_the_limit_are_refused_as_busy(tmp_path: Path,
                                                                        mosquitto: Mosquitto) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def hold(args: dict[str, Any]) -> dict[str, Any]:
        started.set()
        await release.wait()
        return {"held": True}

    settings = RemoteSettings(max_concurrent_commands=1)
    async with Harness(tmp_path, mosquitto.url, settings=settings, commands={"hold": hold}) as h:
        first = b"first-hold"
        await asyncio.to_thread(h.session.publish, f"{PREFIX}/cmd/hold", b"{}", correlation_data=first,
                                response_topic=h.session.reply_topic)
        async with asyncio.timeout(30):
            await started.wait()
        second = await h.request("cmd/hold", {})
        release.set()
        message = await asyncio.to_thread(h.session.wait_for, lambda m: m.correlation_data == first, 30)
    assert second["error"]["code"] == "busy"
    assert message is not None
    first_reply = json.loads(message.payload)
    assert first_reply == {**first_reply, "ok": True, "result": {"held": True}}


async def test_rate_limit_per_command(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = RemoteSettings(command_rate_per_min=1, command_burst=2)
    async with Harness(tmp_path, mosquitto.url, settings=settings) as h:
        replies = [await h.request("cmd/ping", {}) for _ in range(3)]
        audit = await h.request("cmd/audit", {"count": 5})
    assert [r["ok"] for r in replies] == [True, True, False]
    assert replies[2]["error"]["code"] == "rate_limited" and "retry in" in replies[2]["error"]["message"]
    assert audit["ok"] and len(audit["result"]["events"]) == 3


async def test_config_command_returns_the_running_text_and_state(tmp_path: Path, mosquitto: Mosquitto) -> None:
    async with Harness(tmp_path, mosquitto.url) as h:
        reply = await h.request("cmd/config", {})
    assert reply["result"]["text"] == h.original_text  # nothing secret in it: passwords live in files
    assert reply["result"]["state"]["active"]["hash"] == config_hash(h.original_text)


def test_secret_values_are_masked_but_file_and_env_names_kept() -> None:
    text = ("mqtt:\n  password: hunter2\n  password_file: /etc/edge/pw\n  password_env: MQTT_PW\n"
            "  'token': abc\nx:\n  - api_key: k-123\n  secret:\n    nested: 1\n")
    masked = mask_secret_lines(text)
    assert "hunter2" not in masked and "abc" not in masked and "k-123" not in masked
    assert "password_file: /etc/edge/pw" in masked and "password_env: MQTT_PW" in masked
    assert "  secret:\n    nested: 1" in masked  # a mapping key without an inline value stays


BILLION_LAUGHS = make_config(Path("/x"), "mqtt://127.0.0.1:1") + """\
summaries: {interval: 60s}
lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
lol2: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
lol3: [*b,*b,*b,*b,*b,*b,*b,*b,*b]
"""


async def test_fuzzed_payloads_are_refused_and_the_service_keeps_serving(tmp_path: Path,
                                                                         mosquitto: Mosquitto) -> None:
    rng = random.Random(7)
    payloads: list[tuple[str, bytes, str]] = [
        ("config/set", os.urandom(0) + bytes(rng.getrandbits(8) for _ in range(2000)), "bad_payload"),
        ("config/set", b"a: " + b"x" * (10 * 1024 * 1024), "too_large"),
        ("config/set", ("[" * 50_000 + "]" * 50_000).encode(), "bad_payload"),
        ("config/set", ('{"envelope": ' + "[" * 50_000 + "]" * 50_000 + "}").encode(), "bad_payload"),
        ("config/set", BILLION_LAUGHS.encode(), "bad_payload"),
        ("config/patch", ('{"a":' * 5000 + "1" + "}" * 5000).encode(), "bad_payload"),
        ("config/patch", b"[1, 2, 3]", "bad_payload"),
        ("config/set", b"- just\n- a list\n", "bad_payload"),
        ("config/set", b'{"envelope": {"v": 1, "kind": "set"}}', "bad_payload"),
        ("config/set", b"a: !!python/object/apply:os.system ['true']\n", "bad_payload"),
    ]
    async with Harness(tmp_path, mosquitto.url) as h:
        for suffix, data, code in payloads:
            reply = await h.request(suffix, data)
            attempt = attempt_of(reply)
            assert attempt["result"] == "rejected", (suffix, data[:60], attempt)
            assert attempt["errors"][0].startswith(f"{code}:"), (data[:60], attempt["errors"])
        for junk in (os.urandom(5000), b"{" * 100_000, b"x" * 100_000):
            reply = await h.request("cmd/ping", junk)
            assert reply["ok"] is False and reply["error"]["code"] in ("bad_payload", "too_large")
        ping = await h.request("cmd/ping", {})
    assert ping["ok"] is True
    assert h.applier.active_text() == h.original_text and h.changes == []
    assert h.config_path.read_text() == h.original_text


async def _status(args: dict[str, Any]) -> dict[str, Any]:
    return {"devices": {}}


async def test_settings_from_the_config_section_and_disabled_commands(tmp_path: Path,
                                                                      mosquitto: Mosquitto) -> None:
    from edge_agent.config import load_config_text

    text = make_config(tmp_path / "d", mosquitto.url) + (
        "remote:\n  max_payload: 64kB\n  confirm_window: 5s\n  command_rate: 30/min\n"
        "  commands_enabled: [status]\n")
    settings = RemoteSettings.from_config(load_config_text(text, "agent.yaml").remote, tmp_path / "d")
    assert settings.config_limits.max_bytes == 64_000 and settings.confirm_window_s == 5.0
    assert settings.command_rate_per_min == 30.0 and settings.commands_enabled == frozenset({"status"})
    assert settings.replay_state_file == tmp_path / "d" / "remote-replay.json"
    async with Harness(tmp_path, mosquitto.url, settings=settings, commands={"status": _status, "read": _strict}) as h:
        status = await h.request("cmd/status", {})
        read = await h.request("cmd/read", {"points": ["plc/temp"]})
        ping = await h.request("cmd/ping", {})
        too_big = attempt_of(await h.request("config/set", "a: " + "x" * 70_000))
    assert status["ok"] and ping["ok"]
    assert read["error"]["code"] == "disabled" and "commands_enabled: status" in read["error"]["message"]
    assert too_big["errors"][0].startswith("too_large: config/set payload is 70003 bytes, the limit is 64000")


async def test_local_edit_that_cuts_off_the_broker_is_rolled_back_too(tmp_path: Path, mosquitto: Mosquitto) -> None:
    settings = RemoteSettings(confirm_window_s=1.0, confirm_interval_s=0.2)
    async with Harness(tmp_path, mosquitto.url, settings=settings, with_health=True) as h:
        dead = h.original_text.replace(mosquitto.url, "mqtt://127.0.0.1:1")
        outcome = await h.service.apply_local(dead, str(h.config_path))
        state = await h.wait_state(lambda s: (s["last_attempt"] or {}).get("result") == "rolled_back")
    assert outcome.result == "rolled_back" and "unreachable" in outcome.message
    assert state["last_attempt"]["kind"] == "local" and state["active"]["hash"] == config_hash(h.original_text)
    assert h.applier.active_text() == h.original_text


async def test_the_file_watch_does_not_reapply_a_push_that_was_rolled_back(tmp_path: Path, mosquitto: Mosquitto,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from edge_agent.remote.config_watch import ConfigFileWatch

    settings = RemoteSettings(confirm_window_s=1.0, confirm_interval_s=0.2, config_rate_per_min=600, config_burst=50)
    async with Harness(tmp_path, mosquitto.url, settings=settings, with_health=True) as h:
        record = h.history.record

        def slow_record(*args: Any, **kwargs: Any) -> Any:  # a slow SD card: the file is written well before
            time.sleep(0.3)                                # the push is recorded and becomes the running one
            return record(*args, **kwargs)

        monkeypatch.setattr(h.history, "record", slow_record)
        # wired as the agent wires it (runtime.AgentService.start)
        watch = ConfigFileWatch(h.config_path, h.applier.active_text,
                                lambda text, source: h.service.apply_local(text, source, reread=watch.read),
                                interval_s=0.05)
        watching = asyncio.create_task(watch.run())
        try:
            dead_broker = h.original_text.replace(mosquitto.url, "mqtt://127.0.0.1:1")
            _, final = await h.replies("config/set", dead_broker.encode(), count=2)
            await asyncio.sleep(1.5)  # the watch has seen every write by now
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
    assert attempt_of(final)["result"] == "rolled_back"
    assert h.changes == [["publisher"], ["publisher"]]  # the push and its rollback, nothing applied again
    assert h.config_path.read_text() == h.original_text == h.applier.active_text()


async def test_a_change_still_unconfirmed_when_the_agent_stops_is_undone_at_the_next_start(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    from edge_agent.remote.unconfirmed import marker_path, undo_unconfirmed

    settings = RemoteSettings(confirm_window_s=30.0, confirm_interval_s=0.2, config_rate_per_min=600,
                              config_burst=50)
    async with Harness(tmp_path, mosquitto.url, settings=settings, with_health=True) as h:
        dead_broker = h.original_text.replace(mosquitto.url, "mqtt://127.0.0.1:1")
        [confirming] = await h.replies("config/set", dead_broker.encode(), count=1)
        assert attempt_of(confirming)["result"] == "confirming"
        await poll_until(lambda: marker_path(h.history).exists(), 10, "the change marked as on trial")
    # the agent stopped (or lost power) inside the confirm window: the file holds the unconfirmed change
    assert h.config_path.read_text() == dead_broker
    assert undo_unconfirmed(h.config_path, h.history)  # what the next start does before loading the config
    assert h.config_path.read_text() == h.original_text
    entries = h.history.entries()
    assert [(e.source, e.result) for e in entries[-2:]] == [("config/set", "rolled_back"), ("rollback", "accepted")]
    assert entries[-1].hash == config_hash(h.original_text) and not marker_path(h.history).exists()
    assert not undo_unconfirmed(h.config_path, h.history)  # once


async def test_a_pushed_change_is_on_trial_before_it_reaches_the_file(
        tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch) -> None:
    """The marker is durable before the config file changes: a power cut between the two writes can
    neither keep an unconfirmed change (file first) nor undo anything that never reached the file."""
    import edge_agent.remote.applier as applier_module
    from edge_agent.remote.unconfirmed import mark_unconfirmed, marker_path, undo_unconfirmed

    settings = RemoteSettings(confirm_window_s=30.0, confirm_interval_s=0.2, config_rate_per_min=600,
                              config_burst=50)
    seen: list[tuple[str, bool]] = []
    write = applier_module.write_active_config
    async with Harness(tmp_path, mosquitto.url, settings=settings, with_health=True) as h:
        def watched_write(path: Path, text: str) -> None:
            seen.append((text, marker_path(h.history).exists()))
            write(path, text)

        monkeypatch.setattr(applier_module, "write_active_config", watched_write)
        dead_broker = h.original_text.replace(mosquitto.url, "mqtt://127.0.0.1:1")
        [confirming] = await h.replies("config/set", dead_broker.encode(), count=1)
        assert attempt_of(confirming)["result"] == "confirming"
        assert seen[0] == (dead_broker, True)  # on trial at the moment the file changed
    # A power cut between the two writes: the marker is there, the file still holds the old config.
    mark_unconfirmed(h.history, h.original_text, dead_broker)
    h.config_path.write_text(h.original_text)
    entries = len(h.history.entries())
    assert not undo_unconfirmed(h.config_path, h.history)
    assert h.config_path.read_text() == h.original_text and not marker_path(h.history).exists()
    assert len(h.history.entries()) == entries  # nothing rolled back, nothing recorded


async def test_a_confirmed_change_leaves_nothing_to_undo_and_an_edited_file_is_kept(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    from edge_agent.remote.unconfirmed import mark_unconfirmed, marker_path, undo_unconfirmed

    settings = RemoteSettings(confirm_window_s=1.0, confirm_interval_s=0.2, config_rate_per_min=600,
                              config_burst=50)
    async with Harness(tmp_path, mosquitto.url, settings=settings, with_health=True) as h:
        good = h.original_text.replace("high: 80", "high: 79")
        _, final = await h.replies("config/set", good.encode(), count=2)
    assert attempt_of(final)["result"] == "accepted" and not marker_path(h.history).exists()
    assert not undo_unconfirmed(h.config_path, h.history)
    mark_unconfirmed(h.history, h.original_text, good)
    h.config_path.write_text(good.replace("high: 79", "high: 78"))  # an engineer edited the file since
    assert not undo_unconfirmed(h.config_path, h.history)
    assert "high: 78" in h.config_path.read_text() and not marker_path(h.history).exists()


async def test_run_agent_undoes_an_unconfirmed_change_before_it_starts(tmp_path: Path) -> None:
    from edge_agent.config import load_config
    from edge_agent.remote.history import ConfigHistory
    from edge_agent.remote.unconfirmed import mark_unconfirmed
    from edge_agent.runtime import run_agent

    path = tmp_path / "agent.yaml"
    previous = make_config(tmp_path / "data", "mqtt://127.0.0.1:1")
    unconfirmed = previous.replace("high: 80", "high: 60")
    path.write_text(unconfirmed)
    history = ConfigHistory(tmp_path / "data")
    history.record(unconfirmed, version=None, label="", by="remote", source="config/set")
    mark_unconfirmed(history, previous, unconfirmed)
    assert await run_agent(load_config(path), path, duration_s=0.5) == 0
    assert path.read_text() == previous
    assert [(e.source, e.result) for e in history.entries()][-2:] == [("config/set", "rolled_back"),
                                                                      ("rollback", "accepted")]
