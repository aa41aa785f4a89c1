"""The InfiniBand side of a daemon: the simulated fabric, its SM, one IPoIB device per host.

:func:`ipoib.host.daemon.build` gives each host an :class:`~ipoib.netdev.IpoibDevice` made here
as its endpoint, and the runtime pumps the fabric, the SM and the devices (docs/conventions.md,
the pump contract). This module also answers the control socket's InfiniBand views: ``neigh``,
``path``, ``mcast``, ``counters``, ``sa`` (SA client statistics), ``routes``, ``lids``,
``capture`` and ``ibsim`` (the ibsim-protocol server OpenSM and the diagnostics attach to,
when one is given a socket name: :mod:`ipoib.ibsim`).

The SM is the embedded one (``sm="embedded"``), none, or the real OpenSM as a separate process
attached through the ibsim server (``sm="opensm"``, :mod:`.opensm`); ``sm_node`` says where it
runs (default: the topology's first node) and ``partitions`` names an OpenSM partitions.conf
for either. :meth:`IbNet.sm_view` and :meth:`IbNet.sm_summary` say which SM runs and how.

Time is the event loop's clock (``time.monotonic``); captures are stamped with wall-clock time
by adding the offset between the two once, when the capture starts.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from ipaddress import IPv4Interface, IPv6Interface
from pathlib import Path
from typing import IO, Any

from ..fabric.fabric import Fabric
from ..fabric.topology import Topology
from ..ibsim.server import IbsimServer
from ..ibsim.transport import IbsimTransport
from ..netdev import IpoibDevice
from ..sm.agent import SmBinding
from ..sm.graph import SubnetGraph
from ..sm.manager import SmConfig
from ..sm.partitions import PartitionsError, plan_partitions
from ..wire.capture import LINKTYPE_ERF, PcapWriter
from ..wire.gid import guid_to_str
from ..wire.smp import PortCap
from .control import Reply
from .netns import HostError
from .opensm import START_TIMEOUT, UMAD2SIM, UMAD2SIM_ENV, OpenSm, OpenSmConfig

SM_MODES = ("embedded", "opensm", "none")


class _WallClockWriter:
    """A capture writer that stamps packets with wall-clock time instead of monotonic time."""

    def __init__(self, writer: PcapWriter, offset: float) -> None:
        self.writer = writer
        self.offset = offset

    def write_ib(self, now: float, pkt: bytes) -> None:
        self.writer.write_ib(now + self.offset, pkt)


def _read_partitions(path: str) -> str:
    """A partitions.conf's text, checked as the embedded SM will read it."""
    try:
        text = Path(path).read_text()
        plan_partitions(text, SubnetGraph(), 0)
    except OSError as e:
        raise HostError(f"--partitions: {e.strerror}: {path}") from None
    except PartitionsError as e:
        raise HostError(f"{path}: {e}") from None
    return text


GC_PAUSE_LIMIT = 120.0
"""Seconds after which a daemon's collector runs again even if the subnet never came up."""
GC_PAUSE_POLL = 0.05
"""Seconds between two looks at whether the subnet is up, while the collector is paused."""


@contextmanager
def collector_paused(*, keep_frozen: bool = False) -> Iterator[None]:
    """The cyclic garbage collector off for a bring-up, and on again afterwards, always.

    A bring-up allocates a few objects per SMP and frees nearly all of them by reference
    counting, but the allocations keep triggering collections that walk the whole fabric
    (hundreds of thousands of objects at 1944 HCAs) to find no cycles: 4-8% of the time.
    What exists when the pause starts (the fabric, built just before) is frozen
    (``gc.freeze``), so collections after it skip those objects too; ``keep_frozen`` leaves
    them frozen (a daemon's fabric lives as long as the process), else they go back to the
    collector on the way out, so a fabric dropped later is still collected.
    """
    was = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
        if not keep_frozen:
            gc.unfreeze()


