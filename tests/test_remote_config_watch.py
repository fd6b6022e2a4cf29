"""FileConfigApplier (validate, apply live, persist, restore on failure) and the config file watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from edge_agent.errors import ConfigError
from edge_agent.remote.applier import FileConfigApplier
from edge_agent.remote.config_watch import ConfigFileWatch
from edge_agent.remote.contracts import ApplyOutcome
from edge_agent.remote.history import ConfigHistory, config_hash

try:
    from tests.test_remote_support import changed_parts, make_config
except ImportError:  # tests/ is not a package
    from test_remote_support import changed_parts, make_config  # type: ignore[no-redef]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(make_config(tmp_path / "data", "mqtt://127.0.0.1:1883"))
    return path


def test_startup_validates_and_records_history(tmp_path: Path, config_file: Path) -> None:
    history = ConfigHistory(tmp_path / "data")
    applier = FileConfigApplier(config_file, history)
    assert [e.source for e in history.entries()] == ["startup"]
    FileConfigApplier(config_file, history)  # same text: no second entry
    assert len(history.entries()) == 1
    assert applier.config.agent.id == "gw-1"
    config_file.write_text("agent: {id: gw-1}\n")
    with pytest.raises(ConfigError):
        FileConfigApplier(config_file, history)


async def test_apply_validates_persists_and_reports_restarted_parts(tmp_path: Path, config_file: Path) -> None:
    calls: list[list[str]] = []

    async def on_change(old: Any, new: Any) -> list[str]:
        calls.append(changed_parts(old, new))
        return calls[-1]

    history = ConfigHistory(tmp_path / "data")
    applier = FileConfigApplier(config_file, history, on_change=on_change)
    original = applier.active_text()
    bad = await applier.apply(original.replace("high: 80", "high: hot"), "push.yaml", "bob", 3)
    assert bad.result == "rejected" and bad.errors[0].startswith("push.yaml:24: rules[0].high")
    assert text_of(config_file) == original and calls == []
    same = await applier.apply(original, "push.yaml", "bob", 3)
    assert same.result == "accepted" and "identical" in same.message and calls == []
    new = original.replace("port: 5020", "port: 5030")
    good = await applier.apply(new, "push.yaml", "bob", 4)
    assert good == ApplyOutcome("accepted", config_hash(new), restarted=["device:plc"])
    assert text_of(config_file) == new and applier.active_text() == new
    latest = history.latest()
    assert latest is not None and (latest.by, latest.version, latest.source) == ("bob", 4, "push.yaml")


async def test_a_validator_crash_is_a_rejection(tmp_path: Path, config_file: Path) -> None:
    applier = FileConfigApplier(config_file, ConfigHistory(tmp_path / "data"))
    original = applier.active_text()
    outcome = await applier.apply(original + "x: !!timestamp nope\n", "push", "bob", None)
    assert outcome.result == "rejected" and outcome.errors[0].startswith("push")  # ConfigError or a crash
    assert applier.active_text() == original


async def test_failed_live_apply_restores_previous_config(tmp_path: Path, config_file: Path) -> None:
    applied: list[int] = []

    async def on_change(old: Any, new: Any) -> list[str]:
        applied.append(new.devices[0].port)
        if new.devices[0].port == 9999:
            raise OSError("port 9999 refused")
        return ["device:plc"]

    applier = FileConfigApplier(config_file, ConfigHistory(tmp_path / "data"), on_change=on_change)
    original = applier.active_text()
    outcome = await applier.apply(original.replace("port: 5020", "port: 9999"), "push", "bob", None)
    assert outcome.result == "rolled_back" and "port 9999 refused" in outcome.errors[0]
    assert applied == [9999, 5020]  # tried the new one, then put the old one back live
    assert applier.active_text() == original and text_of(config_file) == original


def text_of(path: Path) -> str:
    """The file's text (a helper so async tests read small files without lint noise)."""
    return path.read_text()


def _touch(path: Path) -> None:
    """Move mtime one second forward without changing the content."""
    mtime = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(mtime, mtime))


