"""``edge-agent buffer stats|peek|export|purge`` against an outbox file written by the real Outbox."""

from __future__ import annotations

import argparse
import base64
import io
import json
from pathlib import Path

import pytest

from edge_agent.buffer_cli import (
    add_buffer_arguments,
    buffer_export,
    buffer_peek,
    buffer_purge,
    buffer_stats,
    outbox_path,
    run_buffer_command,
)
from edge_agent.outbox import Outbox
from edge_agent.records import Priority

pytestmark = pytest.mark.usefixtures("no_thread_leak")


@pytest.fixture
async def data_dir(tmp_path: Path) -> Path:
    ob = await Outbox.open(outbox_path(tmp_path), 10**8, None)
    await ob.put_many([("edge/s/gw/summary/p", b'{"seq":%d}' % i, Priority.SUMMARY) for i in range(3)])
    await ob.put("edge/s/gw/alerts/p", b'{"state":"raised"}', Priority.ALERT)
    await ob.put("edge/s/gw/telemetry/plc", b"\x00\xffbinary", Priority.TELEMETRY)
    await ob.close()
    return tmp_path


def run(data_dir: Path, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    add_buffer_arguments(parser)
    out = io.StringIO()
    code = run_buffer_command(data_dir, parser.parse_args(list(argv)), out)
    return code, out.getvalue()


def test_stats_counts_per_class(data_dir: Path) -> None:
    stats = buffer_stats(data_dir)
    assert stats["records"] == 5
    assert stats["by_class"]["summary"]["records"] == 3 and stats["by_class"]["alert"]["records"] == 1
    assert stats["by_class"]["vibration"] == {"records": 0, "bytes": 0, "oldest_age_s": None}
    assert stats["evicted"]["telemetry"] == 0
    code, text = run(data_dir, "stats")
    assert code == 0 and "5 records" in text and "summary" in text
    code, text = run(data_dir, "stats", "--json")
    assert json.loads(text)["records"] == 5


def test_peek_shows_send_order_and_decodes_payloads(data_dir: Path) -> None:
    rows = buffer_peek(data_dir, 3)
    assert [r["class"] for r in rows] == ["alert", "summary", "summary"]
    assert rows[0]["payload"] == {"state": "raised"} and rows[1]["payload"] == {"seq": 0}
    assert buffer_peek(data_dir, 10, "telemetry")[0]["payload_base64"] == "AP9iaW5hcnk="
    with pytest.raises(ValueError, match="unknown class 'alarm'"):
        buffer_peek(data_dir, 1, "alarm")


def test_export_writes_json_lines(data_dir: Path, tmp_path: Path) -> None:
    code, text = run(data_dir, "export")
    lines = [json.loads(x) for x in text.splitlines()]
    assert code == 0 and len(lines) == 5 and lines[0]["topic"] == "edge/s/gw/alerts/p"
    target = tmp_path / "out.jsonl"
    assert run(data_dir, "export", "-o", str(target), "--class", "summary")[0] == 0
    assert len(target.read_text().splitlines()) == 3


def test_purge_needs_yes_and_deletes(data_dir: Path) -> None:
    assert run(data_dir, "purge")[0] == 2
    assert buffer_stats(data_dir)["records"] == 5
    assert run(data_dir, "purge", "--class", "summary", "--yes") == (0, "purged 3 records\n")
    assert buffer_purge(data_dir, older_than_s=3600) == 0  # nothing is an hour old
    assert buffer_purge(data_dir) == 2
    assert buffer_stats(data_dir)["records"] == 0


async def test_purged_outbox_reopens_with_correct_counts(data_dir: Path) -> None:
    buffer_purge(data_dir, "alert")
    ob = await Outbox.open(outbox_path(data_dir), 10**8, None)
    try:
        assert ob.stats()["depth"]["alert"] == 0 and ob.stats()["records"] == 4
    finally:
        await ob.close()


def test_missing_outbox_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(tmp_path / "nowhere", "stats")
    assert code == 2
    assert "no outbox at" in capsys.readouterr().err


def test_edge_agent_buffer_command_line(data_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.cli import main as edge_agent_main

    assert edge_agent_main(["buffer", "--data-dir", str(data_dir), "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 5

    example = (Path(__file__).resolve().parents[1] / "config" / "example.yaml").read_text()
    config = tmp_path / "agent.yaml"
    config.write_text(example.replace("./var/edge-agent", str(data_dir)))
    assert edge_agent_main(["buffer", "-c", str(config), "peek", "-n", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["class"] == "alert"

    assert edge_agent_main(["buffer", "-c", str(tmp_path / "missing.yaml"), "stats"]) == 2


def test_purge_refuses_while_the_agent_runs(data_dir: Path) -> None:
    """Under a running agent a purge broke its accounting (it then evicted alerts to make room it had)."""
    from edge_agent.data_dir_lock import DataDirLock

    agent = DataDirLock(data_dir)
    agent.acquire()
    try:
        with pytest.raises(ValueError, match=r"in use by another edge-agent .*purge works on a stopped agent"):
            buffer_purge(data_dir)
        assert buffer_stats(data_dir)["records"] == 5
    finally:
        agent.release()
    assert buffer_purge(data_dir) == 5


async def test_export_keeps_the_exact_bytes_and_stays_valid_json(tmp_path: Path) -> None:
    ob = await Outbox.open(outbox_path(tmp_path), 10**8, None)
    payloads = [b'{"a": 1,  "b": [1, 2]}', b'{"x": NaN}', b'{"t": "\\ud800"}', b"\x00\xff"]
    await ob.put_many([("t/p", p, Priority.SUMMARY) for p in payloads])
    await ob.close()
    out = io.StringIO()
    assert buffer_export(tmp_path, out) == 4
    rows = [json.loads(line) for line in out.getvalue().splitlines()]  # every line valid JSON
    assert [base64.b64decode(r["payload_base64"]) for r in rows] == payloads
    assert rows[0]["payload"] == {"a": 1, "b": [1, 2]} and rows[1]["payload"] == {"x": "NaN"}
    assert out.getvalue().isascii()