class _CollectorPause:
    """A pumpable that holds :func:`collector_paused` from the daemon's start until the
    embedded SM reports the subnet up (or :data:`GC_PAUSE_LIMIT` seconds, or close).

    It sleeps (the pump contract): it looks at the SM every :data:`GC_PAUSE_POLL` seconds
    while the pause is held and never after, so a turn that moves data does not run it."""

    def __init__(self, sm: SmBinding, now: float) -> None:
        self.sm = sm
        self.deadline: float | None = now + GC_PAUSE_LIMIT
        self._next: float | None = now
        self._pause = collector_paused(keep_frozen=True)
        self._pause.__enter__()

    def set_wakeup(self, wakeup: Callable[[], None]) -> None:
        """Nothing wakes it: it runs on its own timer."""

    def process(self, now: float) -> None:
        """Resume the collector once the subnet is up or the limit is reached."""
        if self.deadline is not None and (self.sm.sm.subnet_up or now >= self.deadline):
            self.close()
        elif self.deadline is not None:
            self._next = min(now + GC_PAUSE_POLL, self.deadline)

    def get_timer(self) -> float | None:
        """When to look at the SM again, while paused."""
        return self._next

    def close(self) -> None:
        """Resume the collector (idempotent)."""
        self._next = None
        if self.deadline is not None:
            self.deadline = None
            self._pause.__exit__(None, None, None)


