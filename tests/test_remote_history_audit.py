"""Config history on disk (atomic files, pruning, rollback target) and the rotated audit log."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge_agent.remote.atomic_file import write_atomic
from edge_agent.remote.audit import AuditLog, redact
from edge_agent.remote.history import ConfigHistory, config_hash, write_active_config


def test_config_hash_is_sha256_prefix() -> None:
    # sha256("") = e3b0c44298fc1c149afbf4c8996fb924…
    assert config_hash("") == "e3b0c44298fc1c14"
    assert config_hash("a: 1\n") != config_hash("a: 2\n")


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "cfg" / "agent.yaml"
    write_atomic(target, b"one\n")
    write_atomic(target, b"two\n", mode=0o600)
    assert target.read_bytes() == b"two\n"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert sorted(p.name for p in target.parent.iterdir()) == ["agent.yaml"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "agent.yaml"
    write_active_config(target, "old: 1\n")

    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # type: ignore[arg-type]  # fails after the temp file was created
    assert target.read_text() == "old: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["agent.yaml"]


def test_history_records_prunes_and_finds_rollback_target(tmp_path: Path) -> None:
    history = ConfigHistory(tmp_path, keep=3)
    texts = [f"rev: {i}\n" for i in range(5)]
    entries = [history.record(t, version=i, label=f"v{i}", by="alice", source="remote")
               for i, t in enumerate(texts)]
    stored = history.entries()
    assert [e.seq for e in stored] == [3, 4, 5]
    assert len(list(history.directory.iterdir())) == 6
    assert history.load_text(stored[-1]) == "rev: 4\n"
    assert stored[-1].hash == config_hash("rev: 4\n")
    assert history.rollback_target() == entries[3]
    history.mark(stored[1], "rolled_back")
    assert history.rollback_target() == entries[2]
    meta = json.loads((history.directory / f"{stored[1].stem}.json").read_text())
    assert meta["result"] == "rolled_back" and meta["by"] == "alice"


def test_history_keeps_at_least_the_running_config(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="keep=0"):
        ConfigHistory(tmp_path, keep=0)
    history = ConfigHistory(tmp_path, keep=1)
    history.record("a: 1\n", version=None, label="", by="local", source="startup")
    history.record("a: 2\n", version=None, label="", by="local", source="file")
    assert [history.load_text(e) for e in history.entries()] == ["a: 2\n"]
    assert history.rollback_target() is None


def test_audit_appends_json_lines_and_redacts(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", fsync=False)
    log.append({"kind": "cmd", "name": "read", "args": {"points": ["a"], "password": "hunter2"}})
    log.append({"kind": "config", "body": "x" * 2000})
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["args"] == {"points": ["a"], "password": "***"}
    assert isinstance(first["ts"], int)
    assert len(second["body"]) < 600
    assert [e["kind"] for e in log.recent(10)] == ["cmd", "config"]


def test_audit_rotation_bounds_disk_use(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=2048, backups=2, fsync=False)
    for i in range(200):
        log.append({"kind": "cmd", "seq": i, "pad": "p" * 40})
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    assert all(p.stat().st_size <= 2048 for p in tmp_path.iterdir())
    recent = log.recent(5)
    assert [e["seq"] for e in recent] == [195, 196, 197, 198, 199]


def test_redact_bounds_depth_and_bytes() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(20):
        node["n"] = {}
        node = node["n"]  # type: ignore[assignment]
    assert "…" in json.dumps(redact(deep), ensure_ascii=False)
    assert redact({"blob": b"abc"}) == {"blob": "<3 bytes>"}
