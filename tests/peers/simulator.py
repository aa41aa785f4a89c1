"""A network simulator process for tests and benchmarks: real ``ibsim`` or our
``python -m ipoib.ibsim``, started on a socket name, awaited until it says it is ready, and
always stopped.

Its output is drained by a thread for its whole life, so a chatty simulator never blocks on
a full pipe and a silent one cannot hang the wait for "ready".
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

READY = "Network simulator ready"
"""What both simulators print once they serve."""


def stop(proc: subprocess.Popen[str] | None) -> None:
    """Terminate, then kill; always reaped."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def running(argv: Sequence[str], sockname: str, *, cwd: Path | None = None,
            timeout: float = 120.0) -> Iterator[None]:
    """``argv`` serving on ``IBSIM_SOCKNAME=sockname``, ready; stopped on the way out.
    Raises RuntimeError (with its last lines) if it is not ready within ``timeout``."""
    proc = subprocess.Popen(list(argv), env=dict(os.environ, IBSIM_SOCKNAME=sockname),
                            cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if READY in line:
                ready.set()
        ready.set()  # EOF: it exited

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        ready.wait(timeout)
        if not any(READY in line for line in seen):
            raise RuntimeError(f"{argv[0]} not ready: "
                               f"{''.join(seen[-3:]).strip() or 'no output'}")
        yield
    finally:
        stop(proc)
        reader.join(timeout=5)
