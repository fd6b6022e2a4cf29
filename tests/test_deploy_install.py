"""deploy/install.sh in a throwaway root: install twice (idempotent), upgrade keeps config, uninstall, purge.

The first install builds the wheel from a copy of this tree (the script's default), the second installs a
wheel built here. Dependencies are not installed (``--no-deps``) to keep the test fast and offline-friendly;
the console script still runs (``edge-agent --version`` needs only the standard library).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL_SH = REPO / "deploy" / "install.sh"
TIMEOUT_S = 600
AS_ROOT = os.geteuid() == 0


def run_install(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", str(INSTALL_SH), *args], capture_output=True, text=True, timeout=TIMEOUT_S,
                            check=False, env={**os.environ, "PYTHON": sys.executable})
    if check and result.returncode != 0:
        pytest.fail(f"install.sh {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this tree, built from a copy so nothing is written into the source tree."""
    work = tmp_path_factory.mktemp("wheel")
    with tarfile.open(work / "src.tar", "w") as tar:
        for name in ("pyproject.toml", "README.md", "edge_agent", "drivers", "diagnostics"):
            tar.add(REPO / name, arcname=name, filter=lambda t: None if "__pycache__" in t.name else t)
    with tarfile.open(work / "src.tar") as tar:
        tar.extractall(work / "src", filter="data")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work / "dist"),
                             str(work / "src")], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot build a wheel here (no package index for setuptools?): {result.stderr[-300:]}")
    (built,) = (work / "dist").glob("edge_agent-*.whl")
    return built


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """An empty root; as root, with the account files of a minimal Debian so `useradd --root` can work."""
    target = tmp_path / "root"
    (target / "etc").mkdir(parents=True)
    if AS_ROOT:
        (target / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        (target / "etc" / "group").write_text("root:x:0:\ndialout:x:20:\n")
        (target / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
        (target / "etc" / "gshadow").write_text("root:*::\ndialout:*::\n")
        for name in ("shadow", "gshadow"):
            (target / "etc" / name).chmod(0o640)
    yield target
    shutil.rmtree(target, ignore_errors=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def account(root: Path, name: str, table: str = "passwd") -> list[str] | None:
    for line in (root / "etc" / table).read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    return None


def test_install_is_idempotent_then_uninstall_and_purge(root: Path, wheel: Path) -> None:
    first = run_install("--root", str(root), "--no-deps")  # builds the wheel from this tree
    assert "building the wheel" in first.stderr
    venv_python = root / "opt/edge-agent/venv/bin/python"
    agent = root / "opt/edge-agent/venv/bin/edge-agent"
    version = subprocess.run([str(agent), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout.startswith("edge-agent ")

    config = root / "etc/edge-agent/config.yaml"
    unit = root / "etc/systemd/system/edge-agent.service"
    state = root / "var/lib/edge-agent"
    assert config.read_text() == (REPO / "deploy/config.example.yaml").read_text()
    assert (root / "etc/edge-agent/config.example.yaml").exists()
    assert unit.read_text() == (REPO / "deploy/edge-agent.service").read_text()
    assert (root / "opt/edge-agent/README.md").read_text() == (REPO / "deploy/README.md").read_text()
    assert mode(root / "etc/edge-agent") == 0o770
    assert mode(config) == 0o640
    assert mode(state) == 0o750
    assert mode(unit) == 0o644
    assert "not starting: edit /etc/edge-agent/config.yaml" in first.stdout  # a fresh example is never started
    assert "[--root] not run here: systemctl enable edge-agent.service" in first.stdout

    if AS_ROOT:  # useradd --root made a real system account inside the root, and files belong to it
        user = account(root, "edge-agent")
        assert user is not None and user[5] == "/var/lib/edge-agent" and user[6] == "/usr/sbin/nologin"
        uid, gid = int(user[2]), int(user[3])
        assert uid < 1000  # a system account
        dialout = account(root, "dialout", "group")
        assert dialout is not None and "edge-agent" in dialout[3].split(",")
        assert (state.stat().st_uid, state.stat().st_gid) == (uid, gid)
        assert (config.stat().st_uid, config.stat().st_gid) == (0, gid)
    else:
        assert "[--root] not run here: useradd --system" in first.stdout

    # site edits and data survive a second run, which upgrades with an explicit wheel
    config.write_text(config.read_text().replace("gateway-01", "press-line-7"))
    (state / "outbox.sqlite").write_bytes(b"records")
    python_inode = venv_python.lstat().st_ino
    second = run_install("--root", str(root), "--no-deps", "--start", str(wheel))
    assert "virtualenv /opt/edge-agent/venv exists" in second.stdout
    assert "kept the existing /etc/edge-agent/config.yaml" in second.stdout
    assert "building the wheel" not in second.stdout + second.stderr
    assert venv_python.lstat().st_ino == python_inode
    assert "press-line-7" in config.read_text()
    assert (state / "outbox.sqlite").read_bytes() == b"records"
    # without dependencies `edge-agent check` cannot run, which the script says; --start starts anyway
    assert "'edge-agent check' could not run" in second.stdout
    assert "[--root] not run here: systemctl restart edge-agent.service" in second.stdout
    if AS_ROOT:
        assert "user edge-agent exists" in second.stdout
        assert sum(line.startswith("edge-agent:") for line in (root / "etc/passwd").read_text().splitlines()) == 1

    uninstall = run_install("--root", str(root), "--uninstall")
    assert "[--root] not run here: systemctl disable --now edge-agent.service" in uninstall.stdout
    assert not (root / "opt/edge-agent").exists()
    assert not unit.exists()
    assert "press-line-7" in config.read_text()
    assert (state / "outbox.sqlite").exists()
    assert "add --purge to remove them" in uninstall.stdout
    if AS_ROOT:
        assert account(root, "edge-agent") is not None

    purge = run_install("--root", str(root), "--uninstall", "--purge")
    assert "systemctl disable" not in purge.stdout  # the unit is already gone
    assert not (root / "etc/edge-agent").exists()
    assert not state.exists()
    if AS_ROOT:
        assert account(root, "edge-agent") is None
    run_install("--root", str(root), "--uninstall", "--purge")  # nothing left to remove: still fine


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--purge"], "--purge only makes sense with --uninstall"),
        (["--root", "/nonexistent/edge-agent-root"], "--root /nonexistent/edge-agent-root: no such directory"),
        (["--root", "/"], "--root / is the running system"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
        (["--root", "{root}", "/nonexistent/edge_agent-0.1.0-py3-none-any.whl"], "wheel '/nonexistent/"),
        (["--root", "{root}", "--python", "/nonexistent/python3"], "no Python interpreter '/nonexistent/python3'"),
        (["--root", "{root}", "a.whl", "b.whl"], "only one wheel may be given"),
    ],
)
def test_bad_invocations_say_what_is_wrong(root: Path, args: list[str], message: str) -> None:
    result = run_install(*(a.replace("{root}", str(root)) for a in args), check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (root / "opt").exists()


@pytest.mark.skipif(not AS_ROOT or shutil.which("setpriv") is None, reason="needs root and setpriv to drop privileges")
def test_real_install_needs_root() -> None:
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash", str(INSTALL_SH),
                             "--no-start"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "run as root, e.g. sudo" in result.stderr and "--no-start (or use --root DIR)" in result.stderr


def test_help_lists_every_option() -> None:
    result = run_install("--help")
    for option in ("--uninstall", "--purge", "--root DIR", "--python", "--no-start", "--no-deps", "--pip-arg"):
        assert option in result.stdout


def test_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(INSTALL_SH)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(not AS_ROOT, reason="needs root for useradd --root")
def test_reinstall_after_a_purge_that_left_the_group_behind(root: Path, wheel: Path) -> None:
    run_install("--root", str(root), "--no-deps", str(wheel))
    group = account(root, "edge-agent", "group")
    assert group is not None
    # an operator was added to the service's group: userdel then keeps the group
    lines = (root / "etc/group").read_text().replace(f"edge-agent:x:{group[2]}:", f"edge-agent:x:{group[2]}:ops")
    (root / "etc/group").write_text(lines)
    run_install("--root", str(root), "--uninstall", "--purge")
    assert account(root, "edge-agent") is None and account(root, "edge-agent", "group") is not None
    again = run_install("--root", str(root), "--no-deps", str(wheel))
    user = account(root, "edge-agent")
    assert user is not None and user[3] == group[2], again.stdout  # back in its old group
