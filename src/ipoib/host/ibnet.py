"""The InfiniBand side of a daemon: the simulated fabric, the embedded SM, one IPoIB device per host.

:func:`ipoib.host.daemon.build` gives each host an :class:`~ipoib.netdev.IpoibDevice` made here
as its endpoint, and the runtime pumps the fabric, the SM and the devices (docs/conventions.md,
the pump contract). This module also answers the control socket's InfiniBand views: ``neigh``,
``path``, ``mcast``, ``counters``, ``sa`` (SA client statistics), ``routes``, ``lids``,
``capture`` and ``ibsim`` (the ibsim-protocol server OpenSM and the diagnostics attach to,
when one is given a socket name: :mod:`ipoib.ibsim`).

Time is the event loop's clock (``time.monotonic``); captures are stamped with wall-clock time
by adding the offset between the two once, when the capture starts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from ipaddress import IPv4Interface, IPv6Interface
from typing import IO, Any

from ..fabric.fabric import Fabric
from ..fabric.topology import Topology
from ..ibsim.server import IbsimServer
from ..ibsim.transport import IbsimTransport
from ..netdev import IpoibDevice
from ..sm.agent import SmBinding
from ..wire.capture import LINKTYPE_ERF, PcapWriter
from ..wire.gid import guid_to_str
from .control import Reply
from .netns import HostError


class SmPump:
    """The embedded SM's binding under the pump contract.

    The SM changes only in its timers (run here) and in its MAD handlers, which the fabric
    runs from its own ``process``; so the deadline known at the end of :meth:`process` still
    holds when the runtime asks for it right after the same pump, and is not asked twice."""

    def __init__(self, binding: SmBinding) -> None:
        self.binding = binding
        self._next: float | None = None
        self._fresh = False

    def process(self, now: float) -> None:
        """Let the SM act on its timers when they are due."""
        t = self.binding.get_timer()
        if t is not None and t <= now:
            self.binding.handle_timer(now)
            t = self.binding.get_timer()
        self._next, self._fresh = t, True

    def get_timer(self) -> float | None:
        """The SM's next deadline."""
        if self._fresh:
            self._fresh = False
            return self._next
        return self.binding.get_timer()


class _WallClockWriter:
    """A capture writer that stamps packets with wall-clock time instead of monotonic time."""

    def __init__(self, writer: PcapWriter, offset: float) -> None:
        self.writer = writer
        self.offset = offset

    def write_ib(self, now: float, pkt: bytes) -> None:
        self.writer.write_ib(now + self.offset, pkt)


