"""OpenSM as a run's subnet manager: started, waited for, watched, restarted and stopped.

``ipoib up --sm opensm`` runs the Debian package's ``/usr/sbin/opensm`` beside the daemon,
attached to the fabric through the ibsim protocol the daemon serves (ARCHITECTURE.md,
"Processes"). The embedded SM stays off; the hosts' devices find OpenSM as the master SM in
their ports' PortInfo and send it their MCMemberRecord and PathRecord queries, knowing no
more about it than the Linux driver knows about its SM.

How the process is run, and why:

- **Attached where asked.** ``LD_PRELOAD=libumad2sim.so`` with ``IBSIM_SOCKNAME`` naming the
  daemon's socket and ``SIM_HOST`` the node (the topology's first node by default, as with
  ibsim). Only OpenSM gets the preload: the wrappers in front of it would otherwise connect
  to the simulator themselves.
- **Private.** Its log (``-f``, flushed after every message with ``-d2``, so "SUBNET UP" is
  seen at once), cache (``OSM_CACHE_DIR``: the guid2lid file, so a restarted OpenSM keeps
  the LIDs), dumps (``OSM_TMP_DIR``), console output and working directory (umad2sim writes a
  fake sysfs there) are all in one directory under the run directory.
- **Recorded before it works.** The process starts held at a gate, a shell waiting for one
  line on a pipe; its pid and start time are written to the run state, then the gate opens
  and the shell becomes OpenSM (same pid, same start time). A daemon that dies before
  opening the gate leaves a shell that reads EOF and exits.
- **Never left behind.** A parent-death signal (``setpriv --pdeathsig KILL``, set before the
  gate) takes OpenSM down with a daemon killed by SIGKILL; ``ipoib down`` also kills it
  from the run state. It runs in its own session, so Ctrl-C reaches only the daemon, which
  stops OpenSM (SIGTERM, then SIGKILL) when it stops.
- **Supervised.** If OpenSM exits while the daemon serves, ``on_exit(pid)`` lets the ibsim
  side forget its clients (a killed process never says DISCONNECT, and the SM classes of its
  port would stay taken), and it is started again after :data:`RESTART_DELAY`, the wait
  doubling up to :data:`RESTART_MAX` while it keeps failing before "SUBNET UP", as a service
  manager would. The new OpenSM's first sweep sets ClientReregister on the hosts' ports and
  they join their groups again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .netns import HostError

OPENSM = "/usr/sbin/opensm"
UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"
UMAD2SIM_ENV = "IPOIB_UMAD2SIM"
"""Overrides where libumad2sim.so is (another distribution's path), as ``ipoib diag``."""
SUBNET_UP = "SUBNET UP"
START_TIMEOUT = 60.0
"""Seconds to wait for "SUBNET UP" unless told otherwise."""
START_POLL = 0.05
"""How often the log is read while waiting for "SUBNET UP"."""
WATCH_INTERVAL = 0.25
"""How often a running OpenSM is checked (exited? up again after a restart?)."""
RESTART_DELAY = 1.0
RESTART_MAX = 30.0
STOP_GRACE = 5.0
"""Seconds OpenSM gets to exit after SIGTERM before SIGKILL."""
GATE_EXIT = 111
GATE = 'read -r _ || exit 111; exec env "$@" </dev/null'
"""The gate: wait for one line (EOF: the daemon died first, give up), then become OpenSM
through ``env`` (so that only OpenSM gets LD_PRELOAD), with stdin closed."""

_STAMP = re.compile(r"^\w{3} +\d+ [\d:]{8} \d{6} \[[0-9A-Fa-f]+\] 0x[0-9a-f]{2} -> ")
"""The prefix of an OpenSM log line (date, microseconds, thread, level)."""

Record = Callable[[int], None]


class OpenSmError(HostError):
    """OpenSM could not be started or did not bring the subnet up; one line."""


@dataclass(frozen=True, slots=True)
class OpenSmConfig:
    """Where and how one OpenSM runs."""

    sockname: str
    """The ibsim socket base name it attaches through (``IBSIM_SOCKNAME``)."""
    node: str
    """The node it runs on (``SIM_HOST``): a node name or NodeDescription."""
    workdir: Path
    """Its private directory: log, cache, dumps, working directory."""
    partitions: Path | None = None
    """A partitions.conf passed through with ``-P``."""
    binary: str = OPENSM
    umad2sim: str = UMAD2SIM
    timeout: float = START_TIMEOUT
    extra: tuple[str, ...] = ()
    """More OpenSM arguments (e.g. ``("-p", "8")`` for a priority)."""

    @property
    def log(self) -> Path:
        """OpenSM's log (``-f``)."""
        return self.workdir / "opensm.log"

    @property
    def console(self) -> Path:
        """What OpenSM prints on stdout and stderr (umad2sim's errors land here)."""
        return self.workdir / "console.log"

    @property
    def cache(self) -> Path:
        """``OSM_CACHE_DIR`` and ``OSM_TMP_DIR``."""
        return self.workdir / "cache"


def check_installed(config: OpenSmConfig) -> None:
    """OpenSmError naming the package to install if OpenSM or umad2sim is missing."""
    if not os.access(config.binary, os.X_OK):
        raise OpenSmError(f"{config.binary} not found (Debian: apt install opensm)")
    if not os.path.exists(config.umad2sim):
        raise OpenSmError(f"{config.umad2sim} not found (Debian: apt install libumad2sim0; "
                          f"or set ${UMAD2SIM_ENV})")


def opensm_argv(config: OpenSmConfig) -> list[str]:
    """OpenSM's own command line: flushed log in the private directory, partitions."""
    argv = [config.binary, "-d2", "-f", str(config.log)]
    if config.partitions is not None:
        argv += ["-P", str(config.partitions)]
    return [*argv, *config.extra]


def launch_argv(config: OpenSmConfig) -> list[str]:
    """The whole command: parent-death signal (when setpriv exists), gate, preload, OpenSM."""
    gate = ["/bin/sh", "-c", GATE, "opensm", f"LD_PRELOAD={config.umad2sim}",
            *opensm_argv(config)]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *gate] if setpriv else gate


