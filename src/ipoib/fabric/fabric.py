"""The live simulated subnet: nodes built from a :class:`Topology`, packets moving between them.

Packets are ``bytes`` from the first LRH byte to the last pad byte, without ICRC/VCRC. The
forwarding loop (:meth:`Fabric._hop`) reads the DLID by byte peeks (LRH bytes 2-3,
wire-formats.md §1.1), indexes the switch's LFT ``bytearray``, checks the egress port and moves
on. It allocates nothing per hop; CRCs are computed only while a tap is recording. Multicast
fans out through a work queue, never by recursion.

The hot path is a route cache in front of that loop: a data packet (not VL15) leaving a port
toward a unicast DLID takes the route traced by the same rules the first time (``Port.fwd``,
keyed by DLID). The cached route lists the ports of every link crossed and counts what
crosses it; every read of a port's PortXmit/PortRcv counters first adds those counts to the
ports of each route (:meth:`Fabric.settle_counters`), so a reader (the PMA, a test) always
sees each packet on each port it crossed, as if counted hop by hop. A route holds only while
nothing that decides forwarding has changed (a port's state or link, an LFT entry,
LinearFDBTop, a switch's LID, a drop-rate fault: they bump :attr:`Fabric.fwd_gen`, node.py),
and it is bypassed while a tap records, so a capture still sees every hop. A route that would
drop the packet, or end at a switch's management port, is not taken from the cache: those
packets take the loop.

A directed-route SMP (a sweep is made of them) is carried by :meth:`Fabric.transmit_dr`:
the same link crossings and node rules as the loop, taken in one loop on one mutable copy
of the packet, in the order the work queue would give.

Delivery into a receive queue is synchronous; anything that calls user code (completion
callbacks, MAD agent handlers, async events) is deferred to :meth:`Fabric.process`, and
delayed events (MAD delay faults, trap repeats) wait in a heap. The fabric never reads a
clock: ``now`` comes in through :meth:`process` (and the fault calls), and the next deadline
goes out through :meth:`get_timer`. A test harness loop is::

    while (t := fabric.get_timer()) is not None:
        fabric.process(t)
"""

from __future__ import annotations

import heapq
import random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..wire.capture import PcapWriter
from ..wire.crc import append_crcs
from ..wire.enums import NodeType
from . import agents, hca, inbound
from .burst import LsoBurst
from .node import ACTIVE, Ca, Node, Port, Route, Router, Switch, cable, set_enabled
from .topology import NodeSpec, Topology

if TYPE_CHECKING:
    from .hca import Context

MAX_HOPS = 64
"""Switch hops a packet may take before it is dropped as looping (``hop_limit``)."""

MCAST_BASE = 0xC000
PERMISSIVE = 0xFFFF


class Timer:
    """A scheduled callback; :meth:`cancel` keeps it from running."""

    __slots__ = ("fn", "when")

    def __init__(self, when: float, fn: Callable[[], None] | None) -> None:
        self.when = when
        self.fn = fn

    def cancel(self) -> None:
        """Do not run this callback."""
        self.fn = None