class IbNet:
    """A fabric built from ``topology``, with the embedded SM on its first node unless
    ``sm`` is ``"none"``, and the IPoIB devices of the hosts added with :meth:`add_host`."""

    def __init__(self, topology: Topology, *, sm: str = "embedded", now: float | None = None,
                 seed: int = 0, ibsim: str | None = None, ibsim_udp: int | None = None) -> None:
        if sm not in ("embedded", "none"):
            raise HostError(f"unknown SM mode {sm!r} (embedded or none)")
        now = time.monotonic() if now is None else now
        self.topology = topology
        self.fabric = Fabric(topology, seed=seed)
        self.fabric.process(now)
        self.pumpables: list[Any] = [self.fabric]
        self.sm: SmBinding | None = None
        if sm == "embedded":
            self.sm = SmBinding(self.fabric, topology.nodes[0].name)
            self.sm.start(now)
            self.pumpables.append(SmPump(self.sm))
        self.devices: dict[str, IpoibDevice] = {}
        self._capture: IO[bytes] | None = None
        self.starters: list[Callable[[asyncio.AbstractEventLoop, Any], None]] = []
        self.ibsim: IbsimTransport | None = None
        if ibsim is not None:  # OpenSM and infiniband-diags reach this fabric (ipoib.ibsim)
            transport = IbsimTransport(IbsimServer(self.fabric), ibsim, udp_port=ibsim_udp)
            self.ibsim = transport
            self.pumpables.append(transport)
            self.starters.append(lambda loop, runtime: transport.start(loop, runtime.kick))

    def add_host(self, name: str, addresses: Iterable[IPv4Interface | IPv6Interface],
                 now: float | None = None) -> IpoibDevice:
        """Open an IPoIB device on the CA ``name`` (port 1) owning ``addresses``."""
        now = time.monotonic() if now is None else now
        dev = IpoibDevice(self.fabric.context(name))
        dev.open(now)
        for a in addresses:
            dev.add_address(a, now)
        self.devices[name] = dev
        self.pumpables.append(dev)
        return dev

    # --- captures ---------------------------------------------------------------------------

    def start_capture(self, path: str, ports: Iterable[tuple[str, int]] | None = None) -> None:
        """Record every packet crossing ``ports`` (all when None) to ``path`` (ERF, Wireshark)."""
        self.stop_capture()
        f = open(path, "wb")  # noqa: SIM115 - kept open until stop_capture
        self._capture = f
        writer = PcapWriter(f, LINKTYPE_ERF)
        self.fabric.capture(_WallClockWriter(writer, time.time() - time.monotonic()),  # type: ignore[arg-type]
                            ports=list(ports) if ports is not None else None)

    def stop_capture(self) -> None:
        """Stop recording and close the file."""
        if self._capture is not None:
            self.fabric.stop_capture()
            self._capture.close()
            self._capture = None

    def close(self) -> None:
        """Stop the capture, the ibsim server and the SM."""
        self.stop_capture()
        if self.ibsim is not None:
            self.ibsim.close()
        if self.sm is not None:
            self.sm.close()

    # --- control-socket views ---------------------------------------------------------------

    def handlers(self, host_of: Callable[[str | None], list[str]]) -> dict[str, Callable[
            [Mapping[str, Any]], Any]]:
        """The control commands this side answers. ``host_of(key)`` maps a host key (name,
        namespace or address; None = all) to host names."""

        def per_host(data: Callable[[IpoibDevice], Any], text: Callable[[IpoibDevice], str]
                     ) -> Callable[[Mapping[str, Any]], Reply]:
            def handler(req: Mapping[str, Any]) -> Reply:
                names = host_of(req.get("host"))
                devs = [(n, self.devices[n]) for n in names if n in self.devices]
                if len(devs) == 1:
                    n, d = devs[0]
                    return Reply({n: data(d)}, text(d))
                return Reply({n: data(d) for n, d in devs},
                             "\n".join(f"== {n} ==\n{text(d)}" for n, d in devs))
            return handler

        return {
            "neigh": per_host(lambda d: d.neigh_view(), lambda d: d.format_neigh()),
            "path": per_host(lambda d: d.path_view(), lambda d: d.format_path()),
            "mcast": per_host(lambda d: d.mcast_view(), lambda d: d.format_mcast()),
            "counters": per_host(lambda d: d.counters(), lambda d: d.format_counters()),
            "routes": per_host(lambda d: d.route_view(),
                               lambda d: "\n".join(r.format() for r in d.route_view())),
            "sa": per_host(lambda d: dict(d.sa.stats),
                           lambda d: "\n".join(f"{k}: {v}" for k, v in sorted(d.sa.stats.items()))),
            "lids": self._lids,
            "ibsim": self._ibsim_cmd,
            "capture": self._capture_cmd,
        }

    def _lids(self, req: Mapping[str, Any]) -> Reply:
        if self.sm is None or self.sm.sm.graph is None:
            raise HostError("no LIDs: the embedded SM is not running (--sm none)")
        sm = self.sm.sm
        graph = sm.graph
        assert graph is not None
        rows: list[dict[str, Any]] = []
        for node in graph.nodes.values():
            for num, port in sorted(node.ports.items()):
                lid = sm.lids.get(port.guid)
                if lid:
                    rows.append({"node": node.desc, "type": node.kind.name.lower(),
                                 "port": num, "guid": guid_to_str(port.guid), "lid": lid})
        rows.sort(key=lambda r: r["lid"])
        text = "\n".join(f"{r['lid']:>5}  {r['guid']}  {r['type']:<6} {r['node']} port {r['port']}"
                         for r in rows)
        return Reply(rows, f"{'LID':>5}  {'port GUID':<18}  {'type':<6} node\n{text}")

    def _ibsim_cmd(self, req: Mapping[str, Any]) -> dict[str, Any]:
        if self.ibsim is None:
            raise HostError("this daemon does not serve the ibsim protocol")
        server = self.ibsim.server
        cas = self.topology.cas
        return {"sockname": self.ibsim.sockname, "udp_port": self.ibsim.udp_port or None,
                "default_host": cas[0].name if cas else self.topology.nodes[0].name,
                "clients": server.describe(), "stats": dict(server.stats),
                "drops": dict(server.drops)}

    def _capture_cmd(self, req: Mapping[str, Any]) -> dict[str, Any]:
        if req.get("stop"):
            self.stop_capture()
            return {"capturing": False}
        path = req.get("file")
        if not path:
            raise HostError("capture needs a file")
        ports = req.get("ports")
        self.start_capture(path, [(str(n), int(p)) for n, p in ports] if ports else None)
        return {"capturing": True, "file": path}
