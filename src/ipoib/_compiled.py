"""The modules compiled to C with mypyc, and the guard that never lets a stale copy run.

The sweep and the data path are Python written for speed (ARCHITECTURE.md, "a designed hot
path"), and the modules below are also compiled with mypyc when the package is installed
(``setup.py``; ``make install`` rebuilds them whenever their sources change). The source
stays the one truth: a compiled module runs the same code, faster (a subnet bring-up in 0.6
of the time), with its type hints checked at run time.

A compiled module is a shared object next to its source, and Python's import system takes
the shared object first. So the build writes :data:`STAMP`, a digest of the sources it
compiled, and on the first import of ``ipoib`` :func:`guard` compares it with the sources
as they are: if they differ (an edit or a checkout since the last build), a compiled module
is missing, or ``IPOIB_PURE=1`` is set (profiling, debugging), every module of the list is
imported from its source instead. It is all or none: the compiled modules call each other directly, so a
mix would hold two copies of a module's state.

This file is read by ``setup.py`` too, before the package exists; it imports nothing of
``ipoib``.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

MODULES: tuple[str, ...] = (
    "ipoib.fabric.agents",
    "ipoib.fabric.burst",
    "ipoib.fabric.fabric",
    "ipoib.fabric.hca",
    "ipoib.fabric.inbound",
    "ipoib.fabric.node",
    "ipoib.fabric.pma",
    "ipoib.fabric.sma",
    "ipoib.fabric.verbs",
    "ipoib.sm.agent",
    "ipoib.sm.discovery",
    "ipoib.sm.graph",
    "ipoib.sm.lids",
    "ipoib.sm.manager",
    "ipoib.sm.mcast",
    "ipoib.sm.program",
    "ipoib.sm.routing",
    "ipoib.sm.transactions",
    "ipoib.netdev.control",
    "ipoib.netdev.counters",
    "ipoib.netdev.device",
    "ipoib.netdev.gro",
    "ipoib.netdev.neigh",
    "ipoib.wire.ib",
    "ipoib.wire.ip",
    "ipoib.wire.offload",
    "ipoib.host.runtime",
    "ipoib.host.tun",
)
"""What mypyc compiles: the SM, the fabric's forwarding and agents, the driver's data path
and the runtime that feeds it."""

_ROOT = Path(__file__).resolve().parent.parent
_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
STAMP = "_compiled.stamp"
"""The digest file, next to this module (written by ``setup.py`` with the shared objects)."""


def source(module: str) -> Path:
    """The ``.py`` file of ``module``."""
    return _ROOT.joinpath(*module.split(".")).with_suffix(".py")


def shared_object(module: str) -> Path:
    """Where the compiled ``module`` is (whether or not it is there)."""
    src = source(module)
    return src.with_name(src.stem + _SUFFIX)


def digest() -> str:
    """One digest of every listed module's source, in list order."""
    h = hashlib.sha256()
    for m in MODULES:
        h.update(m.encode() + b"\0" + source(m).read_bytes())
    return h.hexdigest()


def current() -> bool:
    """True when every listed module is compiled from today's sources."""
    stamp = Path(__file__).with_name(STAMP)
    return (all(shared_object(m).exists() for m in MODULES) and stamp.exists()
            and stamp.read_text().strip() == digest())


def stale() -> bool:
    """True when some listed module is compiled but the set is not the build of today's
    sources (a pure install, nothing compiled, is not stale)."""
    return any(shared_object(m).exists() for m in MODULES) and not current()


def compiled() -> bool:
    """True when the compiled modules are the ones imported."""
    return not any(isinstance(f, _SourceFirst) for f in sys.meta_path) and all(
        shared_object(m).exists() for m in MODULES)


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the listed modules' sources ahead of their shared objects."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source(fullname))


def guard() -> None:
    """Import the listed modules from source when the compiled copies are stale or
    ``IPOIB_PURE=1``; say so on stderr when they were stale."""
    if any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        return
    pure = os.environ.get("IPOIB_PURE") == "1"
    if pure or stale():
        sys.meta_path.insert(0, _SourceFirst())
        if not pure:
            print("ipoib: the compiled modules are not a build of these sources: running "
                  "pure Python (`make install` rebuilds them)", file=sys.stderr)
