"""The daemon: hosts in namespaces, the runtime, the control socket, and the seam to the fabric.

:class:`Daemon` knows nothing about InfiniBand. It is given hosts (a name, a namespace,
addresses, an MTU and an *endpoint* that takes the host's IP packets and gives packets back),
the pumpables to drive, and the control handlers; it makes the namespaces and TUNs (recording
each in the run state first), runs the :class:`~ipoib.host.runtime.Runtime` and the control
socket, reports when every host has carrier, and undoes it all on the way out.

:func:`build` is the seam: it turns a topology into a Daemon. Today it wires the hosts to the
stand-in wire of :mod:`ipoib.host.relay` (IP packets delivered by destination address, no
fabric); the fabric, the SM and one IPoIB device per host replace it there, and nothing else
in the host layer changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface
from typing import Any

from ..fabric.topology import Topology
from ..wire.gid import gid_to_str
from ..wire.ipoib import link_local_address
from . import netns, tun
from .control import ControlServer, Handler, Reply
from .netns import HostError, NamespaceTaken
from .runtime import Endpoint, Pumpable, Runtime
from .state import RunDir, RunState, cleanup, host_keys, proc_start

DEFAULT_SUBNET = IPv4Network("10.10.0.0/16")
DEFAULT_MTU = 2044
"""The IPoIB datagram-mode MTU on a 2048-byte IB MTU: 2048 minus the 4-byte header."""

ReadyCallback = Callable[[list[dict[str, Any]]], None]
Starter = Callable[[asyncio.AbstractEventLoop, Runtime], None]
"""Called once the loop runs, before the first pump: opens sockets, adds readers."""
TimeoutCallback = Callable[[list[str]], None]
Gate = Callable[[], Awaitable[None]]
"""Awaited while the fabric is served, before the wait for carrier (e.g. OpenSM reaching
SUBNET UP); a HostError it raises ends the run with that message."""


def _no_description() -> Mapping[str, Any]:
    return {}


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@dataclass(frozen=True, slots=True)
class HostPlan:
    """Where one HCA becomes a host, decided before anything is made."""

    name: str
    netns: str
    ipv4: IPv4Interface
    ipv6: IPv6Interface
    port_guid: int
    index: int
    """Position among the topology's HCAs (the address is derived from it)."""


@dataclass(slots=True)
class Host:
    """One host as the daemon runs it."""

    name: str
    netns: str
    ipv4: IPv4Interface
    ipv6: IPv6Interface
    mtu: int
    endpoint: Endpoint
    describe: Callable[[], Mapping[str, Any]] = _no_description
    routes: Sequence[tun.Route] = ()
    gro: bool = True
    """Coalesce received TCP runs for the host's stack (as Linux's IPoIB does with GRO)."""
    tso: bool = True
    """Take checksum offload and TSO from the host's stack when the endpoint can."""
    tun: tun.Tun | None = field(default=None, repr=False)


def plan_hosts(topology: Topology, *, names: Sequence[str] | None = None,
               subnet: IPv4Network = DEFAULT_SUBNET, prefix: str | None = None
               ) -> list[HostPlan]:
    """The hosts of a run: every HCA of ``topology`` (or those in ``names``), in file order.

    The i-th HCA of the topology gets the i-th address of ``subnet`` whether or not the
    others are picked, so an HCA keeps its address from run to run; its IPv6 link-local
    address comes from its port 1 GUID (RFC 4391 section 8).
    """
    cas = topology.cas
    if not cas:
        raise HostError(f"{topology.source}: the topology has no HCAs to make hosts of")
    if names:
        known = {c.name for c in cas}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise HostError(f"{topology.source}: no HCA named {unknown[0]!r} "
                            f"(have: {', '.join(c.name for c in cas[:8])}"
                            f"{', ...' if len(cas) > 8 else ''})")
    wanted = set(names) if names else None
    if subnet.num_addresses - 2 < len(cas):
        raise HostError(f"subnet {subnet} has room for {max(subnet.num_addresses - 2, 0)} "
                        f"hosts; the topology has {len(cas)} HCAs")
    prefix = netns.default_prefix() if prefix is None else prefix
    plans: list[HostPlan] = []
    taken: set[str] = set()
    for i, ca in enumerate(cas):
        if wanted is not None and ca.name not in wanted:
            continue
        ns = netns.name_for(ca.name, prefix)
        base, n = ns, 2
        while ns in taken:
            ns = f"{base[:netns.MAX_NAME - 4]}-{n}"
            n += 1
        taken.add(ns)
        guid = ca.port_guid(1)
        plans.append(HostPlan(
            name=ca.name, netns=ns,
            ipv4=IPv4Interface((subnet.network_address + 1 + i, subnet.prefixlen)),
            ipv6=IPv6Interface(f"{link_local_address(guid)}/64"),
            port_guid=guid, index=i))
    return plans


