"""The unit sets MemoryDenyWriteExecute=yes: prove the agent's whole stack works without W+X memory.

systemd enforces it with the kernel's PR_SET_MDWE (Linux >= 6.3) or an equivalent seccomp filter. The child
process below turns PR_SET_MDWE on for itself, checks that it is really enforced (a W+X mapping fails), then
loads and exercises every heavy dependency the agent uses: numpy/scipy numerics, cryptography (OPC UA
security, TLS keys), asyncua, pymodbus, paho, pydantic, SQLite, ssl and the agent's own
config loading. A library that needs executable writable memory (a JIT, old-style libffi closures) fails here
instead of on a gateway.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SKIP = 77

CHILD = textwrap.dedent(
    """
    import ctypes, errno, mmap, sys

    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print(f"PR_SET_MDWE unavailable: {errno.errorcode.get(ctypes.get_errno())}")
        sys.exit(77)
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        pass
    else:
        print("MDWE is not enforced: a W+X mapping succeeded")
        sys.exit(3)

    import asyncio, json, sqlite3, ssl, tempfile
    from pathlib import Path

    import numpy as np
    import scipy.fft, scipy.signal
    fs = 12800.0
    t = np.arange(16384) / fs
    x = 2.0 * np.sin(2 * np.pi * 100.0 * t)
    f, pxx = scipy.signal.welch(x, fs=fs, nperseg=4096)
    assert abs(f[np.argmax(pxx)] - 100.0) < 5.0
    assert np.allclose(np.abs(scipy.fft.rfft(x)).max(), 16384.0, rtol=0.05)

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    key = ec.generate_private_key(ec.SECP256R1())
    key.public_key().verify(key.sign(b"edge", ec.ECDSA(hashes.SHA256())), b"edge", ec.ECDSA(hashes.SHA256()))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_key.public_key().verify(rsa_key.sign(b"ua", padding.PKCS1v15(), hashes.SHA256()), b"ua",
                                padding.PKCS1v15(), hashes.SHA256())

    import asyncua, asyncua.crypto.uacrypto  # noqa: F401
    import pymodbus.client  # noqa: F401
    import paho.mqtt.client as mqtt
    mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mdwe")
    ssl.create_default_context()

    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(Path(d) / "outbox.sqlite")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE r (id INTEGER PRIMARY KEY, body BLOB)")
        db.executemany("INSERT INTO r (body) VALUES (?)", [(b"x" * 100,)] * 100)
        db.commit()
        assert db.execute("SELECT count(*) FROM r").fetchone()[0] == 100
        db.close()

    from edge_agent.config import load_config
    cfg = load_config(Path(sys.argv[1]))
    assert cfg.agent.id == "gateway-01"

    from edge_agent.metrics import AgentMetrics
    body, _ = AgentMetrics().render()
    assert b"edge_agent_resident_memory_bytes" in body

    async def main() -> int:
        await asyncio.sleep(0)
        return await asyncio.to_thread(lambda: 42)

    assert asyncio.run(main()) == 42
    print("ok")
    """
)


def test_agent_stack_runs_with_memory_deny_write_execute() -> None:
    if sys.platform != "linux":
        pytest.skip("MemoryDenyWriteExecute is a Linux feature")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(REPO / "deploy" / "config.example.yaml")],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    if result.returncode == SKIP:
        pytest.skip(f"this kernel cannot enforce MDWE per process ({result.stdout.strip()}); needs Linux >= 6.3")
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr[-3000:]}"
    assert result.stdout.strip().endswith("ok")
