"""The run directory: what a daemon is about to make, written down before it makes it.

``/run/ipoib/`` (or ``$IPOIB_RUN_DIR``) holds:

- ``daemon.lock``: an ``flock`` held by the running daemon for its whole life. The kernel
  drops it when the daemon dies, however it dies, so "is a daemon running" never depends on
  a pid that may have been reused.
- ``state.json``: the daemon's pid, its control socket, its hosts, and every namespace, TUN
  and child process it made. Each is recorded *before* it is created, so that ``ipoib down``
  can clean up after a daemon killed with SIGKILL at any moment.
- ``control.sock``: the control socket (mode 0600); ``daemon.log`` for a detached daemon.

Cleanup removes only what the state names: a namespace that existed before us is never
recorded and never deleted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import netns
from .netns import HostError

RUN_DIR_ENV = "IPOIB_RUN_DIR"
DEFAULT_RUN_DIR = Path("/run/ipoib")
STATE_VERSION = 1


class AlreadyRunning(HostError):
    """Another daemon holds this run directory."""


class NotRunning(HostError):
    """No daemon holds this run directory."""


@dataclass(slots=True)
class RunState:
    """The document in ``state.json``."""

    pid: int
    started: float
    topology: str = ""
    control: str = ""
    namespaces: list[str] = field(default_factory=list)
    tuns: list[list[str]] = field(default_factory=list)
    children: list[list[int]] = field(default_factory=list)
    hosts: list[dict[str, Any]] = field(default_factory=list)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        """The state as indented JSON."""
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> RunState:
        """Parse ``state.json``; HostError if it is not one of ours."""
        try:
            d = json.loads(text)
            return cls(pid=int(d["pid"]), started=float(d["started"]),
                       topology=str(d.get("topology", "")), control=str(d.get("control", "")),
                       namespaces=[str(n) for n in d.get("namespaces", [])],
                       tuns=[[str(a), str(b)] for a, b in d.get("tuns", [])],
                       children=[[int(p), int(t)] for p, t in d.get("children", [])],
                       hosts=[dict(h) for h in d.get("hosts", [])],
                       version=int(d.get("version", STATE_VERSION)))
        except (ValueError, KeyError, TypeError) as e:
            raise HostError(f"unreadable run state: {e}") from None

    def find_host(self, key: str) -> dict[str, Any] | None:
        """The host named ``key``, or with address or namespace ``key``."""
        for h in self.hosts:
            if key in host_keys(h):
                return h
        return None


def host_keys(row: Mapping[str, Any]) -> tuple[str | None, ...]:
    """What a user may call a recorded host by: node name, namespace, IPv4 or IPv6 address."""
    return (row.get("host"), row.get("netns"), _bare(row.get("ipv4")), _bare(row.get("ipv6")))


def _bare(addr: Any) -> str | None:
    return str(addr).split("/")[0] if addr else None


class RunDir:
    """One run directory and the daemon lock in it."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        chosen = path if path is not None else os.environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR
        self.path = Path(chosen)
        self._lock_fd = -1

    @property
    def state_path(self) -> Path:
        """``state.json``."""
        return self.path / "state.json"

    @property
    def lock_path(self) -> Path:
        """``daemon.lock``."""
        return self.path / "daemon.lock"

    @property
    def socket_path(self) -> Path:
        """``control.sock``."""
        return self.path / "control.sock"

    @property
    def log_path(self) -> Path:
        """``daemon.log`` (a detached daemon's stdout and stderr)."""
        return self.path / "daemon.log"

    def _open_lock(self) -> int:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o755)
        return os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def acquire(self) -> None:
        """Take the daemon lock for this process (kept across fork); AlreadyRunning if held.

        ``down`` unlinks the lock file while holding it; a lock taken on a file that was
        unlinked meanwhile is worthless, so the inode is checked and the take retried.
        """
        while True:
            fd = self._open_lock()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                state = self.load()
                who = f" (pid {state.pid})" if state else ""
                raise AlreadyRunning(f"a daemon is already running{who}; "
                                     f"`ipoib down` stops it") from None
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self._lock_fd = fd
                return
            os.close(fd)

    def wait_acquire(self, timeout: float) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds for its holder to go away."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.acquire()
                return True
            except AlreadyRunning:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)

    def release(self) -> None:
        """Drop the lock (closing our descriptor; a forked holder keeps its own)."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    @property
    def holding(self) -> bool:
        """Whether this object holds the lock."""
        return self._lock_fd >= 0

    def daemon_alive(self) -> bool:
        """Whether some process (not through this object) holds the daemon lock."""
        if self.holding:
            return True
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def load(self) -> RunState | None:
        """The recorded state, or None if there is none."""
        try:
            return RunState.from_json(self.state_path.read_text())
        except FileNotFoundError:
            return None

    def save(self, state: RunState) -> None:
        """Write ``state.json`` atomically (a reader sees the old or the new, never half)."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = self.state_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(state.to_json())
        os.replace(tmp, self.state_path)

    def remove(self) -> None:
        """Remove the whole run directory's contents and the directory if empty (``down``,
        holding the lock)."""
        for p in (self.state_path, self.socket_path, self.log_path, self.lock_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def remove_state(self) -> None:
        """Forget the state and the socket (after cleanup)."""
        for p in (self.state_path, self.socket_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def cleanup(state: RunState, run_dir: RunDir | None = None, grace: float = 1.0) -> list[str]:
    """Undo everything ``state`` records: children, then namespaces (with their TUNs and
    every process inside), then the state file. Returns what was removed, for the user.
    """
    done: list[str] = []
    alive = [p for p, start in state.children if proc_start(p) == start]
    if alive:
        netns.kill_all(alive, grace)
        done += [f"process {p}" for p in alive]
    for name in reversed(state.namespaces):
        if netns.exists(name):
            netns.delete(name, grace)
            done.append(f"namespace {name}")
    if run_dir is not None:
        run_dir.remove_state()
    return done


def proc_start(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if there is no such process.

    Recorded next to a child's pid so that cleanup never signals a reused pid.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None