def _bump(path: Path, text: str) -> None:
    """Write ``text`` and move mtime forward, so even a same-size edit within one clock tick is seen."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    os.utime(path, ns=(before + 1_000_000_000, before + 1_000_000_000))


async def test_watch_applies_local_edits_and_refuses_invalid_ones(tmp_path: Path, config_file: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    applier = FileConfigApplier(config_file, ConfigHistory(tmp_path / "data"))

    async def apply_local(text: str, source: str) -> ApplyOutcome:
        return await applier.apply(text, source, "local", None)

    watch = ConfigFileWatch(config_file, applier.active_text, apply_local, interval_s=0.05)
    original = applier.active_text()
    assert await watch.check_now() is None  # first look: unchanged text
    invalid = original.replace("high: 80", "high: [80]")
    _bump(config_file, invalid)
    refused = await watch.check_now()
    assert refused is not None and refused.result == "rejected"
    assert applier.active_text() == original
    assert f"{config_file}:24: rules[0].high" in caplog.text
    _touch(config_file)
    assert await watch.check_now() is None  # same bad text: not retried, not logged again
    retried = await watch.check_now(force=True)  # SIGHUP retries
    assert retried is not None and retried.result == "rejected"

    edited = original.replace("high: 80", "high: 77")
    task = asyncio.create_task(watch.run())
    try:
        _bump(config_file, edited)
        deadline = asyncio.get_running_loop().time() + 30
        while applier.active_text() != edited:
            assert asyncio.get_running_loop().time() < deadline, "local edit not picked up"
            await asyncio.sleep(0.02)
        watch.request_reload()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert watch.last_outcome is not None and watch.last_outcome.result == "accepted"
    assert text_of(config_file) == edited


async def test_watch_tolerates_a_missing_file(tmp_path: Path, config_file: Path) -> None:
    applier = FileConfigApplier(config_file, ConfigHistory(tmp_path / "data"))

    async def apply_local(text: str, source: str) -> ApplyOutcome:
        return await applier.apply(text, source, "local", None)

    watch = ConfigFileWatch(config_file, applier.active_text, apply_local, interval_s=0.05)
    os.unlink(config_file)
    assert await watch.check_now(force=True) is None
    assert applier.active_text().startswith("agent:")


async def test_an_identity_change_is_rejected_without_a_restore(tmp_path: Path, config_file: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from edge_agent.agent import Agent

    history = ConfigHistory(tmp_path / "data")
    applier = FileConfigApplier(config_file, history)
    agent = Agent(applier.config)  # refuses before it touches anything: no need to start it
    calls: list[str] = []

    async def on_change(old: Any, new: Any) -> list[str]:
        calls.append(str(new.agent.data_dir))
        return await agent.reconfigure(old, new)

    applier = FileConfigApplier(config_file, history, on_change=on_change)
    original = applier.active_text()
    moved = original.replace(str(tmp_path / "data"), str(tmp_path / "elsewhere"))
    assert moved != original
    outcome = await applier.apply(moved, "push.yaml", "bob", 5)
    assert outcome.result == "rejected" and "refused before anything changed" in outcome.message
    assert outcome.errors == ["push.yaml: agent.id, agent.site and agent.data_dir cannot change while the agent "
                              "runs; edit the local config file and restart the service"]
    assert calls == [str(tmp_path / "elsewhere")]  # tried once, never "restored"
    assert text_of(config_file) == original and len(history.entries()) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_patches_start_from_the_running_config_read_as_the_loader_reads_it(tmp_path: Path,
                                                                           config_file: Path) -> None:
    # YAML 1.2, like the loader: 010 is ten (YAML 1.1 says eight) and off/on are text (1.1 says false/true)
    text = config_file.read_text().replace("{name: flow, table: input, address: 0, type: uint16}",
                                           "{name: flow, table: input, address: 010, type: uint16, "
                                           "enum: {0: off, 1: on}}")
    assert "address: 010" in text
    config_file.write_text(text)
    applier = FileConfigApplier(config_file, ConfigHistory(tmp_path / "data"))
    flow = applier.active_data()["devices"][1]["points"][0]
    assert flow["address"] == 10 and flow["enum"] == {0: "off", 1: "on"}
    assert applier.config.devices[1].points[0].address == 10


@pytest.mark.parametrize("edit, field", [
    (("  topic_prefix: edge/lab/gw-1\n", "  topic_prefix: edge/lab/gw-9\n"), "mqtt.topic_prefix"),
    (("  topic_prefix: edge/lab/gw-1\n", "  topic_prefix: edge/lab/gw-1\n  client_id: other\n"), "mqtt.client_id"),
    (("rules:\n", "remote:\n  commands_enabled: [ping]\nrules:\n"), "remote"),
])
async def test_settings_read_once_at_start_up_are_refused_live(tmp_path: Path, config_file: Path,
                                                                edit: tuple[str, str], field: str) -> None:
    from edge_agent.agent import Agent

    history = ConfigHistory(tmp_path / "data")
    agent = Agent(FileConfigApplier(config_file, history).config)

    async def on_change(old: Any, new: Any) -> list[str]:
        return await agent.reconfigure(old, new)

    applier = FileConfigApplier(config_file, history, on_change=on_change)
    original = applier.active_text()
    assert edit[0] in original
    outcome = await applier.apply(original.replace(*edit), "local edit", "operator", None)
    assert outcome.result == "rejected" and "refused before anything changed" in outcome.message
    assert outcome.errors[0].startswith(f"local edit: {field} cannot change while the agent runs")
    assert text_of(config_file) == original


async def test_a_device_that_cannot_be_built_refuses_the_change_while_everything_runs(
        tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from edge_agent.agent import Agent

    monkeypatch.delenv("EDGE_TEST_UNSET_PASSWORD", raising=False)
    history = ConfigHistory(tmp_path / "data")
    agent = Agent(FileConfigApplier(config_file, history).config)
    applier = FileConfigApplier(config_file, history, on_change=agent.reconfigure, config=agent.cfg)
    for name, runner in agent.devices.items():
        agent._start_device(name, runner)
    running = {name: runner.task for name, runner in agent.devices.items()}
    original = applier.active_text()
    opc = ("  - name: opc\n    protocol: opcua\n    endpoint: opc.tcp://127.0.0.1:4999/server\n"
           "    username: op\n    password_env: EDGE_TEST_UNSET_PASSWORD\n"
           "    points:\n      - {name: flow, node: \"ns=3;i=1001\"}\n")
    changed = original.replace("    port: 5021\n", "    port: 5022\n").replace("rules:\n", opc + "rules:\n")
    try:
        outcome = await applier.apply(changed, "config/set", "remote", None)
        assert outcome.result == "rejected" and outcome.errors[0].startswith("config/set: device opc: ")
        assert "EDGE_TEST_UNSET_PASSWORD" in outcome.errors[0]
        assert {name: runner.task for name, runner in agent.devices.items()} == running  # nothing restarted
        assert all(task is not None and not task.done() for task in running.values())
        assert agent.cfg is applier.config and text_of(config_file) == original
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        for name in list(agent.devices):
            await agent._stop_device(name)


# ------------------------------------------------------------------ checks in a child that cannot run
def child_validator(text: str, source: str) -> Any:
    """What a lean agent validates with: the real child process (edge_agent.config.isolated)."""
    from edge_agent.config import isolated

    return isolated._in_child(("text", text, source, None), source)


async def test_a_check_that_cannot_run_is_no_verdict_and_the_running_config_stays(
        tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    applier = FileConfigApplier(config_file, ConfigHistory(tmp_path / "data"), validate=child_validator)
    original = applier.active_text()
    new = original.replace("port: 5020", "port: 5030")
    monkeypatch.setattr(sys, "executable", "/bin/false")  # e.g. no process slot left
    outcome = await applier.apply(new, "push", "bob", None)
    assert outcome.result == "rejected" and outcome.unchecked
    assert "could not be checked" in outcome.message and "ended with code 1" in outcome.errors[0]
    assert applier.active_text() == original and text_of(config_file) == original
    monkeypatch.undo()
    assert (await applier.apply(new, "push", "bob", None)).result == "accepted"


async def test_a_rollback_needs_no_second_check(
        tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    applier = FileConfigApplier(config_file, ConfigHistory(tmp_path / "data"), validate=child_validator)
    original, before = applier.active_text(), applier.config
    new = original.replace("port: 5020", "port: 5030")
    assert (await applier.apply(new, "push", "bob", None, on_trial=True)).result == "accepted"
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the trial's health check fails, and so would a child
    undo = await applier.apply(original, "rollback", "commit-confirm", None)
    assert undo.result == "accepted" and applier.config is before and text_of(config_file) == original
    applier.end_confirm()
    # outside a trial a change is checked as always
    assert (await applier.apply(new, "push", "bob", None)).unchecked


async def test_the_watch_tries_an_unchecked_edit_again(
        tmp_path: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    applier = FileConfigApplier(config_file, ConfigHistory(tmp_path / "data"), validate=child_validator)

    async def apply_local(text: str, source: str) -> ApplyOutcome:
        return await applier.apply(text, source, "local", None)

    watch = ConfigFileWatch(config_file, applier.active_text, apply_local, interval_s=0.05)
    await watch.check_now()
    edited = applier.active_text().replace("port: 5020", "port: 5030")
    _bump(config_file, edited)
    monkeypatch.setattr(sys, "executable", "/bin/false")
    first = await watch.check_now()
    assert first is not None and first.unchecked
    assert await watch.check_now() is None  # waits before the next try
    monkeypatch.undo()
    await asyncio.sleep(0.06)
    again = await watch.check_now()
    assert again is not None and again.result == "accepted" and applier.active_text() == edited