class IbNet:
    """A fabric built from ``topology``, its SM (``sm``: embedded, opensm or none) on
    ``sm_node``, and the IPoIB devices of the hosts added with :meth:`add_host`.

    With ``sm="opensm"`` the ibsim server is required (``ibsim``) and OpenSM keeps its files
    in ``opensm_dir``; it is started by the gate :attr:`gates` holds (the daemon awaits it
    once the loop serves the fabric) and stopped by :meth:`close`.
    """

    def __init__(self, topology: Topology, *, sm: str = "embedded", now: float | None = None,
                 seed: int = 0, ibsim: str | None = None, ibsim_udp: int | None = None,
                 sm_node: str | None = None, partitions: str | None = None,
                 opensm_dir: Path | None = None, sm_wait: float = START_TIMEOUT) -> None:
        if sm not in SM_MODES:
            raise HostError(f"unknown SM mode {sm!r} ({', '.join(SM_MODES)})")
        if sm == "none" and (sm_node or partitions):
            raise HostError("--sm-node and --partitions are for an SM (--sm embedded or opensm)")
        node = sm_node or topology.nodes[0].name
        names = {n.name for n in topology.nodes} | {n.description for n in topology.nodes}
        if node not in names:
            raise HostError(f"--sm-node: no node {node!r} in {topology.source}")
        if sm == "opensm" and (ibsim is None or ibsim_udp is not None or opensm_dir is None):
            raise HostError("OpenSM needs the ibsim server on a unix socket and a directory")
        now = time.monotonic() if now is None else now
        self.topology = topology
        self.sm_mode = sm
        self.sm_node = node
        self.fabric = Fabric(topology, seed=seed)
        self.fabric.process(now)
        self.pumpables: list[Any] = [self.fabric]
        self.sm: SmBinding | None = None
        self.gc_pause: _CollectorPause | None = None
        self.opensm: OpenSm | None = None
        self.gates: list[Callable[[], Any]] = []
        if sm == "embedded":
            text = _read_partitions(partitions) if partitions else None
            name = next(n.name for n in topology.nodes if node in (n.name, n.description))
            self.sm = SmBinding(self.fabric, name, config=SmConfig(partitions=text))
            self.sm.start(now)
            self.pumpables.append(self.sm)
        elif sm == "opensm":
            assert ibsim is not None and opensm_dir is not None
            if partitions and not os.access(partitions, os.R_OK):
                raise HostError(f"--partitions: cannot read {partitions}")
            self.opensm = OpenSm(OpenSmConfig(
                ibsim, node, opensm_dir,
                partitions=Path(partitions).resolve() if partitions else None,
                umad2sim=os.environ.get(UMAD2SIM_ENV) or UMAD2SIM, timeout=sm_wait),
                on_exit=self.forget_clients)
            self.gates.append(self.opensm.start)
        self.devices: dict[str, IpoibDevice] = {}
        self._capture: IO[bytes] | None = None
        self.starters: list[Callable[[asyncio.AbstractEventLoop, Any], None]] = []
        self.ibsim: IbsimTransport | None = None
        if ibsim is not None:  # OpenSM and infiniband-diags reach this fabric (ipoib.ibsim)
            transport = IbsimTransport(IbsimServer(self.fabric), ibsim, udp_port=ibsim_udp)
            self.ibsim = transport
            self.pumpables.append(transport)
            self.starters.append(lambda loop, runtime: transport.start(loop, runtime.kick))
        if self.sm is not None:  # last: nothing after it can fail and leave the pause held
            self.gc_pause = _CollectorPause(self.sm, now)
            self.pumpables.append(self.gc_pause)

    def add_host(self, name: str, addresses: Iterable[IPv4Interface | IPv6Interface],
                 now: float | None = None) -> IpoibDevice:
        """Open an IPoIB device on the CA ``name`` (port 1) owning ``addresses``.

        The port advertises IsClientReregistrationSupported, as HCA firmware does: its SMA
        turns the ClientReregister bit into the event that makes the device join its groups
        again, and OpenSM sets that bit (after a restart, say) only on ports that advertise
        it. ibsim's CA ports do not, so the bare fabric keeps ibsim's capability mask.
        """
        now = time.monotonic() if now is None else now
        self.fabric.node(name).port(1).cap_mask |= PortCap.IS_CLIENT_REREGISTRATION_SUPPORTED
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

    def forget_clients(self, ident: int) -> None:
        """Disconnect the ibsim clients that connected with ``ident`` (umad2sim sends its
        pid): for a process known to be dead, which never said DISCONNECT."""
        if self.ibsim is None:
            return
        server = self.ibsim.server
        for slot in [s for s, cl in server.clients.items() if cl.ident == ident]:
            server.disconnect(slot)
            self.ibsim.backlog.pop(slot, None)

    def close(self) -> None:
        """Stop the capture, the ibsim server, OpenSM and the SM.

        The ibsim sockets close before OpenSM is told to stop: on its way out umad2sim asks
        the server to disconnect and would wait for an answer the stopped loop never gives,
        whereas with the sockets gone it gets ECONNREFUSED and exits at once.
        """
        self.stop_capture()
        if self.ibsim is not None:
            self.ibsim.close()
        if self.opensm is not None:
            self.opensm.stop()
        if self.sm is not None:
            self.sm.close()
        if self.gc_pause is not None:
            self.gc_pause.close()

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
            "sm": lambda req: Reply(self.sm_view(), self.sm_summary()),
            "ibsim": self._ibsim_cmd,
            "capture": self._capture_cmd,
        }

    def sm_view(self) -> dict[str, Any]:
        """Which SM runs, where, and how it is doing."""
        if self.opensm is not None:
            return self.opensm.describe()
        if self.sm is not None:
            return {"sm": "embedded", "node": self.sm_node,
                    "state": "up" if self.sm.sm.subnet_up else "sweeping"}
        return {"sm": "none", "node": None, "state": "external",
                "ibsim": self.ibsim.sockname if self.ibsim else None}

    def sm_summary(self) -> str:
        """One line for ``show hosts``: ``SM: ...``."""
        if self.opensm is not None:
            return self.opensm.summary()
        if self.sm is not None:
            return f"SM: embedded at {self.sm_node} ({self.sm_view()['state']})"
        where = f" (attach one to ibsim socket {self.ibsim.sockname})" if self.ibsim else ""
        return f"SM: none in this process{where}"

    def _lids(self, req: Mapping[str, Any]) -> Reply:
        if self.sm is None:
            raise HostError(f"no LIDs here: the embedded SM is not running (--sm "
                            f"{self.sm_mode}); `ipoib diag ibnetdiscover` shows them")
        if self.sm.sm.graph is None:
            raise HostError("no LIDs yet: the embedded SM has not swept the fabric")
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
