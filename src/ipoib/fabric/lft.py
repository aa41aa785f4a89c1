"""A switch's linear forwarding table (IBA 14.2.5.10) as the forwarding loop reads it.

It lives apart from :mod:`.node` because it subclasses ``bytearray``: the modules compiled
with mypyc (:mod:`ipoib._compiled`) cannot, and this one stays interpreted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .node import FabricHooks


class Lft(bytearray):
    """A switch's linear forwarding table: a ``bytearray`` (reads stay C-speed) whose writes
    tell the fabric that cached routes may be wrong now."""

    __slots__ = ("fabric",)

    def __init__(self, fabric: FabricHooks, size: int) -> None:
        super().__init__(b"\xff" * size)
        self.fabric = fabric

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.fabric.forwarding_changed()
