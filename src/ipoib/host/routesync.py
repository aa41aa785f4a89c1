"""The namespace's routes, followed into the IPoIB driver.

A TUN device hands the driver bare IP packets, with no next hop: the kernel's routing decision
(on-link, or which gateway) stays in the kernel. The driver needs it to know whose address to
resolve, so the daemon watches each host's routing table through netlink and gives the device the
routes that go out of ``ib0``:
``ip route add 10.20.0.0/16 via 10.10.0.8`` in a namespace makes that host's driver resolve
10.10.0.8 for packets to 10.20.x.y, as the kernel would.

One watcher thread serves every host: its netlink sockets are made inside each namespace
(``setns`` moves only the calling thread) and it waits on all of them with ``select``. Route
changes are rare control-plane events; the result is handed to the event loop with
``call_soon_threadsafe``, so the devices are only ever touched from the loop.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pyroute2.netlink.rtnl import (  # type: ignore[import-untyped]
    RTMGRP_IPV4_ROUTE,
    RTMGRP_IPV6_ROUTE,
)

from . import netns

MAIN_TABLE = 254
RTN_UNICAST = 1


def route_text(msg: Any) -> str | None:
    """A netlink route message in the driver's route syntax, or None for what it ignores
    (other tables, multicast and local routes)."""
    table = msg.get("table") or msg.get("RTA_TABLE")
    if table != MAIN_TABLE or msg.get("type", RTN_UNICAST) != RTN_UNICAST:
        return None
    gw = msg.get("gateway")
    if msg["dst_len"] == 0:
        return f"default via {gw}" if gw else None
    dst = msg.get("dst")
    if dst is None:
        return None
    text = f"{dst}/{msg['dst_len']}"
    return f"{text} via {gw}" if gw else text


def read_routes(ipr: Any, ifindex: int) -> list[str]:
    """The main-table routes that leave by ``ifindex``, in the driver's syntax."""
    out = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.route("dump", family=family):
            if msg.get("oif") == ifindex:
                text = route_text(msg)
                if text is not None:
                    out.append(text)
    return out


@dataclass
class Watched:
    """One host's table: its namespace, the TUN's ifindex, and where the routes go."""

    netns: str
    ifindex: int
    apply: Callable[[list[Any]], None]


class RouteWatcher:
    """Follows the routing tables of several namespaces into their devices (see above)."""

    def __init__(self, hosts: Sequence[Watched]) -> None:
        self.hosts = list(hosts)
        self.syncs = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="ipoib-routes", daemon=True)

    def start(self, loop: asyncio.AbstractEventLoop, runtime: object = None) -> None:
        """A daemon starter: begin watching; results are applied on ``loop``."""
        self._loop = loop
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and close its sockets."""
        self._stop = True
        os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _apply(self, w: Watched, routes: list[str]) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(w.apply, routes)
        except RuntimeError:  # the loop has closed: the daemon is stopping
            self._stop = True
            return
        self.syncs += 1

    def _run(self) -> None:
        socks: dict[int, tuple[Any, Any, Watched]] = {}
        try:
            for w in self.hosts:
                events = netns.iproute(w.netns)
                events.bind(groups=RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)
                dump = netns.iproute(w.netns)
                socks[events.fileno()] = (events, dump, w)
                self._apply(w, read_routes(dump, w.ifindex))
            while not self._stop:
                ready, _, _ = select.select([self._wake_r, *socks], [], [])
                for fd in ready:
                    if fd in socks and not self._stop:
                        events, dump, w = socks[fd]
                        events.get()  # drain; what changed is re-read whole
                        self._apply(w, read_routes(dump, w.ifindex))
        except OSError:
            pass  # a namespace went away: the daemon is stopping
        finally:
            for events, dump, _ in socks.values():
                events.close()
                dump.close()
