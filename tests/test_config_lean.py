"""Lean config models: the running agent holds its config without pydantic, validated in a child process.

``edge-agent run`` switches to lean models (edge_agent.config.mode) and validates through
edge_agent.config.isolated. These tests compare what a lean process holds against what pydantic builds in
process, field by field, for every example and test config; check that the lean classes behave like the
models where the runtime relies on them (equality, hashing, frozen fields, copies, pickles); that errors are
the loader's own lines; and that a validation child that cannot do its work is reported as such, never as
an accepted or an invalid config.
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import isolated, load_config, load_config_text
from edge_agent.config.isolated import ConfigCheckFailed, load_config_checked, share_equal_values
from edge_agent.errors import ConfigError

try:
    from tests.test_config import MINIMAL
except ImportError:  # tests/ is not a package
    from test_config import MINIMAL  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parent.parent
GOOD_CONFIGS = [ROOT / "config" / "example.yaml", ROOT / "config" / "full-example.yaml",
                ROOT / "config" / "demo.yaml"]
BAD_CONFIGS = sorted((ROOT / "tests" / "configs" / "bad").glob("*.yaml"))

# The same canonical dump in both processes: class names, field values, exact floats.
DUMP = textwrap.dedent('''
    import enum, pathlib

    def dump(value):
        if hasattr(type(value), "model_config") and hasattr(value, "__dict__"):
            cls = type(value)
            return {"__class__": cls.__module__ + "." + cls.__qualname__,
                    **{k: dump(v) for k, v in value.__dict__.items()}}
        if isinstance(value, enum.Enum):
            return {"__enum__": repr(value)}
        if isinstance(value, (list, tuple)):
            return [type(value).__name__, [dump(v) for v in value]]
        if isinstance(value, dict):
            return {"__mapping__": [[dump(k), dump(v)] for k, v in value.items()]}
        if isinstance(value, (set, frozenset)):
            return {"__set__": sorted(repr(v) for v in value)}
        if isinstance(value, float):
            return {"__float__": value.hex()}
        if isinstance(value, pathlib.PurePath):
            return {"__path__": str(value)}
        if value is None or isinstance(value, (bool, int, str)):
            return [type(value).__name__, value]
        return [type(value).__name__, repr(value)]
''')
_namespace: dict[str, Any] = {}
exec(DUMP, _namespace)
dump = _namespace["dump"]


def run_lean(body: str) -> Any:
    """Run ``body`` in a fresh interpreter whose config models are lean; return the JSON it prints last."""
    code = "import json, sys\nfrom edge_agent.config.mode import use_lean_models\nassert use_lean_models()\n"
    code += DUMP + textwrap.dedent(body)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_lean_process_holds_what_pydantic_builds_and_never_loads_pydantic() -> None:
    lean = run_lean(f"""
        from edge_agent.config.isolated import load_config_checked
        out = {{p: dump(load_config_checked(p)) for p in {[str(p) for p in GOOD_CONFIGS]!r}}}
        import edge_agent.cli, edge_agent.runtime, drivers.modbus.client  # all that `run` loads for Modbus
        out["modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("pydantic", "pydantic_core", "yaml"))
        print(json.dumps(out))
    """)
    assert lean.pop("modules") == []
    for path in GOOD_CONFIGS:
        assert lean[str(path)] == json.loads(json.dumps(dump(load_config(path)))), path


def test_lean_models_behave_like_the_models_the_runtime_reads() -> None:
    path = ROOT / "config" / "example.yaml"
    lean = run_lean(f"""
        import copy, pickle
        from edge_agent.config.isolated import load_config_checked
        cfg = load_config_checked({str(path)!r})
        point = cfg.devices[0].points[0]
        facts = {{"equal_copy": cfg == copy.deepcopy(cfg), "equal_reloaded": cfg == load_config_checked({str(path)!r}),
                 "point_hash_stable": hash(point) == hash(copy.copy(point)),
                 "differs": cfg.devices[0].points[0] != cfg.devices[0].points[1]}}
        for what, action in (("assign_frozen", lambda: setattr(point, "name", "x")),
                             ("hash_unfrozen", lambda: hash(cfg.agent)),
                             ("construct", lambda: type(point)(name="x"))):
            try:
                action()
                facts[what] = "no error"
            except TypeError as exc:
                facts[what] = str(exc)
        facts["pickle"] = pickle.dumps(cfg).hex()
        facts["password"] = cfg.mqtt.read_password()
        print(json.dumps(facts))
    """)
    assert lean["equal_copy"] and lean["equal_reloaded"] and lean["point_hash_stable"] and lean["differs"]
    assert "frozen" in lean["assign_frozen"]
    assert "unhashable" in lean["hash_unfrozen"]
    assert "cannot build or validate" in lean["construct"]
    assert lean["password"] is None
    # a lean pickle unpickles into the validating models, equal to a fresh load
    assert pickle.loads(bytes.fromhex(lean["pickle"])) == load_config(path)


@pytest.mark.parametrize("path", BAD_CONFIGS, ids=lambda p: p.stem)
def test_errors_from_the_child_are_the_loaders_lines(path: Path) -> None:
    with pytest.raises(ConfigError) as in_process:
        load_config(path)
    with pytest.raises(ConfigError) as in_child:
        isolated._in_child(("path", str(path), None), str(path))
    assert in_child.value.errors == in_process.value.errors


def test_pushed_text_validates_in_the_child_with_its_source_name() -> None:
    text = (ROOT / "config" / "example.yaml").read_text(encoding="utf-8")
    assert isolated._in_child(("text", text, "<remote>", None), "<remote>") == load_config(
        ROOT / "config" / "example.yaml")
    with pytest.raises(ConfigError) as refused:
        isolated._in_child(("text", text.replace("poll_interval", "poll_intervall", 1), "<remote>", None),
                           "<remote>")
    assert refused.value.errors and all(line.startswith("<remote>:") for line in refused.value.errors)
    with pytest.raises(ConfigError, match="larger than the limit of 100 bytes"):
        isolated._in_child(("text", text, "<remote>", 100), "<remote>")


def test_in_process_models_validate_in_process() -> None:
    path = ROOT / "config" / "example.yaml"
    assert load_config_checked(path) == load_config(path)  # this test process has pydantic models


@pytest.mark.parametrize(("executable", "message"), [
    ("/nonexistent/python3", "cannot start the config validation process"),
    ("/bin/false", "ended with code 1"),
    ("/bin/echo", "unreadable answer"),
])
def test_a_child_that_cannot_answer_is_neither_valid_nor_invalid(
        monkeypatch: pytest.MonkeyPatch, executable: str, message: str) -> None:
    monkeypatch.setattr(sys, "executable", executable)
    with pytest.raises(ConfigCheckFailed, match=message) as failed:
        isolated._in_child(("path", "config/example.yaml", None), "config/example.yaml")
    assert not isinstance(failed.value, ConfigError)


def test_a_stuck_child_is_stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sleeper = tmp_path / "sleeper"
    sleeper.write_text("#!/bin/sh\nsleep 30\n")
    sleeper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(sleeper))
    monkeypatch.setattr(isolated, "CHILD_TIMEOUT_S", 0.5)
    with pytest.raises(ConfigCheckFailed, match="took over"):
        isolated._in_child(("path", "config/example.yaml", None), "config/example.yaml")


def test_share_equal_values_makes_equal_values_one_object() -> None:
    points = "\n".join(f"      - {{name: p{i}, address: {i}, type: int16, scale: 0.01, offset: -0.0, unit: bar}}"
                       for i in range(20))
    text = MINIMAL.replace("{points}", points)
    unpickled = pickle.loads(pickle.dumps(load_config_text(text, "<test>")))
    assert len({id(p.scale) for p in unpickled.devices[0].points}) == 20  # pickle writes every number anew
    cfg = isolated._in_child(("text", text, "<test>", None), "<test>")
    assert dump(cfg) == dump(load_config_text(text, "<test>"))
    for column in zip(*((p.type, p.unit, p.scale, p.offset) for p in cfg.devices[0].points), strict=True):
        assert len({id(v) for v in column}) == 1
    assert math.copysign(1.0, cfg.devices[0].points[3].offset) == -1.0


def test_share_equal_values_keeps_signed_zero_and_types_apart() -> None:
    data: dict[str, Any] = {"a": 0.0, "b": -0.0, "c": 1, "d": 1.0, "e": [0.0, -0.0, True]}
    share_equal_values(data)  # plain containers are walked too; only models' fields are rewritten there
    assert math.copysign(1.0, data["e"][1]) == -1.0 and math.copysign(1.0, data["b"]) == -1.0
    assert type(data["c"]) is int and type(data["d"]) is float and data["e"][2] is True


def test_cli_run_reports_a_failed_check_as_a_failure_not_a_config_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent import cli

    def cannot(path: object, **_: object) -> None:
        raise ConfigCheckFailed(f"{path}: cannot start the config validation process: [Errno 11] try again")

    monkeypatch.setattr(isolated, "load_config_checked", cannot)
    code = cli.main(["run", "-c", str(ROOT / "config" / "example.yaml")])
    assert code == cli.EXIT_FAILURE != cli.EXIT_CONFIG
    assert "try again" in capsys.readouterr().err


def test_the_child_ignores_modules_in_the_working_directory(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # under systemd the working directory is the agent's writable data directory
    (tmp_path / "yaml.py").write_text("raise ImportError('the data directory shadowed PyYAML')\n")
    monkeypatch.chdir(tmp_path)
    path = ROOT / "config" / "example.yaml"
    assert isolated._in_child(("path", str(path), None), str(path)) == load_config(path)


def test_stopping_the_agent_ends_a_running_check_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import threading
    import time

    sleeper = tmp_path / "sleeper"
    sleeper.write_text("#!/bin/sh\nsleep 30 &\nwait\n")  # a grandchild holds the pipe open too
    sleeper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(sleeper))
    failures: list[BaseException] = []

    def check() -> None:
        try:
            isolated._in_child(("path", "config/example.yaml", None), "config/example.yaml")
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=check)
    worker.start()
    deadline = time.monotonic() + 10
    while not isolated._RUNNING and time.monotonic() < deadline:
        time.sleep(0.01)
    isolated.stop_config_checks()
    worker.join(5)
    assert not worker.is_alive()
    assert len(failures) == 1 and isinstance(failures[0], ConfigCheckFailed)


def test_a_child_running_newer_code_refuses_to_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # the agent loaded its models from other files than the child finds (an upgrade under a running agent)
    monkeypatch.setattr(isolated, "_CODE_FINGERPRINT", "models.py:1234:1")
    with pytest.raises(ConfigCheckFailed, match="code on disk changed"):
        isolated._in_child(("path", "config/example.yaml", None), "config/example.yaml")
