"""Network namespaces for hosts: name, create, enter, list the processes inside, delete.

Every host lives in a namespace named ``<prefix><node>`` (prefix ``ipoib-``), bound under
``/run/netns`` the way ``ip netns add`` binds it, so ``ip netns``, ``ip netns exec`` and
``ipoib exec`` all see the same thing. pyroute2 creates and removes them.

pyroute2's synchronous ``IPRoute`` runs its own event loop, so it must not be called from a
thread where an asyncio loop is running: the host layer configures namespaces before the
runtime starts and tears them down after it stops.
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pyroute2 import IPRoute  # type: ignore[import-untyped]
from pyroute2 import netns as _pr_netns

NETNS_DIR = Path("/run/netns")
"""Where named namespaces are bound (``/var/run/netns`` is the same directory)."""
DEFAULT_PREFIX = "ipoib-"
PREFIX_ENV = "IPOIB_NETNS_PREFIX"
"""Environment variable overriding :data:`DEFAULT_PREFIX` (tests use a unique one)."""
MAX_NAME = 64
"""Longest namespace name we make; the kernel allows a file name, we keep them readable."""

_INVALID = re.compile(r"[^A-Za-z0-9_.-]+")


class HostError(Exception):
    """A host-layer failure a user can cause or fix; its text is one readable line."""


class NamespaceTaken(HostError):
    """A namespace with the name we need exists and was not made by us."""

    def __init__(self, name: str) -> None:
        super().__init__(f"network namespace {name!r} already exists (not made by this run); "
                         f"remove it with `ip netns delete {name}` or pick another prefix")
        self.name = name


def default_prefix() -> str:
    """The namespace name prefix: ``$IPOIB_NETNS_PREFIX`` or ``ipoib-``."""
    return os.environ.get(PREFIX_ENV) or DEFAULT_PREFIX


def name_for(node: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The namespace name of ``node``: ``prefix`` + the node name made a safe file name.

    Runs of characters other than letters, digits, ``_``, ``.`` and ``-`` become one ``-``;
    a node name of nothing but dots becomes ``node``; the result is cut to
    :data:`MAX_NAME` characters.
    """
    body = _INVALID.sub("-", node).strip("-")
    if not body.strip("."):
        body = "node"
    name = (prefix + body)[:MAX_NAME]
    if name in (".", "..") or "/" in name or not name:
        raise HostError(f"cannot make a namespace name from prefix {prefix!r} and {node!r}")
    return name


def path(name: str) -> Path:
    """The bind mount that names namespace ``name``."""
    return NETNS_DIR / name


def exists(name: str) -> bool:
    """Whether a namespace called ``name`` is bound under :data:`NETNS_DIR`."""
    return path(name).exists()


def list_names(prefix: str = "") -> list[str]:
    """Names of the bound namespaces starting with ``prefix``, sorted."""
    try:
        return sorted(n for n in os.listdir(NETNS_DIR) if n.startswith(prefix))
    except FileNotFoundError:
        return []


def _setns(fd: int) -> None:
    _pr_netns.setns(fd, flags=0)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with the calling thread inside namespace ``name``, then come back.

    ``setns(2)`` moves only the calling thread; sockets and TUN devices opened in the body
    stay bound to ``name`` after the thread returns.
    """
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def enter(name: str) -> None:
    """Move the calling thread into namespace ``name`` for good (``exec`` and child setup)."""
    target = os.open(path(name), os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
    finally:
        os.close(target)


_CLONE_NEWNS = 0x0002_0000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
_MS_REC, _MS_SLAVE = 0x4000, 0x8_0000
_MNT_DETACH = 0x2


def private_sysfs() -> None:
    """Give the calling process its own mount namespace with a ``/sys`` of the network
    namespace it is in, as ``ip netns exec`` does, so ``/sys/class/net`` lists the host's
    interfaces (``ib0``, ``lo``) and tools reading it see them. Mounts made here do not
    leak out (the root is made a slave first). Raises :class:`HostError` if a step fails."""
    libc = ctypes.CDLL(None, use_errno=True)
    steps: list[tuple[str, Callable[[], int]]] = [
        ("unshare(CLONE_NEWNS)", lambda: libc.unshare(_CLONE_NEWNS)),
        ("mount --make-rslave /", lambda: libc.mount(b"none", b"/", None,
                                                     _MS_SLAVE | _MS_REC, None)),
        ("umount /sys", lambda: libc.umount2(b"/sys", _MNT_DETACH)),
        ("mount sysfs /sys", lambda: libc.mount(b"sysfs", b"/sys", b"sysfs",
                                                _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)),
    ]
    for what, call in steps:
        if call() != 0:
            raise HostError(f"{what}: {os.strerror(ctypes.get_errno())}")


def iproute(name: str) -> Any:
    """A pyroute2 ``IPRoute`` whose netlink socket talks to namespace ``name``."""
    with entered(name):
        return IPRoute()


def create(name: str) -> None:
    """Create namespace ``name`` with its loopback up; :class:`NamespaceTaken` if it exists."""
    if exists(name):
        raise NamespaceTaken(name)
    try:
        _pr_netns.create(name)
    except FileExistsError:
        raise NamespaceTaken(name) from None
    ipr = iproute(name)
    try:
        (lo,) = ipr.link_lookup(ifname="lo")
        ipr.link("set", index=lo, state="up")
    finally:
        ipr.close()


def pids(name: str) -> list[int]:
    """Processes whose network namespace is ``name`` (matched by device and inode)."""
    try:
        st = os.stat(path(name))
    except FileNotFoundError:
        return []
    key = (st.st_dev, st.st_ino)
    me = os.getpid()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            ns = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:
            continue
        if (ns.st_dev, ns.st_ino) == key:
            found.append(int(entry.name))
    return found


def kill_all(pid_list: Sequence[int], grace: float = 1.0) -> None:
    """SIGTERM every process in ``pid_list``, then SIGKILL those still there after ``grace``."""
    alive = [p for p in pid_list if _signal(p, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while alive and time.monotonic() < deadline:
        time.sleep(0.02)
        alive = [p for p in alive if _alive(p)]
    for p in alive:
        _signal(p, signal.SIGKILL)


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie; reaps it if it is our child."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in (b"Z", b"X")


def delete(name: str, grace: float = 1.0) -> None:
    """Kill the processes inside ``name``, then unbind it; a missing namespace is fine."""
    if not exists(name):
        return
    kill_all(pids(name), grace)
    try:
        _pr_netns.remove(name)
    except FileNotFoundError:
        pass


def popen(name: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """Start ``argv`` inside namespace ``name`` (like ``ip netns exec``, without the remounts).

    The namespace is entered between fork and exec, so the caller must not be running other
    threads (the CLI, the benchmarks and the tests are single-threaded).
    """
    return subprocess.Popen(list(argv), preexec_fn=lambda: enter(name),  # noqa: PLW1509
                            **kwargs)