class Fabric:
    """A running subnet: switches forwarding by their tables, CAs with verbs, SMAs and PMAs.

    ``seed`` seeds the fabric's own :class:`random.Random`, used only by drop-rate faults.
    """

    MAX_HOPS = MAX_HOPS

    def __init__(self, topology: Topology, *, seed: int = 0) -> None:
        self.topology = topology
        self.now = 0.0
        self.fwd_gen = 0
        """Bumped by every change that can move a packet elsewhere; cached routes of an
        older generation are traced again."""
        self._unsettled: list[Route] = []
        """Routes whose packets are not in their ports' counters yet (settle_counters)."""
        self.rng = random.Random(seed)
        self.nodes: dict[str, Node] = {}
        self.by_guid: dict[int, Node] = {}
        self._work: deque[tuple[Port, bytes, int]] = deque()
        self._pumping = False
        self._walking = False
        self._deferred: deque[Callable[[], None]] = deque()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = 0
        self._tap: PcapWriter | None = None
        self._tap_ports: frozenset[Port] | None = None
        for spec in topology.nodes:
            self._add_node(spec)
        for link in topology.links:
            a = self.nodes[link.a].ports[link.a_port]
            b = self.nodes[link.b].ports[link.b_port]
            for p in (a, b):
                p.width_enabled = link.width
                p.speed_enabled = link.speed
                p.speed_ext_enabled = link.ext_speed
            cable(a, b)

    # --- construction ------------------------------------------------------------------------

    def _add_node(self, spec: NodeSpec) -> None:
        if spec.kind == NodeType.SWITCH:
            guids = [spec.port_guids[0]] * (spec.nports + 1)
        else:
            guids = [spec.node_guid, *spec.port_guids]
            guids += [spec.node_guid + i for i in range(len(guids), spec.nports + 1)]
        kw: dict[str, Any] = {
            "name": spec.name, "guid": spec.node_guid, "sys_guid": spec.sys_guid,
            "nports": spec.nports, "port_guids": guids, "desc": spec.description,
            "vendor_id": spec.vendor_id, "device_id": spec.device_id,
        }
        node: Node
        if spec.kind == NodeType.SWITCH:
            node = Switch(self, enhanced_port0=spec.enhanced_port0, **kw)
        elif spec.kind == NodeType.ROUTER:
            node = Router(self, **kw)
        else:
            node = Ca(self, **kw)
        for pnum, lid in spec.lids.items():
            if 0 <= pnum <= spec.nports:
                node.ports[pnum].lid = lid
                node.lid_changed(node.ports[pnum], 0)
        self.nodes[spec.name] = node
        self.by_guid[spec.node_guid] = node

    def node(self, name: str) -> Node:
        """The node named ``name`` (KeyError if absent)."""
        return self.nodes[name]

    def port(self, name: str, num: int) -> Port:
        """Port ``num`` of node ``name``."""
        return self.nodes[name].port(num)

    @property
    def switches(self) -> list[Switch]:
        """All switches, in topology order."""
        return [n for n in self.nodes.values() if isinstance(n, Switch)]

    @property
    def cas(self) -> list[Ca]:
        """All channel adapters (and routers), in topology order."""
        return [n for n in self.nodes.values() if isinstance(n, Ca)]

    def context(self, name: str) -> Context:
        """Open a verbs :class:`~ipoib.fabric.hca.Context` on the CA ``name``."""
        node = self.nodes[name]
        if not isinstance(node, Ca):
            raise TypeError(f"{name} is not a channel adapter")
        return hca.Context(self, node)

    def open_mad_agent(
        self, name: str, port_num: int, mgmt_class: int, class_version: int = 1,
        handler: Callable[[agents.ReceivedMad], None] | None = None, *,
        requests: bool = False,
    ) -> agents.MadAgent:
        """Register a MAD agent on any node's port (switch port 0 included); see
        :class:`~ipoib.fabric.agents.MadAgent` for ``requests``."""
        return agents.MadAgent(self, self.nodes[name], port_num, mgmt_class, class_version,
                               handler, requests=requests)

    # --- time ----------------------------------------------------------------------------------

    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` from the next :meth:`process` call (never re-entrantly)."""
        self._deferred.append(fn)

    def schedule(self, when: float, fn: Callable[[], None]) -> Timer:
        """Run ``fn`` from the first :meth:`process` call with ``now >= when``."""
        t = Timer(when, fn)
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, t))
        return t

    def get_timer(self) -> float | None:
        """When :meth:`process` next has work: ``now`` if callbacks are pending, else the
        earliest scheduled event, else None."""
        if self._deferred:
            return self.now
        timers = self._timers
        while timers and timers[0][2].fn is None:
            heapq.heappop(timers)
        return timers[0][0] if timers else None

    def process(self, now: float) -> None:
        """Advance the clock to ``now``: run due timers and every deferred callback."""
        self.now = max(self.now, now)
        timers, deferred = self._timers, self._deferred
        while True:
            while timers and timers[0][0] <= self.now:
                t = heapq.heappop(timers)[2]
                fn, t.fn = t.fn, None
                if fn is not None:
                    fn()
            if not deferred:
                break
            while deferred:
                deferred.popleft()()

    def handle_timer(self, now: float) -> None:
        """:meth:`process`, under the name the sans-I/O cores use."""
        self.process(now)

    # --- the forwarding loop ---------------------------------------------------------------------

    def transmit(self, port: Port, pkt: bytes, hops: int = 0) -> None:
        """Send ``pkt`` out of ``port`` (the node's own egress); it is carried to its end
        before this returns, unless a transmit is already in progress (then it queues).

        A data packet to a unicast DLID takes the cached route (:meth:`transmit_list`);
        VL15, multicast and anything sent while a tap records go hop by hop."""
        if self._pumping:
            self._work.append((port, pkt, hops))
            return
        if not (hops or pkt[0] >= 0xF0 or self._tap is not None or pkt[2] >= 0xC0):
            self.transmit_list(port, (pkt,))
            return
        self._pumping = True
        try:
            self._hop(port, pkt, hops)
            work = self._work
            while work:
                self._hop(*work.popleft())
        finally:
            self._pumping = False

    def transmit_list(self, port: Port, pkts: Sequence[bytes]) -> None:
        """Send packets out of ``port`` in order, exactly as one :meth:`transmit` each; a
        data packet to a unicast DLID takes the cached route (the module docstring), looked
        up once for a run of packets to the same DLID (a chain from one address handle),
        and the run is handed to the end port at once (:func:`.inbound.receive_run`)."""
        if self._pumping:
            self._work.extend((port, pkt, 0) for pkt in pkts)
            return
        self._pumping = True
        try:
            work = self._work
            key = -1
            route: Route | None = None
            run: list[bytes] = []
            for pkt in pkts:
                if pkt[0] >= 0xF0 or self._tap is not None or pkt[2] >= 0xC0:
                    if run:
                        self._deliver_run(route, run)
                        run = []
                    self._hop(port, pkt, 0)  # VL15, a tap records, multicast (DLID 0xC000+)
                else:
                    dlid = pkt[2] << 8 | pkt[3]
                    if route is None or dlid != key or route.gen != self.fwd_gen:
                        if run:
                            self._deliver_run(route, run)
                            run = []
                        route = port.fwd.get(dlid)
                        if route is None or route.gen != self.fwd_gen:
                            route = self._trace(port, dlid)
                        key = dlid
                    if route.node is None or route.end is None:
                        self._hop(port, pkt, 0)
                    else:
                        if not route.pkts:
                            self._unsettled.append(route)
                        route.pkts += 1
                        route.words += (len(pkt) >> 2) + 1
                        run.append(pkt)
                        continue
                while work:
                    self._hop(*work.popleft())
            if run:
                self._deliver_run(route, run)
            while work:
                self._hop(*work.popleft())
        finally:
            self._pumping = False

    def transmit_chain(self, port: Port, pkts: list[bytes]) -> None:
        """:meth:`transmit_list` for a chain built from one address handle's header (same
        LRH but for PktLen, every length a multiple of 4): one route lookup, the counters
        added for all, the run handed over at once. Anything the cached route cannot carry
        (no route, a tap, VL15, multicast) takes :meth:`transmit_list`."""
        first = pkts[0] if pkts else b"\xff"
        if self._pumping or self._tap is not None or first[0] >= 0xF0 or first[2] >= 0xC0:
            self.transmit_list(port, pkts)
            return
        dlid = first[2] << 8 | first[3]
        route = port.fwd.get(dlid)
        if route is None or route.gen != self.fwd_gen:
            route = self._trace(port, dlid)
        if route.node is None or route.end is None:
            self.transmit_list(port, pkts)
            return
        self._pumping = True
        try:
            if not route.pkts:
                self._unsettled.append(route)
            route.pkts += len(pkts)
            route.words += (sum(map(len, pkts)) >> 2) + len(pkts)
            self._deliver_run(route, pkts)
        finally:
            self._pumping = False

    def transmit_burst(self, port: Port, burst: LsoBurst) -> bool:
        """Carry an LSO send whole (:mod:`.burst`) over the cached route to its DLID: every
        packet counted on every port crossed, the burst handed to the end port at once.
        False, with nothing done, when its packets must go one by one: a transmit in
        progress, a tap, VL15, multicast, no cached route to an end port."""
        t = burst.template
        dlid = t.dlid
        if self._pumping or self._tap is not None or dlid >= 0xC000 or t.vl == 15:
            return False
        route = port.fwd.get(dlid)
        if route is None or route.gen != self.fwd_gen:
            route = self._trace(port, dlid)
        if route.node is None or route.end is None:
            return False
        self._pumping = True
        try:
            if not route.pkts:
                self._unsettled.append(route)
            route.pkts += burst.count
            route.words += burst.words
            inbound.receive_burst(self, route.node, route.end, burst)
            work = self._work
            while work:
                self._hop(*work.popleft())
        finally:
            self._pumping = False
        return True

    def _deliver_run(self, route: Route | None, run: list[bytes]) -> None:
        """Hand ``run``, carried over ``route``, to the port at its end."""
        assert route is not None and route.node is not None and route.end is not None
        if len(run) == 1:
            inbound.receive(self, route.node, route.end, run[0])
        else:
            inbound.receive_run(self, route.node, route.end, run)
        work = self._work
        while work:
            self._hop(*work.popleft())

    def transmit_dr(self, port: Port, buf: bytearray) -> None:
        """Send a directed-route SMP out of ``port`` exactly as :meth:`transmit` would, carried
        from link to link in one loop on the one mutable ``buf`` (the permissive DR header and
        a whole MAD, else it takes :meth:`transmit`): each link crossed as :meth:`_hop` crosses
        it (counters, faults; written out here again, since a call per link made a sweep
        about 4% slower), each node's part done in place by :func:`.agents.dr_hop`.

        Packets are handled in the order the work queue would give them: the walk goes on
        only while nothing else is queued (behind anything queued it waits its turn, as a
        packet :meth:`transmit` queues), and never inside another walk. While a tap records,
        the SMP goes hop by hop so the capture sees every hop."""
        if self._tap is not None or self._walking or (self._pumping and self._work) \
                or len(buf) != agents.DR_LEN or not buf.startswith(agents.DR_PREFIX):
            self.transmit(port, bytes(buf))
            return
        outer = self._pumping
        self._pumping = self._walking = True
        work = self._work
        words = (len(buf) >> 2) + 1
        try:
            while True:
                peer = port.peer
                if peer is None or not port.up:
                    port.drops["link_down"] += 1
                    break
                port._xmit_pkts += 1
                port._xmit_words += words
                if port.loss and self.rng.random() < port.loss:
                    peer.drops["fault_drop"] += 1
                    break
                peer._rcv_pkts += 1
                peer._rcv_words += words
                node = peer.node
                if isinstance(node, Switch):
                    out = agents.dr_hop(self, node, node.ports[0], buf, peer.num)
                    if out < 0:  # as _hop: the permissive DLID takes it to port 0
                        agents.receive(self, node, node.ports[0], bytes(buf), peer.num)
                        break
                else:
                    out = agents.dr_hop(self, node, peer, buf, peer.num)
                    if out < 0:
                        inbound.receive(self, node, peer, bytes(buf))
                        break
                if not out:
                    break
                port = node.ports[out]
                if work or self._tap is not None:
                    work.append((port, bytes(buf), 0))
                    break
            self._walking = False
            if not outer:
                while work:
                    self._hop(*work.popleft())
        finally:
            self._walking = False
            self._pumping = outer

    def forwarding_changed(self) -> None:
        """Something that decides forwarding changed: every cached route is stale."""
        self.fwd_gen += 1

    def settle_counters(self) -> None:
        """Add the packets that crossed cached routes to their ports' counters (every read
        of a port's traffic counter does this first)."""
        unsettled = self._unsettled
        if unsettled:
            for route in unsettled:
                route.settle()
            unsettled.clear()

    def _trace(self, port: Port, dlid: int) -> Route:
        """The route a data packet to ``dlid`` leaving ``port`` takes now, by the rules of
        :meth:`_hop` (cached in ``port.fwd``). It has no end when the packet would not
        simply cross ACTIVE, fault-free links through LFT hits to an end node."""
        out: list[Port] = []
        into: list[Port] = []
        route = Route(self.fwd_gen)
        egress = port
        for _ in range(MAX_HOPS + 1):
            peer = egress.peer
            if peer is None or not egress.up or egress.loss or egress._state != ACTIVE \
                    or peer._state != ACTIVE:
                break
            out.append(egress)
            into.append(peer)
            node = peer.node
            if not isinstance(node, Switch):
                route = Route(self.fwd_gen, tuple(out), tuple(into), node, peer)
                break
            if dlid > node.top or node.lid_lo <= dlid <= node.lid_hi:
                break
            n = node.lft[dlid]
            if n == 0 or n > node.nports:
                break
            egress = node.ports[n]
        port.fwd[dlid] = route
        return route

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            work = self._work
            while work:
                self._hop(*work.popleft())
        finally:
            self._pumping = False

    def route_from(self, node: Node, pkt: bytes) -> None:
        """Send ``pkt`` from a node's management side: a switch forwards it by its LFT as if
        it had arrived on port 0; a CA sends it out of port 1."""
        if isinstance(node, Switch):
            self.loopback(node.ports[0], pkt)
        else:
            self.transmit(node.ports[1], pkt)

    def loopback(self, port: Port, pkt: bytes) -> None:
        """Hand ``pkt`` to ``port`` from inside its own node (an HCA looping a send to its
        own LID back, a switch's management port): no link, no counters, queued."""
        self._work.append((port, pkt, -1))
        self._pump()

    def inject(self, name: str, port_num: int, pkt: bytes) -> None:
        """Hand raw bytes to a port as if they had arrived from its cable (tests, fuzzing).
        Bad bytes are counted, never raised."""
        port = self.nodes[name].ports[port_num]
        port._rcv_pkts += 1
        port._rcv_words += (len(pkt) >> 2) + 1
        self._work.append((port, bytes(pkt), -1))
        self._pump()

    def _hop(self, port: Port, pkt: bytes, hops: int) -> None:
        """Carry ``pkt`` out of ``port`` and on through switches until it is delivered,
        dropped or fanned out. The common case (a unicast LFT hit) loops here."""
        if hops < 0:  # an injected packet: it arrives at ``port`` rather than leaving it
            self._arrive(port, pkt)
            return
        while True:
            peer = port.peer
            if peer is None or not port.up:
                port.drops["link_down"] += 1
                return
            # the state slots read directly: the property is for writers (node.py)
            if pkt[0] < 0xF0 and (port._state != ACTIVE or peer._state != ACTIVE):
                port.drops["port_not_active"] += 1
                return
            words = (len(pkt) >> 2) + 1
            port._xmit_pkts += 1
            port._xmit_words += words
            if self._tap is not None and (self._tap_ports is None or port in self._tap_ports):
                self._tap.write_ib(self.now, append_crcs(pkt))
            if port.loss and self.rng.random() < port.loss:
                peer.drops["fault_drop"] += 1
                return
            peer._rcv_pkts += 1
            peer._rcv_words += words
            node = peer.node
            if not isinstance(node, Switch):
                inbound.receive(self, node, peer, pkt)
                return
            hops += 1
            if hops > MAX_HOPS:
                peer.drops["hop_limit"] += 1
                return
            dlid = pkt[2] << 8 | pkt[3]
            out = node.lft[dlid] if dlid <= node.top else 0
            if out == 0 or out > node.nports or node.lid_lo <= dlid <= node.lid_hi:
                nxt = self._switch(node, peer, pkt, hops)
                if nxt is None:
                    return
                port = nxt
            else:
                port = node.ports[out]

    def _arrive(self, port: Port, pkt: bytes) -> None:
        node = port.node
        if not isinstance(node, Switch):
            inbound.receive(self, node, port, pkt)
        elif len(pkt) < 8:
            port.drops["malformed"] += 1
        else:
            nxt = self._switch(node, port, pkt, 0)
            if nxt is not None:
                self._work.append((nxt, pkt, 0))

    def _switch(self, sw: Switch, inp: Port, pkt: bytes, hops: int) -> Port | None:
        """The slow half of a switch hop: its own LIDs, the permissive DLID, multicast, LFT
        misses. Returns the egress port when the packet goes on as unicast."""
        dlid = pkt[2] << 8 | pkt[3]
        if dlid == PERMISSIVE:
            if pkt[0] >= 0xF0:  # a directed-route SMP: the switch's SMI decides
                agents.receive(self, sw, sw.ports[0], pkt, inp.num)
            else:
                inp.drops["bad_dlid"] += 1
            return None
        if dlid >= MCAST_BASE:
            self._multicast(sw, inp, pkt, dlid, hops)
            return None
        if dlid == 0:
            inp.drops["bad_dlid"] += 1
            return None
        if sw.lid_lo <= dlid <= sw.lid_hi:
            agents.receive(self, sw, sw.ports[0], pkt, inp.num)
            return None
        if dlid > sw.top:
            inp.drops["lid_beyond_top"] += 1
            return None
        out = sw.lft[dlid]
        if out == 0:
            agents.receive(self, sw, sw.ports[0], pkt, inp.num)
            return None
        if out > sw.nports:
            inp.drops["no_route"] += 1
            return None
        return sw.ports[out]

    def _multicast(self, sw: Switch, inp: Port, pkt: bytes, mlid: int, hops: int) -> None:
        """Replicate to every port in the MFT mask except the ingress port (IBA 18.2.4.3.2);
        the management port (bit 0) takes no multicast, MADs are never multicast."""
        idx = mlid - MCAST_BASE
        mask = sw.mft[idx] if idx < len(sw.mft) else 0
        mask &= ~(1 << inp.num) & ~1
        if not mask:
            inp.drops["mcast_no_route"] += 1
            return
        ports, nports, work = sw.ports, sw.nports, self._work
        while mask:
            low = mask & -mask
            n = low.bit_length() - 1
            mask ^= low
            if n <= nports:
                p = ports[n]
                p.xmit_mcast += 1
                work.append((p, pkt, hops))
        self._pump()

    # --- capture -------------------------------------------------------------------------------

    def capture(self, writer: PcapWriter, ports: Iterable[tuple[str, int]] | None = None) -> None:
        """Record every packet leaving the chosen ``(node, port)`` egress points (all ports
        when None) to ``writer`` (an ERF :class:`~ipoib.wire.capture.PcapWriter`), with
        ICRC and VCRC appended and the fabric's ``now`` as timestamp."""
        self._tap = writer
        self._tap_ports = None if ports is None else frozenset(
            self.nodes[n].ports[p] for n, p in ports)

    def stop_capture(self) -> None:
        """Stop recording."""
        self._tap = None
        self._tap_ports = None

    # --- faults ----------------------------------------------------------------------------------

    def _advance(self, now: float | None) -> None:
        if now is not None and now > self.now:
            self.now = now

    def link_down(self, name: str, port_num: int, now: float | None = None) -> None:
        """Take the link at ``(name, port_num)`` down: both ends go to DOWN / Polling."""
        self._advance(now)
        set_enabled(self.nodes[name].ports[port_num], False)

    def link_up(self, name: str, port_num: int, now: float | None = None) -> None:
        """Bring the link back: both ends train to INIT (the SM must activate them again)."""
        self._advance(now)
        set_enabled(self.nodes[name].ports[port_num], True)

    def set_drop_rate(self, name: str, port_num: int, probability: float) -> None:
        """Lose packets leaving ``(name, port_num)`` with ``probability`` (seeded RNG);
        the receiving port counts them as ``fault_drop`` (PortRcvErrors)."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability {probability} is not in [0, 1]")
        self.nodes[name].ports[port_num].loss = probability
        self.forwarding_changed()

    def set_mad_delay(self, name: str, seconds: float) -> None:
        """Delay every MAD the node's SMA/PMA answers by ``seconds``."""
        if seconds < 0:
            raise ValueError("a delay cannot be negative")
        self.nodes[name].mad_delay = seconds

    def set_issm(self, name: str, port_num: int, on: bool = True) -> None:
        """Set or clear PortInfo.CapabilityMask.IsSM, as an SM does when it starts."""
        agents.set_issm(self.nodes[name].port(port_num), on)

    # --- traps -----------------------------------------------------------------------------------

    def trap_port_state_change(self, sw: Switch) -> None:
        """Send Trap 128 from ``sw`` to its master SM, if one has programmed it."""
        agents.send_trap_128(self, sw)

    # --- inspection ------------------------------------------------------------------------------

    def drops(self) -> Counter[str]:
        """Every drop in the fabric, by reason."""
        total: Counter[str] = Counter()
        for n in self.nodes.values():
            total.update(n.all_drops())
        return +total

    def lid_owner(self, lid: int) -> Port | None:
        """The port answering to ``lid`` (a CA port or a switch's port 0), if any."""
        for n in self.nodes.values():
            for p in n.ports:
                if p.owns_lid(lid) and (p.num != 0 or n.is_switch):
                    return p
        return None
