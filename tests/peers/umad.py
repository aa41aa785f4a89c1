"""Running the real OpenSM and infiniband-diags against our ibsim-protocol server.

- :func:`serve` runs ``python -m ipoib.ibsim FILE`` (the standalone runner) as a process;
- :class:`InProcess` serves a fabric from a thread of the test process, so a test can look at
  the fabric objects afterwards (the port states and LFTs OpenSM wrote);
- :func:`tool` runs one diagnostics command under ``LD_PRELOAD=libumad2sim.so``;
- :func:`opensm` runs OpenSM under the preload until "SUBNET UP";
- :class:`RawClient` speaks the protocol itself, as the vectors' raw client did.

Every process is stopped by pid when its context ends, whatever happens; nothing is left
running.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import pytest

from ipoib.fabric.topology import Topology
from ipoib.host.ibnet import IbNet
from ipoib.host.runtime import Runtime
from ipoib.wire.ibsim import (
    CtlType,
    SimClientInfo,
    SimCtl,
    SimRequestHeader,
    abstract_name,
    ctl_payload,
    pack_request,
)

from .simulator import stop

UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"
OPENSM = shutil.which("opensm") or "/usr/sbin/opensm"
EXAMPLES = Path("/usr/share/doc/ibsim-utils/net-examples")
READY = "Network simulator ready."
SBIN = "/usr/sbin:/sbin"


def require(*tools: str) -> None:
    """Skip unless libumad2sim.so and ``tools`` are installed."""
    path = os.environ.get("PATH", "") + ":" + SBIN
    missing = [t for t in tools if shutil.which(t, path=path) is None]
    if not os.path.exists(UMAD2SIM):
        missing.append(UMAD2SIM)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


def sockname() -> str:
    """A socket base name nobody else uses."""
    return f"ipoib-t{os.getpid()}-{secrets.token_hex(3)}"


@contextmanager
def serve(netfile: Path, workdir: Path, *, sm: str = "none", name: str | None = None
          ) -> Iterator[str]:
    """The standalone runner on ``netfile``; yields its socket name once ready (and, with
    ``sm="embedded"``, once our SM has the subnet up)."""
    name = name or sockname()
    proc = subprocess.Popen([sys.executable, "-m", "ipoib.ibsim", str(netfile), "--sockname",
                             name, "--sm", sm], cwd=workdir, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    want = "SUBNET UP" if sm == "embedded" else READY
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if want in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        ready.wait(timeout=60)
        assert any(want in line for line in lines), "runner did not start:\n" + "".join(lines)
        yield name
    finally:
        stop(proc)
        reader.join(timeout=10)


class InProcess:
    """A fabric served on the ibsim sockets from a thread (no SM unless ``sm="embedded"``):
    :meth:`stop` before looking at :attr:`net`'s objects."""

    def __init__(self, topology: Topology, name: str | None = None, *, sm: str = "none",
                 udp_port: int | None = None) -> None:
        self.name = name or sockname()
        self.net = IbNet(topology, sm=sm, ibsim=self.name, ibsim_udp=udp_port)
        self.runtime = Runtime(self.net.pumpables)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            loop = asyncio.get_running_loop()
            self._loop = loop
            for start in self.net.starters:
                start(loop, self.runtime)
            loop.call_soon(self._ready.set)
            await self.runtime.run(handle_signals=False)

        try:
            asyncio.run(run())
        except BaseException as e:  # noqa: BLE001 - reported by start()/stop()
            self._error = e
        finally:
            self._ready.set()

    def __enter__(self) -> Self:
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        """Stop serving (idempotent); the fabric keeps its state."""
        if self._thread.is_alive() and self._loop is not None:
            self._loop.call_soon_threadsafe(self.runtime.stop)
            self._thread.join(timeout=30)
        if self._error is not None:
            raise self._error

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.net.close()


class RawClient:
    """A client speaking the ibsim protocol directly (as the vectors' raw client did)."""

    def __init__(self, name: str, nodeid: str, ident: int, *, issm: int = 0) -> None:
        self.ctl = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.ctl.bind(abstract_name(name, f"ctl{ident}"))
        self.ctl.connect(abstract_name(name, "ctl"))
        self.ctl.settimeout(10)
        self.data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.data.bind(abstract_name(name, f"in{ident}"))
        self.data.settimeout(10)
        reply = self.call(CtlType.CONNECT,
                          ctl_payload(SimClientInfo(id=ident, issm=issm, nodeid=nodeid)))
        assert reply.type == CtlType.CONNECT
        self.slot = SimClientInfo.decode(reply.data).id
        self.data.connect(abstract_name(name, f"out{self.slot}"))

    def call(self, kind: int, data: bytes = bytes(64)) -> SimCtl:
        self.ctl.send(SimCtl(clientid=getattr(self, "slot", 0), type=kind, data=data).encode())
        return SimCtl.decode(self.ctl.recv(1024))

    def send(self, dlid: int, mad: bytes, qp: int = 1) -> None:
        """Send one MAD (SLID 0: the server fills in our LID)."""
        self.data.send(pack_request(dlid, 0xFFFF if dlid == 0xFFFF else 0, qp, qp, 0, 256,
                                    mad))

    def recv(self) -> tuple[SimRequestHeader, bytes]:
        """The next datagram: its header and its valid MAD bytes."""
        buf = self.data.recv(1024)
        head = SimRequestHeader.decode(buf)
        return head, buf[32:32 + head.length]

    def mad(self, dlid: int, mad: bytes, qp: int = 1) -> tuple[SimRequestHeader, bytes]:
        """Send a request and wait for what comes back."""
        self.send(dlid, mad, qp)
        return self.recv()

    def vanish(self) -> None:
        """Go away without DISCONNECT, as a crashed client does."""
        self.ctl.close()
        self.data.close()

    def close(self) -> None:
        self.call(CtlType.DISCONNECT)
        self.vanish()


def tool_env(name: str, host: str | None) -> dict[str, str]:
    env = {**os.environ, "IBSIM_SOCKNAME": name, "LD_PRELOAD": UMAD2SIM,
           "PATH": os.environ.get("PATH", "") + ":" + SBIN}
    env.pop("SIM_HOST", None)
    if host:
        env["SIM_HOST"] = host
    return env


def tool(name: str, host: str | None, *argv: str, cwd: Path, timeout: float = 60,
         check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run one diagnostics command attached at ``host``."""
    r = subprocess.run(list(argv), env=tool_env(name, host), cwd=cwd, capture_output=True,
                       text=True, timeout=timeout, check=False)
    if check:
        assert r.returncode == 0, f"{argv}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


@contextmanager
def opensm(name: str, workdir: Path, *, host: str | None = None, timeout: float = 60,
           extra: tuple[str, ...] = ()) -> Iterator[Path]:
    """OpenSM under the preload, attached at ``host`` (default: the first node); yields its
    log (flushed after every message, -d2) once it says SUBNET UP. It is always stopped (SIGTERM, then SIGKILL) by pid."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "opensm.log"
    env = tool_env(name, host)
    env.update(OSM_CACHE_DIR=str(workdir), OSM_TMP_DIR=str(workdir))
    proc = subprocess.Popen([OPENSM, "-d2", "-f", str(log), *extra], env=env, cwd=workdir,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace") if log.exists() else ""
            if "SUBNET UP" in text:
                break
            assert proc.poll() is None, f"opensm exited ({proc.returncode}):\n{text[-3000:]}"
            assert time.monotonic() < deadline, f"no SUBNET UP in {timeout} s:\n{text[-3000:]}"
            time.sleep(0.05)
        yield log
    finally:
        stop(proc)