class Daemon:
    """Hosts, runtime and control socket, with everything made recorded in a run directory."""

    def __init__(self, hosts: Sequence[Host], pumpables: Sequence[Pumpable] = (),
                 handlers: Mapping[str, Handler] | None = None, *,
                 run_dir: RunDir | None = None, topology: str = "",
                 starters: Sequence[Starter] = (),
                 closers: Sequence[Callable[[], None]] = (),
                 info: Mapping[str, Any] | None = None, gates: Sequence[Gate] = (),
                 summary: Callable[[], str] | None = None) -> None:
        names = [h.name for h in hosts]
        if len(set(names)) != len(names) or len({h.netns for h in hosts}) != len(hosts):
            raise HostError("host names and namespaces must be unique")
        self.hosts = list(hosts)
        self.run_dir = run_dir if run_dir is not None else RunDir()
        self.runtime = Runtime(pumpables)
        self.control = ControlServer(self.run_dir.socket_path, after=self.runtime.kick)
        builtin: dict[str, Handler] = {"hosts": self._cmd_hosts, "status": self._cmd_status,
                                       "stop": self._cmd_stop}
        for name, handler in builtin.items():
            self.control.register(name, handler)
        for name, handler in (handlers or {}).items():
            self.control.register(name, handler)
        self.starters = list(starters)
        self.closers = list(closers)
        self.info = dict(info or {})
        """Extra facts the ``status`` command reports (e.g. the ibsim socket name); a
        callable value is called each time."""
        self.gates = list(gates)
        self.summary = summary
        """A line ``show hosts`` prints under the table (e.g. which SM runs)."""
        self.state = RunState(pid=os.getpid(), started=time.time(), topology=topology,
                              control=str(self.run_dir.socket_path))
        self.ready = False
        self._made = False

    # -- making and unmaking ------------------------------------------------------------

    def _save(self) -> None:
        self.run_dir.save(self.state)

    def setup(self) -> None:
        """Make every namespace and TUN, recording each before it exists.

        Raises :class:`NamespaceTaken` before making anything if a name is in use; a failure
        half-way leaves a state that :meth:`teardown` (or ``ipoib down``) fully undoes.
        """
        for h in self.hosts:
            if netns.exists(h.netns):
                raise NamespaceTaken(h.netns)
        self.state.pid = os.getpid()
        self.state.hosts = [self._record(h) for h in self.hosts]
        self._made = True
        self._save()
        for h in self.hosts:
            self.state.namespaces.append(h.netns)
            self._save()
            try:
                netns.create(h.netns)
            except NamespaceTaken:
                self.state.namespaces.remove(h.netns)
                self._save()
                raise
            self.state.tuns.append([h.netns, tun.DEFAULT_IFNAME])
            self._save()
            offload = h.tso and bool(getattr(h.endpoint, "tx_offload", False))
            h.tun = tun.create(h.netns, mtu=h.mtu, ipv4=h.ipv4, ipv6=[h.ipv6],
                               routes=h.routes, carrier=False, vnet_hdr=True, offload=offload)
            self.runtime.attach(h.tun, h.endpoint, gro=h.gro)

    def add_child(self, pid: int) -> None:
        """Record a child process (an OpenSM, a capture helper) for cleanup."""
        start = proc_start(pid)
        if start is not None:
            self.state.children.append([pid, start])
            self._save()

    def teardown(self) -> list[str]:
        """Close the TUNs, run the closers (the loop has stopped), remove every namespace
        and the state."""
        for h in self.hosts:
            if h.tun is not None:
                h.tun.close()
                h.tun = None
        for close in self.closers:
            try:
                close()
            except Exception as e:  # noqa: BLE001 - the rest of the cleanup must still run
                print(f"ipoib: teardown: {close!r} failed: {e}", file=sys.stderr)
        if not self._made:
            return []
        self._made = False
        return cleanup(self.state, self.run_dir)

    # -- serving ------------------------------------------------------------------------

    async def serve(self, on_ready: ReadyCallback | None = None, *,
                    carrier_timeout: float | None = None,
                    on_timeout: TimeoutCallback | None = None) -> None:
        """Serve until stopped; ``on_ready(rows)`` once every host has carrier, or
        ``on_timeout(missing)`` if that takes longer than ``carrier_timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        await self.control.start()
        for start in self.starters:
            start(loop, self.runtime)
        timer: asyncio.TimerHandle | None = None

        def check(*_: object) -> None:
            nonlocal timer
            if self.ready or not self.runtime.all_carrier:
                return
            self.ready = True
            if timer is not None:
                timer.cancel()
            if on_ready is not None:
                on_ready(self.host_rows())

        def expire() -> None:
            if not self.ready and on_timeout is not None:
                on_timeout([a.tun.netns for a in self.runtime.attachments if not a.carrier])

        running = asyncio.ensure_future(self.runtime.run())
        try:
            if await self._pass_gates(running):
                self.runtime.on_carrier.append(check)
                loop.call_soon(check)
                if carrier_timeout is not None:
                    timer = loop.call_later(carrier_timeout, expire)
                await running
        finally:
            self.runtime.stop()
            await running
            if timer is not None:
                timer.cancel()
            if check in self.runtime.on_carrier:
                self.runtime.on_carrier.remove(check)
            await self.control.close()

    async def _pass_gates(self, running: asyncio.Future[None]) -> bool:
        """Await each gate while the runtime serves; False if the runtime stopped first
        (a signal, ``stop``), raising what a gate raised."""
        for gate in self.gates:
            task = asyncio.ensure_future(gate())
            await asyncio.wait({task, running}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return False
            task.result()
        return True

    def run(self, on_ready: ReadyCallback | None = None, **kw: Any) -> list[str]:
        """Set up, serve until stopped, tear down (whatever happens in between); returns
        what the teardown removed.

        From the main thread, SIGTERM during set-up interrupts it like SIGINT (so the
        teardown runs), is the runtime's stop signal while serving, and is ignored during
        the teardown itself.
        """
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
        removed: list[str] = []
        try:
            self.setup()
            asyncio.run(self.serve(on_ready, **kw))
        finally:
            if main:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                removed = self.teardown()
            finally:
                if main:
                    signal.signal(signal.SIGTERM, previous if previous is not None
                                  else signal.SIG_DFL)
        return removed

    def stop(self) -> None:
        """Ask the runtime to stop (from the loop thread)."""
        self.runtime.stop()

    # -- views --------------------------------------------------------------------------

    @staticmethod
    def _record(h: Host) -> dict[str, Any]:
        return {"host": h.name, "netns": h.netns, "ipv4": str(h.ipv4), "ipv6": str(h.ipv6),
                "mtu": h.mtu, "ifname": tun.DEFAULT_IFNAME}

    def host_names(self, key: str | None = None) -> list[str]:
        """The hosts ``key`` names (:func:`.state.host_keys`), or all of them for None."""
        names = [h.name for h in self.hosts
                 if key is None or key in host_keys(self._record(h))]
        if not names:
            raise HostError(f"no host {key!r}")
        return names

    def host_rows(self, key: str | None = None) -> list[dict[str, Any]]:
        """One dict per host: the plan, the carrier, and what its endpoint describes."""
        carrier = {id(a.endpoint): a.carrier for a in self.runtime.attachments}
        names = set(self.host_names(key))
        rows = []
        for h in self.hosts:
            if h.name in names:
                row = self._record(h)
                row["carrier"] = carrier.get(id(h.endpoint), False)
                row.update(h.describe())
                rows.append(row)
        return rows

    def _cmd_hosts(self, req: Mapping[str, Any]) -> Reply:
        rows = self.host_rows(req.get("host"))
        text = format_hosts(rows)
        return Reply(rows, text if self.summary is None else f"{text}\n{self.summary()}")

    def _cmd_status(self, req: Mapping[str, Any]) -> dict[str, Any]:
        info = {k: v() if callable(v) else v for k, v in self.info.items()}
        return {"pid": os.getpid(), "uptime": round(time.time() - self.state.started, 3),
                "hosts": len(self.hosts), "ready": self.ready,
                "runtime": self.runtime.counters(), **info}

    def _cmd_stop(self, req: Mapping[str, Any]) -> dict[str, Any]:
        self.runtime.stop()
        return {"stopping": os.getpid()}


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bytes) and len(value) == 16:
        return gid_to_str(value)
    return str(value)


def _qpn(value: Any) -> str:
    return f"{value:#08x}" if isinstance(value, int) else _cell(value)


def format_hosts(rows: Sequence[Mapping[str, Any]]) -> str:
    """The ``show hosts`` table (also ``up``'s summary): host, namespace, address, LID, GID,
    QPN, carrier. LID/GID/QPN come from the endpoint's ``describe()``; absent is ``-``.
    """
    head = ("HOST", "NAMESPACE", "ADDRESS", "LID", "GID", "QPN", "CARRIER")
    table = [head]
    for r in rows:
        table.append((str(r["host"]), str(r["netns"]), str(r["ipv4"]), _cell(r.get("lid")),
                      _cell(r.get("gid")), _qpn(r.get("qpn")),
                      "up" if r.get("carrier") else "down"))
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in table)


def build(topology: Topology, *, hosts: Sequence[str] | None = None,
          subnet: IPv4Network = DEFAULT_SUBNET, sm: str = "embedded",
          capture: str | None = None, prefix: str | None = None,
          run_dir: RunDir | None = None, mtu: int = DEFAULT_MTU,
          ibsim: str | None = None, sm_node: str | None = None,
          partitions: str | None = None, sm_wait: float = 60.0,
          gro: bool = True, tso: bool = True) -> Daemon:
    """The daemon for a run of ``topology``: one host per HCA (or per name in ``hosts``).

    The fabric is simulated in this process with its SM on ``sm_node`` (default: the first
    node): the embedded SM, none, or OpenSM (``sm="opensm"``, files in the run directory's
    ``opensm/``, recorded as a child, "SUBNET UP" awaited for ``sm_wait`` seconds before
    the wait for carrier); ``partitions`` is a partitions.conf for either SM. Each host's
    TUN is wired to an IPoIB device on its HCA's port 1; ``gro`` coalesces what it receives,
    ``tso`` lets its stack leave checksums and TCP segmentation to the device and HCA.
    ``capture`` records every packet crossing the fabric from the start (ERF, Wireshark).
    Each device follows its namespace's routes through netlink (:mod:`.routesync`).
    The fabric also serves the ibsim protocol on the abstract socket base name ``ibsim``
    (default ``$IBSIM_SOCKNAME``, else ``ipoib-<pid>``), shown by the ``status`` command.
    """
    from .ibnet import IbNet

    plans = plan_hosts(topology, names=hosts, subnet=subnet, prefix=prefix)
    sockname = ibsim or os.environ.get("IBSIM_SOCKNAME") or f"ipoib-{os.getpid()}"
    run_dir = run_dir if run_dir is not None else RunDir()
    net = IbNet(topology, sm=sm, ibsim=sockname, sm_node=sm_node, partitions=partitions,
                opensm_dir=run_dir.path / "opensm", sm_wait=sm_wait)
    if capture is not None:
        net.start_capture(capture)
    built = []
    for p in plans:
        dev = net.add_host(p.name, [p.ipv4, p.ipv6])
        built.append(Host(p.name, p.netns, p.ipv4, p.ipv6, mtu, dev, dev.describe, gro=gro,
                          tso=tso))
    def host_of(key: str | None) -> list[str]:
        return d.host_names(key)  # d, made below, before any request can come

    from .routesync import RouteWatcher, Watched

    watcher: list[RouteWatcher] = []

    def follow_routes(loop: asyncio.AbstractEventLoop, runtime: Runtime) -> None:
        w = RouteWatcher([Watched(h.netns, h.tun.ifindex, net.devices[h.name].set_routes)
                          for h in built if h.tun is not None])
        watcher.append(w)
        w.start(loop)

    def close() -> None:
        for w in watcher:
            w.close()
        net.close()

    d = Daemon(built, net.pumpables, net.handlers(host_of), run_dir=run_dir,
               topology=topology.source, starters=[*net.starters, follow_routes],
               closers=[close], info={"ibsim": sockname, "sm": net.sm_view},
               gates=net.gates, summary=net.sm_summary)
    if net.opensm is not None:
        net.opensm.record = d.add_child
    return d