def environment(config: OpenSmConfig, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the launch: the ibsim attachment and OpenSM's directories; no
    LD_PRELOAD (the gate adds it for OpenSM alone) and no ``IBSIM_SERVER_NAME`` (that would
    make umad2sim use UDP)."""
    env = dict(os.environ if base is None else base)
    for key in ("LD_PRELOAD", "IBSIM_SERVER_NAME", "IBSIM_SERVER_PORT"):
        env.pop(key, None)
    env.update(IBSIM_SOCKNAME=config.sockname, SIM_HOST=config.node,
               OSM_CACHE_DIR=str(config.cache), OSM_TMP_DIR=str(config.cache))
    return env


def log_tail(*paths: Path, lines: int = 3, limit: int = 300) -> str:
    """The last ``lines`` non-empty lines of the first of ``paths`` that has any, without
    OpenSM's time stamps, joined with `` | `` and cut to ``limit`` characters: something to
    put at the end of a one-line error."""
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                text = f.read().decode(errors="replace")
        except OSError:
            continue
        kept = [_STAMP.sub("", ln).strip() for ln in text.splitlines() if ln.strip()]
        if kept:
            tail = " | ".join(kept[-lines:])
            return tail if len(tail) <= limit else "..." + tail[-limit:]
    return "(no output)"


class OpenSm:
    """One OpenSM process at a time for a run, with the lifecycle described above.

    ``record(pid)`` is called after the process exists and before it does anything (the
    daemon writes it to the run state); ``on_exit(pid)`` when it is found gone.
    """

    def __init__(self, config: OpenSmConfig, *, record: Record | None = None,
                 on_exit: Record | None = None) -> None:
        self.config = config
        self.record: Record = record or (lambda pid: None)
        self.on_exit: Record = on_exit or (lambda pid: None)
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = "stopped"
        """stopped, starting, up, exited (a restart is due) or failed (could not spawn)."""
        self.restarts = 0
        self.last_exit: int | None = None
        self.started_at: float | None = None
        self.up_after: float | None = None
        """Seconds from the last start to its "SUBNET UP"."""
        self._offset = 0
        self._carry = b""
        self._delay = RESTART_DELAY
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = False

    @property
    def pid(self) -> int | None:
        """The current process's pid (None before the first start)."""
        return self.proc.pid if self.proc is not None else None

    # -- starting ----------------------------------------------------------------------

    def prepare(self) -> None:
        """Make the private directory, emptied of an earlier run's log and output."""
        self.config.cache.mkdir(parents=True, exist_ok=True)
        for path in (self.config.log, self.config.console):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def spawn(self) -> int:
        """Start the process held at its gate, record it, open the gate; its pid."""
        cfg = self.config
        try:
            self._offset = cfg.log.stat().st_size
        except FileNotFoundError:
            self._offset = 0
        self._carry = b""
        with open(cfg.console, "ab") as console:
            proc = subprocess.Popen(launch_argv(cfg), env=environment(cfg), cwd=cfg.workdir,
                                    stdin=subprocess.PIPE, stdout=console,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        assert proc.stdin is not None
        try:
            self.record(proc.pid)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        try:
            proc.stdin.write(b"go\n")
            proc.stdin.close()
        except OSError:  # it died already; the next check sees it
            pass
        self.proc = proc
        self.state = "starting"
        self.started_at = time.monotonic()
        self.up_after = None
        return proc.pid

    def _saw_subnet_up(self) -> bool:
        """Whether the log has said "SUBNET UP" since the last start (reads what is new)."""
        try:
            with open(self.config.log, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            return False
        if not chunk:
            return False
        self._offset += len(chunk)
        text = self._carry + chunk
        self._carry = text[-len(SUBNET_UP):]
        return SUBNET_UP.encode() in text

    def check(self) -> None:
        """Look once: "SUBNET UP" makes it ``up``; a process gone makes it ``exited``."""
        proc = self.proc
        if proc is None or self.state not in ("starting", "up"):
            return
        if self.state == "starting" and self._saw_subnet_up():
            self.state = "up"
            self.up_after = time.monotonic() - (self.started_at or 0.0)
            self._delay = RESTART_DELAY
        code = proc.poll()
        if code is not None:
            self.last_exit = code
            self.state = "exited"
            self.on_exit(proc.pid)

    def _failure(self, what: str) -> OpenSmError:
        cfg = self.config
        return OpenSmError(f"OpenSM {what} (log {cfg.log}): "
                           f"{log_tail(cfg.log, cfg.console)}")

    async def start(self) -> None:
        """Start OpenSM and return once it logs "SUBNET UP", then keep watching it.

        OpenSmError (one line, ending with the log's last lines) if it exits first or does
        not get there within the configured timeout; it is stopped in both cases.
        """
        check_installed(self.config)
        self._stopping = False
        self.prepare()
        self.spawn()
        deadline = time.monotonic() + self.config.timeout
        while True:
            self.check()
            if self.up_after is not None:  # up (and perhaps gone again: the watch sees to it)
                break
            if self.state == "exited":
                raise self._failure(f"exited with status {self.last_exit} before {SUBNET_UP}")
            if time.monotonic() >= deadline:
                await self.terminate()
                raise self._failure(f"did not report {SUBNET_UP} within "
                                    f"{self.config.timeout:g} s")
            await asyncio.sleep(START_POLL)
        self._loop = asyncio.get_running_loop()
        self._arm(WATCH_INTERVAL, self._watch)

    # -- watching ----------------------------------------------------------------------

    def _arm(self, delay: float, then: Callable[[], None]) -> None:
        if self._loop is not None and not self._stopping:
            self._timer = self._loop.call_later(delay, then)

    def _watch(self) -> None:
        self._timer = None
        came_up = self.state == "up"
        self.check()
        if self.state != "exited":
            self._arm(WATCH_INTERVAL, self._watch)
            return
        delay = self._delay
        if not came_up:  # died again before SUBNET UP: wait longer next time
            self._delay = min(self._delay * 2, RESTART_MAX)
        print(f"ipoib: opensm (pid {self.pid}) exited with status {self.last_exit}; "
              f"starting it again in {delay:g} s", file=sys.stderr, flush=True)
        self._arm(delay, self._restart)

    def _restart(self) -> None:
        self._timer = None
        if self._stopping:
            return
        self.restarts += 1
        try:
            self.spawn()
        except (OSError, HostError) as e:
            self.state = "failed"
            print(f"ipoib: cannot start opensm again: {e}", file=sys.stderr, flush=True)
            delay, self._delay = self._delay, min(self._delay * 2, RESTART_MAX)
            self._arm(delay, self._restart)
            return
        self._arm(WATCH_INTERVAL, self._watch)

    # -- stopping ----------------------------------------------------------------------

    async def terminate(self, grace: float = STOP_GRACE) -> None:
        """Stop the process while the loop goes on serving the ibsim sockets (umad2sim
        waits for the server to answer its goodbye): SIGTERM, then SIGKILL."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        deadline = time.monotonic() + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(START_POLL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self.last_exit = proc.returncode

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop watching and stop the process: SIGTERM, then SIGKILL after ``grace``."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None:
            self.last_exit = proc.returncode
        self.state = "stopped"

    # -- views -------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """What ``ipoib show sm`` and the daemon's status report."""
        return {"sm": "opensm", "pid": self.pid, "state": self.state, "node": self.config.node,
                "log": str(self.config.log), "restarts": self.restarts,
                "last_exit": self.last_exit,
                "up_after": None if self.up_after is None else round(self.up_after, 3)}

    def summary(self) -> str:
        """One line: ``SM: opensm pid N at NODE (up), log PATH``."""
        more = f", {self.restarts} restart(s)" if self.restarts else ""
        return (f"SM: opensm pid {self.pid} at {self.config.node} ({self.state}{more}), "
                f"log {self.config.log}")


__all__ = ["OPENSM", "SUBNET_UP", "UMAD2SIM", "OpenSm", "OpenSmConfig", "OpenSmError",
           "check_installed", "environment", "launch_argv", "log_tail", "opensm_argv"]
