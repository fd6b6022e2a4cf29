"""The whole agent runs inside the essentials of the unit's sandbox, without systemd.

No systemd manager runs here, so this reproduces what the unit asks for with the kernel's own tools, in a
private mount namespace that disappears with the process: the system read-only (ProtectSystem=strict), a
private /tmp (PrivateTmp=), an unprivileged user (User=), no capabilities (CapabilityBoundingSet=), no new
privileges (NoNewPrivileges=) and no W+X memory (MemoryDenyWriteExecute=). Inside it, ``edge-agent demo``
runs the simulated PLC, an MQTT broker and the agent for a few seconds and must exit cleanly, having
written its state only to its working directory. Needs root (to build the namespace), unshare and setpriv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534

CHILD = textwrap.dedent(
    """
    import ctypes, os, sys
    from pathlib import Path
    if ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        print("no MDWE on this kernel (continuing without it)")
    try:
        open(sys.argv[1] + "/sandbox-escape", "w")
    except OSError as exc:
        print("system write refused:", exc.strerror)
    status = Path("/proc/self/status").read_text()
    print("uid", os.getuid(), "CapEff", status.split("CapEff:")[1].split()[0],
          "NoNewPrivs", status.split("NoNewPrivs:")[1].split()[0])
    from edge_agent.cli import main
    code = main(["demo", "--duration", "8", "--plain"])
    print("written:", sorted(str(p) for p in Path(".").rglob("*") if p.is_file()))
    sys.exit(code)
    """
)


def sandbox_script(python: str) -> str:
    """Shell commands run as root inside the new mount namespace, ending in the unprivileged agent."""
    base = Path(sys.base_prefix).resolve()
    overlay = ""
    # An interpreter under a private home (pyenv in /root) is unreachable for an unprivileged user: show
    # only that interpreter through a world-readable tmpfs, as a system Python in /usr would be.
    hidden = next((parent for parent in base.parents
                   if parent != Path("/") and not os.stat(parent).st_mode & 0o001), None)
    if hidden is not None:
        overlay = textwrap.dedent(f"""
            mkdir /tmp/base && mount --bind {base} /tmp/base
            mount -t tmpfs -o mode=755 tmpfs {hidden}
            mkdir -p {base} && mount --bind /tmp/base {base}
        """)
    keep_repo_before = keep_repo_after = ""
    if REPO.is_relative_to("/tmp"):
        # A checkout under /tmp (CI clones land there) would vanish under the private /tmp: keep it visible.
        keep_repo_before = "mkdir -p /run/keep-tmp && mount --bind /tmp /run/keep-tmp"
        keep_repo_after = (f"mkdir -p {REPO} && mount --bind /run/keep-tmp/{REPO.relative_to('/tmp')} {REPO}"
                           f" && mount -o remount,bind,ro {REPO}")
    return textwrap.dedent(f"""
        set -euo pipefail
        {keep_repo_before}
        mount -t tmpfs -o mode=1777 tmpfs /tmp
        {keep_repo_after}
        {overlay}
        mkdir -m 0750 /tmp/state && chown {NOBODY}:{NOBODY} /tmp/state
        mount -o remount,bind,ro /
        cd /tmp/state
        exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups --no-new-privs --bounding-set=-all \\
            --inh-caps=-all env HOME=/tmp/state PYTHONDONTWRITEBYTECODE=1 PYTHONPATH={REPO} \\
            {python} -c "$CHILD" {REPO}
    """)


def test_agent_runs_unprivileged_on_a_read_only_system() -> None:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("needs root, unshare and setpriv to build the sandbox")
    result = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", sandbox_script(sys.executable)],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "CHILD": CHILD},
    )
    if "unshare failed" in result.stderr or "Operation not permitted" in result.stderr[:300]:
        pytest.skip(f"mount namespaces are not available here: {result.stderr[:300]}")
    output = result.stdout
    assert result.returncode == 0, f"{output[-3000:]}\n{result.stderr[-3000:]}"
    assert "system write refused: Read-only file system" in output
    assert f"uid {NOBODY} CapEff 0000000000000000 NoNewPrivs 1" in output
    assert "demo stopped" in output
    written = next(line for line in output.splitlines() if line.startswith("written:"))
    assert ".sqlite" in written or ".db" in written, written  # the outbox lives in the working directory
    assert not (REPO / "sandbox-escape").exists()
