"""Shared fixtures: a real Mosquitto broker on loopback, and checks that a test leaks no tasks or threads."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

try:
    from tests.mqtt_support import Mosquitto, mosquitto_available
except ImportError:  # tests/ is not a package: pytest put the tests directory itself on sys.path
    from mqtt_support import Mosquitto, mosquitto_available  # type: ignore[no-redef]

LEAK_GRACE_S = 2.0


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A running mosquitto on a free 127.0.0.1 port (anonymous, no persistence); killed at teardown."""
    if not mosquitto_available():
        pytest.skip("mosquitto broker not installed (apt-get install mosquitto); MQTT integration test skipped")
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest_asyncio.fixture(autouse=True)
async def _no_leaked_tasks(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Fail an async test that leaves tasks running on its event loop (tasks that existed before it are
    ignored). A short grace period lets tasks that were cancelled at the end finish."""
    if not inspect.iscoroutinefunction(getattr(request, "function", None)):
        yield
        return
    before = asyncio.all_tasks()
    yield
    me = asyncio.current_task()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEAK_GRACE_S
    while True:
        leaked = [t for t in asyncio.all_tasks() if t not in before and t is not me and not t.done()]
        if not leaked or loop.time() > deadline:
            break
        await asyncio.sleep(0.02)
    if leaked:
        names = sorted(t.get_name() + ": " + repr(t.get_coro()) for t in leaked)
        for task in leaked:
            task.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail("test left asyncio task(s) running:\n  " + "\n  ".join(names))


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    """Fail a test that leaves threads running (besides the event loop's default executor, which its loop
    owns). Use with ``pytestmark = pytest.mark.usefixtures("no_thread_leak")``."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        extra = [t for t in threading.enumerate()
                 if t not in before and t.is_alive() and not t.name.startswith("asyncio")]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if extra:
        pytest.fail("test left thread(s) running: " + ", ".join(sorted(t.name for t in extra)))
