"""Fixtures and helpers for the host tests: unique names, a run directory, a loop thread.

Every test that makes namespaces uses its own prefix (``ipoib-t<pid>x<n>-``) and its own run
directory, so the tests can run beside a user's daemon; the ``prefix`` fixture checks with
``ip netns list`` that nothing with its prefix is left, and removes whatever is.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest

from ipoib.host import netns
from ipoib.host.runtime import Runtime
from ipoib.host.state import RUN_DIR_ENV, RunDir

ROOT = Path(__file__).resolve().parent.parent.parent
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, TUN)")

_seq = itertools.count()


def ip_netns_list() -> list[str]:
    """Namespace names as ``ip netns list`` shows them (a check independent of our code)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ip_json(ns: str, *args: str) -> list[dict[str, Any]]:
    """``ip -j -n NS ARGS``: the kernel's view, for checking only."""
    import json

    out = subprocess.run(["ip", "-j", "-n", ns, *args], capture_output=True, text=True,
                         check=True).stdout
    return list(json.loads(out or "[]"))


@pytest.fixture
def prefix() -> Iterator[str]:
    """A namespace prefix of this test alone; fails the test if anything is left with it."""
    p = f"ipoib-t{os.getpid()}x{next(_seq)}-"
    yield p
    left = [n for n in ip_netns_list() if n.startswith(p)]
    for n in left:
        netns.delete(n)
    assert not left, f"namespaces left behind: {left}"


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunDir:
    """A fresh run directory, also exported as $IPOIB_RUN_DIR."""
    d = tmp_path / "run"
    monkeypatch.setenv(RUN_DIR_ENV, str(d))
    return RunDir(d)


@pytest.fixture
def ns_pair(prefix: str) -> Iterator[tuple[str, str]]:
    """Two fresh namespaces, deleted afterwards."""
    names = (f"{prefix}a", f"{prefix}b")
    try:
        for n in names:
            netns.create(n)
        yield names
    finally:
        for n in names:
            netns.delete(n)


class LoopThread:
    """Runs ``runtime`` on an asyncio loop in a thread, so the test thread can fork children."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def go() -> None:
            self.loop = asyncio.get_running_loop()
            self.loop.call_soon(self._started.set)
            await self.runtime.run(handle_signals=False)

        try:
            asyncio.run(go())
        except BaseException as e:  # noqa: BLE001 - surfaced by __exit__
            self.error = e
            self._started.set()

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on the loop thread."""
        assert self.loop is not None
        self.loop.call_soon_threadsafe(fn)

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._started.wait(5), "the loop did not start"
        if self.error:
            raise self.error
        return self

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.runtime.stop)
        self._thread.join(5)
        assert not self._thread.is_alive(), "the runtime did not stop"
        if self.error:
            raise self.error


def run_in(ns: str, *argv: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` inside ``ns`` and wait for it."""
    p = netns.popen(ns, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(list(argv), p.returncode, out, err)


PYTHON = sys.executable


class RecordingPump:
    """A pumpable for runtime tests: records its process calls; its timer is whatever the
    test sets (cleared once due); ``on_process`` lets a test act from inside a turn."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.timer: float | None = None
        self.on_process: Callable[[float], None] | None = None

    def process(self, now: float) -> None:
        self.calls.append(now)
        if self.timer is not None and now >= self.timer:
            self.timer = None
        if self.on_process is not None:
            self.on_process(now)

    def get_timer(self) -> float | None:
        return self.timer
