"""Nodes and ports of the simulated subnet, and the port state machine (IBA 7.2, 14.2.5.6).

A :class:`Port` holds everything an SMA reports in PortInfo plus the counters the data path
increments; the fields the forwarding loop reads on every hop (``peer``, ``up``, ``state``,
``loss``, the counters) are plain slotted attributes so a hop is a handful of attribute
reads. A :class:`Switch` adds the forwarding tables as flat arrays indexed by LID: the LFT is
a ``bytearray`` (0xFF = no route) and the MFT a list of port masks indexed by MLID - 0xC000.

The state machine has two drivers, as on hardware:

- **the link** (cable, faults): both ends physically up gives PhysState LinkUp and logical
  state INIT; a link going down gives Polling and DOWN on both ends;
- **the SM** (PortInfo Set): INIT -> ARMED -> ACTIVE, checked by :func:`request_state`
  with ibsim's rule (ibsim-protocol.md §10) so OpenSM sees the same answers.

Every change is reported to the node's :meth:`Node.port_changed` hook, which switches use for
SwitchInfo.PortStateChange and Trap 128, and CAs for their asynchronous events.

The fabric caches where a data packet goes (:meth:`Fabric.transmit`); anything that can change
that calls the fabric's ``forwarding_changed`` hook: a port's state (a property, so that a
direct write counts too), cabling and link training (:func:`cable`, :func:`set_enabled`), a
switch's LFT (an :class:`Lft`, whose writes report themselves), LinearFDBTop and its own LIDs.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..wire.enums import NodeType, PhysState, PortState
from .lft import Lft

if TYPE_CHECKING:
    from collections.abc import Callable

DOWN, INIT, ARMED, ACTIVE = (int(PortState.DOWN), int(PortState.INIT), int(PortState.ARMED),
                             int(PortState.ACTIVE))
LINK_UP, POLLING, DISABLED = int(PhysState.LINK_UP), int(PhysState.POLLING), int(PhysState.DISABLED)

NO_ROUTE = 0xFF
"""LFT entry meaning "no route" (IBA 14.2.5.10)."""
LFT_SIZE = 0xC000
"""LFT entries kept: every unicast LID, i.e. blocks 0..767 (ibsim rejects blocks above 767)."""
LINEAR_FDB_CAP = 0x7800
"""SwitchInfo.LinearFDBCap reported, as ibsim 0.10 (30720)."""
MCAST_CAP = 1024
"""SwitchInfo.MulticastFDBCap: MLIDs 0xC000..0xC3FF (ibsim)."""
PARTITION_CAP_CA = 64
PARTITION_CAP_SW0 = 8
PARTITION_ENFORCEMENT_CAP = 64
DEFAULT_SL2VL = bytes.fromhex("0123456789abcde7")
"""ibsim's default SLtoVLMappingTable (ibsim-protocol.md §10)."""

CAP_IS_SM = 0x0000_0002
"""PortInfo.CapabilityMask bit 1, IsSM."""
CAP_MASK_CA = 0x0050_C048
"""CapabilityMask of a CA port in ibsim 0.10."""
CAP_MASK_SW0 = 0x0000_C048
"""CapabilityMask of switch port 0 in ibsim (``smaport`` template)."""

PORT_TEMPLATE: dict[str, int] = {
    "mkey_lease_period": 0xFF9, "link_down_default_state": 2, "vl_stall_count": 7,
    "guid_cap": 32, "vl_arbitration_high_cap": 8, "vl_arbitration_low_cap": 8,
}
"""PortInfo fields with no behaviour here, at ibsim 0.10's ``hcaport`` template values; an SM
Set overwrites them (PortInfo keeps every field an SM writes)."""

DROP_REASONS = frozenset({
    # forwarding (counted at the port named)
    "link_down",          # egress port not physically up, or not cabled
    "port_not_active",    # a data (non-VL15) packet at a port, or to a peer, not ACTIVE
    "fault_drop",         # set_drop_rate() loss (counted at the receiving port)
    "no_route",           # LFT entry 0xFF or an invalid port (ingress port of the switch)
    "lid_beyond_top",     # DLID above SwitchInfo.LinearFDBTop
    "hop_limit",          # more switch hops than Fabric.MAX_HOPS: a routing loop
    "mcast_no_route",     # MLID outside the MFT, or an empty port mask
    "bad_dlid",           # DLID 0, or the permissive LID on a data packet
    "malformed",          # not a well-formed packet (too short, bad headers)
    # end nodes
    "not_for_us",         # DLID is not one of the port's LIDs
    "vl15_not_qp0",       # VL15 packet to a QP other than QP0 (hardware drops it)
    "qp0_not_vl15",       # QP0 packet on a data VL
    "bad_qkey",           # Q_Key mismatch (PortInfo.Q_KeyViolations also counts)
    "bad_pkey",           # P_Key not in the port's table (PortInfo.P_KeyViolations also)
    "no_qp",              # no such QP, or QP not ready to receive
    "no_recv_wr",         # no receive posted (real HCAs drop silently)
    "recv_too_small",     # posted receive buffer smaller than GRH + payload
    "cq_overflow",        # the receive CQ was full: the completion is lost
    "mtu_exceeded",       # payload larger than the port's active MTU
    "no_mcast_member",    # multicast packet for a group no QP on the port attached
    "mcast_loopback",     # multicast from this very QP (not delivered back to the sender)
    # management (MAD layer, SMA)
    "dr_discard",         # directed-route rules (C14-9, C14-13) say discard
    "bad_mad",            # not a MAD: too short, bad BaseVersion, class on the wrong QP
    "no_agent",           # a request no agent or built-in agent takes (and no reply sent)
    "unmatched_response", # a response whose TID matches no agent
    "mkey_violation",     # SMP with a wrong M_Key (PortInfo.M_KeyViolations also counts)
})
"""The reason strings drop counters use (docs/conventions.md, "Drops")."""


class FabricHooks(Protocol):
    """What a node needs from its fabric (the Fabric, or a stand-in in unit tests)."""

    now: float

    def defer(self, fn: Callable[[], None]) -> None: ...
    def trap_port_state_change(self, sw: Switch) -> None: ...
    def forwarding_changed(self) -> None: ...
    def settle_counters(self) -> None: ...


class Route:
    """A cached unicast route out of a port (``Port.fwd``, traced by the fabric): the
    forwarding generation it was traced in, the egress and the ingress ports of every link
    crossed, and the end node and port (None when the packet does not simply reach an end
    node: a drop, a switch's own LID, a fault on the way).

    ``pkts`` and ``words`` are what crossed the route since the fabric last settled its
    counters: each packet adds to them once instead of to eight port counters, and every
    read of a port's traffic counter settles them first (:meth:`Port.xmit_pkts`), so a read
    always sees each packet on each port it crossed."""

    __slots__ = ("end", "gen", "into", "node", "out", "pkts", "words")

    def __init__(self, gen: int, out: tuple[Port, ...] = (), into: tuple[Port, ...] = (),
                 node: Node | None = None, end: Port | None = None) -> None:
        self.gen = gen
        self.out = out
        self.into = into
        self.node = node
        self.end = end
        self.pkts = 0
        self.words = 0

    def settle(self) -> None:
        """Add what crossed the route to its ports' counters."""
        pkts, words = self.pkts, self.words
        for p in self.out:
            p._xmit_pkts += pkts
            p._xmit_words += words
        for p in self.into:
            p._rcv_pkts += pkts
            p._rcv_words += words
        self.pkts = self.words = 0


class Port:
    """One port: link and logical state, PortInfo fields, P_Key table, counters, drops."""

    __slots__ = (
        "_rcv_pkts", "_rcv_words", "_state", "_xmit_pkts", "_xmit_words", "cap_mask", "cap_mask2",
        "drops", "enabled", "extra", "fwd", "gid_prefix", "guid", "hoq_life", "lid", "link_downed",
        "lmc", "loss", "master_sm_lid", "master_sm_sl", "mkey", "mkey_lease", "mkey_protect",
        "mkey_violations", "mtu_cap", "neighbor_mtu", "node", "num", "op_vls", "pc_base", "peer",
        "phys", "pkey_violations", "pkeys", "qkey_violations", "rcv_mcast", "resp_time", "sl2vl",
        "speed_active", "speed_enabled", "speed_ext_active", "speed_ext_enabled",
        "speed_ext_supported", "speed_supported", "subnet_timeout", "up", "vl_cap", "vlarb",
        "width_active", "width_enabled", "width_supported", "xmit_mcast",
    )

    def __init__(self, node: Node, num: int, guid: int) -> None:
        self.node = node
        self.num = num
        self.guid = guid
        self.fwd: dict[int, Route] = {}
        """DLID -> the cached route of a data packet leaving this port (see fabric.py)."""
        self.peer: Port | None = None
        self.enabled = True
        self.up = False
        self.phys = POLLING
        self.state = DOWN
        self.loss = 0.0
        self.lid = 0
        self.lmc = 0
        self.master_sm_lid = 0
        self.master_sm_sl = 0
        self.gid_prefix = 0xFE80_0000_0000_0000
        self.mkey = 0
        self.mkey_lease = 0
        self.mkey_protect = 0
        self.cap_mask = CAP_MASK_CA
        self.cap_mask2 = 0x0030
        self.mtu_cap = 4
        self.neighbor_mtu = 4
        self.vl_cap = 4
        self.op_vls = 4
        self.hoq_life = 0
        self.subnet_timeout = 31
        self.resp_time = 0
        self.width_enabled = 2
        self.width_supported = 0x1F
        self.width_active = 2
        self.speed_supported = 7
        self.speed_enabled = 1
        self.speed_active = 1
        self.speed_ext_supported = 0
        self.speed_ext_enabled = 0
        self.speed_ext_active = 0
        self.mkey_violations = 0
        self.pkey_violations = 0
        self.qkey_violations = 0
        self.extra: dict[str, int] = dict(PORT_TEMPLATE)
        self.pkeys = [0xFFFF] + [0] * (PARTITION_CAP_CA - 1)
        self.sl2vl: dict[int, bytes] = {}
        self.vlarb = [bytes(64)] * 4
        self._xmit_pkts = 0
        self._xmit_words = 0
        self._rcv_pkts = 0
        self._rcv_words = 0
        self.xmit_mcast = 0
        self.rcv_mcast = 0
        self.link_downed = 0
        self.pc_base: dict[str, int] = {}
        self.drops: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<Port {self.node.name}/{self.num} lid={self.lid} state={self.state}>"

    # PortXmitPkts/Data and PortRcvPkts/Data (IBA 16.1.3.5) as running totals. The
    # hop-by-hop loop adds to the underscored slots directly; cached routes add in bulk
    # (Route.settle), so reading settles first and writing settles before it sets.

    @property
    def xmit_pkts(self) -> int:
        """Packets sent out of this port."""
        self.node.fabric.settle_counters()
        return self._xmit_pkts

    @xmit_pkts.setter
    def xmit_pkts(self, value: int) -> None:
        self.node.fabric.settle_counters()
        self._xmit_pkts = value

    @property
    def xmit_words(self) -> int:
        """4-byte words sent out of this port (packet length + ICRC, as hardware counts)."""
        self.node.fabric.settle_counters()
        return self._xmit_words

    @xmit_words.setter
    def xmit_words(self, value: int) -> None:
        self.node.fabric.settle_counters()
        self._xmit_words = value

    @property
    def rcv_pkts(self) -> int:
        """Packets received on this port."""
        self.node.fabric.settle_counters()
        return self._rcv_pkts

    @rcv_pkts.setter
    def rcv_pkts(self, value: int) -> None:
        self.node.fabric.settle_counters()
        self._rcv_pkts = value

    @property
    def rcv_words(self) -> int:
        """4-byte words received on this port."""
        self.node.fabric.settle_counters()
        return self._rcv_words

    @rcv_words.setter
    def rcv_words(self, value: int) -> None:
        self.node.fabric.settle_counters()
        self._rcv_words = value

    @property
    def state(self) -> int:
        """PortInfo.PortState (DOWN, INIT, ARMED, ACTIVE)."""
        return self._state

    @state.setter
    def state(self, value: int) -> None:
        self._state = value
        self.node.fabric.forwarding_changed()

    @property
    def active_mtu(self) -> int:
        """The MTU code in use: the smaller of MTUCap and NeighborMTU."""
        return min(self.mtu_cap, self.neighbor_mtu)

    def owns_lid(self, lid: int) -> bool:
        """True when ``lid`` is one of the 2^LMC LIDs of this port."""
        return self.lid != 0 and self.lid <= lid < self.lid + (1 << self.lmc)

    def pkey_index(self, pkey: int) -> int | None:
        """Index of the table entry matching ``pkey`` by IBA 10.9.3 rules, or None.

        Base P_Keys (low 15 bits) must be equal and at least one side a full member;
        0 entries are invalid and never match.
        """
        base = pkey & 0x7FFF
        if base == 0:
            return None
        for i, entry in enumerate(self.pkeys):
            if entry & 0x7FFF == base and (entry | pkey) & 0x8000:
                return i
        return None


class Node:
    """A node: identity (NodeInfo, NodeDescription), ports and the hooks SMA and PMA use."""

    kind: ClassVar[NodeType] = NodeType.CA
    is_switch: ClassVar[bool] = False
    """True for a switch (port 0 is then its management port): a class attribute, read on
    every hop and SMA answer."""

    def __init__(
        self, fabric: FabricHooks, *, name: str, guid: int, sys_guid: int, nports: int,
        port_guids: list[int], desc: str = "", vendor_id: int = 0, device_id: int = 0,
        revision: int = 0xA1, enhanced_port0: bool = False,
    ) -> None:
        self.fabric = fabric
        self.name = name
        self.guid = guid
        self.sys_guid = sys_guid
        self.desc = desc or name
        self.vendor_id = vendor_id
        self.device_id = device_id
        self.revision = revision
        self.nports = nports
        self.ports = [Port(self, i, port_guids[i]) for i in range(nports + 1)]
        """Indexed by port number; a CA's ``ports[0]`` is a never-cabled placeholder."""
        self.drops: Counter[str] = Counter()
        self.agents: dict[tuple[int, int], Any] = {}
        """(port, management class) -> the MadAgent serving requests there (agents.py)."""
        self.agent_ids: dict[int, Any] = {}
        """Agent id (the high 32 bits of the TIDs it sends) -> MadAgent."""
        self.next_agent_id = 1
        self.mad_delay = 0.0
        self.next_tid = 1
        self.traps: dict[int, Any] = {}
        """TID -> a pending trap, repeated until the SM answers with TrapRepress."""
        self._setup(enhanced_port0)

    def _setup(self, enhanced_port0: bool) -> None:
        """The kind's own state, set up last (``enhanced_port0``: a switch's SwitchInfo bit).
        A hook rather than ``__init__`` overrides, which would forward every keyword."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} guid={self.guid:#x}>"


    @property
    def partition_cap(self) -> int:
        """NodeInfo.PartitionCap: P_Key entries on a CA port or switch port 0."""
        return PARTITION_CAP_CA

    def port(self, num: int) -> Port:
        """Port ``num`` (IndexError if the node has no such port)."""
        if not 0 <= num <= self.nports or (num == 0 and not self.is_switch):
            raise IndexError(f"{self.name} has no port {num}")
        return self.ports[num]

    def all_drops(self) -> Counter[str]:
        """Node-level drops plus every port's drops."""
        total = Counter(self.drops)
        for p in self.ports:
            total.update(p.drops)
        return total

    def alloc_tid(self) -> int:
        """A fresh 64-bit TransactionID for a MAD this node originates (traps)."""
        tid = self.next_tid
        self.next_tid += 1
        return tid

    def port_changed(self, port: Port, old_state: int, *, by_sm: bool) -> None:
        """Called after ``port``'s logical state changed; subclasses react."""

    def lid_changed(self, port: Port, old_lid: int) -> None:
        """Called after the SM changed a port's LID or LMC."""


class Switch(Node):
    """A switch: port 0 is the management port; forwards by LFT and MFT."""

    kind = NodeType.SWITCH
    is_switch = True

    def _setup(self, enhanced_port0: bool) -> None:
        fabric = self.fabric
        self.lft = Lft(fabric, LFT_SIZE)
        self._top = 0
        self.mft = [0] * MCAST_CAP
        """Port masks indexed by MLID - 0xC000; bit n = port n."""
        self.mcast_top = 0
        self.lifetime = 0
        self.port_state_change = False
        self.enhanced_port0 = enhanced_port0
        self.lid_lo = 1
        self.lid_hi = 0
        """The LIDs of port 0 as an inclusive range (empty while the LID is 0)."""
        p0 = self.ports[0]
        p0.cap_mask = CAP_MASK_SW0
        p0.pkeys = [0xFFFF] + [0] * (PARTITION_CAP_SW0 - 1)
        p0.up, p0.phys, p0.state = True, LINK_UP, ACTIVE
        # ibsim's ``smaport`` template (ibsim-protocol.md §10)
        p0.mtu_cap, p0.neighbor_mtu, p0.op_vls, p0.hoq_life, p0.resp_time = 3, 1, 4, 0, 8
        p0.extra.update(vl_stall_count=0, guid_cap=1)
        for p in self.ports[1:]:
            p.cap_mask = 0
            p.cap_mask2 = 0
            p.gid_prefix = 0
            p.subnet_timeout = 0
            p.extra.update(mkey_lease_period=0, guid_cap=0)
            p.pkeys = [0xFFFF] + [0] * (PARTITION_ENFORCEMENT_CAP - 1)

    @property
    def partition_cap(self) -> int:
        """Switch port 0 has 8 P_Key entries (ibsim)."""
        return PARTITION_CAP_SW0

    @property
    def lid(self) -> int:
        """The switch's LID (port 0's)."""
        return self.ports[0].lid

    @property
    def top(self) -> int:
        """SwitchInfo.LinearFDBTop: DLIDs above it are dropped."""
        return self._top

    @top.setter
    def top(self, value: int) -> None:
        self._top = value
        self.fabric.forwarding_changed()

    def lid_changed(self, port: Port, old_lid: int) -> None:
        """Keep the own-LID range the forwarding loop checks in step with port 0."""
        p0 = self.ports[0]
        if p0.lid:
            self.lid_lo, self.lid_hi = p0.lid, p0.lid + (1 << p0.lmc) - 1
        else:
            self.lid_lo, self.lid_hi = 1, 0
        self.fabric.forwarding_changed()

    def port_changed(self, port: Port, old_state: int, *, by_sm: bool) -> None:
        """A link-driven change of an external port sets PortStateChange (IBA 14.2.5.4) and
        raises Trap 128; a state the SM itself set on this port does not (as ibsim)."""
        if by_sm or port.num == 0:
            return
        self.port_state_change = True
        self.fabric.trap_port_state_change(self)


class Ca(Node):
    """A channel adapter (an HCA). The verbs objects live in hca.py; the SMA sees this."""

    kind = NodeType.CA

    def _setup(self, enhanced_port0: bool) -> None:
        self.qps: dict[int, Any] = {}
        """QPN -> QP (hca.py), QP0 and QP1 excluded."""
        self.mcast: list[dict[int, list[Any]]] = [{} for _ in self.ports]
        """Per port: MLID -> QPs attached (hca.QP.attach_mcast)."""
        self.contexts: list[Any] = []
        """Open verbs contexts, told about port events."""
        self.next_qpn = 0x48

    def port_changed(self, port: Port, old_state: int, *, by_sm: bool) -> None:
        """Tell open verbs contexts (PORT_ACTIVE / PORT_ERR), like an HCA's async events."""
        if port.state == ACTIVE and old_state != ACTIVE:
            self.async_event(port, "PORT_ACTIVE")
        elif old_state == ACTIVE and port.state != ACTIVE:
            self.async_event(port, "PORT_ERR")

    def lid_changed(self, port: Port, old_lid: int) -> None:
        """LID_CHANGE async event."""
        self.async_event(port, "LID_CHANGE")

    def async_event(self, port: Port, event: str) -> None:
        """Queue ``event`` for every open context (delivered deferred, see hca.Context)."""
        for ctx in self.contexts:
            ctx.post_async_event(port.num, event)


class Router(Ca):
    """A router node: answers its SMA like a CA; it does not route (not simulated)."""

    kind = NodeType.ROUTER


# --- the port state machine ------------------------------------------------------------------


def _set_state(port: Port, state: int, *, by_sm: bool) -> None:
    old = port.state
    if old != state:
        port.state = state
        port.node.port_changed(port, old, by_sm=by_sm)


def cable(a: Port, b: Port) -> None:
    """Connect two ports; the link trains at once if both ends are enabled."""
    a.peer, b.peer = b, a
    _retrain(a)


def _retrain(a: Port) -> None:
    b = a.peer
    if b is not None and a.enabled and b.enabled:
        for p in (a, b):
            p.phys, p.up = LINK_UP, True
            if p.state == DOWN:
                _set_state(p, INIT, by_sm=False)
        settle_width_speed(a, b)
    else:
        for p in (a, b) if b is not None else (a,):
            was_up = p.up
            p.phys = POLLING if p.enabled else DISABLED
            p.up = False
            if was_up:
                p.link_downed += 1
            _set_state(p, DOWN, by_sm=False)
    a.node.fabric.forwarding_changed()


def settle_width_speed(a: Port, b: Port) -> None:
    """Active width/speed: the highest bit both ends enable (ibsim-protocol.md §14)."""
    w = a.width_enabled & b.width_enabled & a.width_supported & b.width_supported
    s = a.speed_enabled & b.speed_enabled & a.speed_supported & b.speed_supported
    e = a.speed_ext_enabled & b.speed_ext_enabled
    for p in (a, b):
        p.width_active = 1 << (w.bit_length() - 1) if w else p.width_active
        p.speed_active = 1 << (s.bit_length() - 1) if s else p.speed_active
        p.speed_ext_active = 1 << (e.bit_length() - 1) if e else 0


def set_enabled(port: Port, enabled: bool) -> None:
    """Enable or disable a port (a fault, or PhysState Disabled): the link retrains or drops."""
    port.enabled = enabled
    _retrain(port)


def check_state(port: Port, new: int) -> bool:
    """Whether an SM's PortInfo.PortState request is valid (False means status 0x001C).

    ibsim's rule (``do_portinfo``): NOP (0) is always fine; DOWN and INIT are fine on a
    linked port; ARMED or ACTIVE only one step from the current state and at most one step
    from the neighbour's; anything above DOWN on an unlinked port is invalid. Switch port 0
    accepts any state and stays ACTIVE.
    """
    if new == 0 or (port.num == 0 and port.node.is_switch):
        return 0 <= new <= ACTIVE
    peer = port.peer
    if not port.up or peer is None:
        return new <= DOWN
    if new in (DOWN, INIT):
        return True
    if new in (ARMED, ACTIVE):
        return abs(peer._state - new) <= 1 and abs(port._state - new) == 1
    return False


def request_state(port: Port, new: int) -> bool:
    """Apply an SM's PortState request if :func:`check_state` allows it.

    DOWN on a linked port retrains the link: both ends come back in INIT and the neighbour
    sees a link-driven change (a neighbouring switch sets PortStateChange). INIT on a linked
    port changes nothing; ARMED and ACTIVE move this port only.
    """
    if not check_state(port, new):
        return False
    peer = port.peer
    if new in (0, INIT) or (port.num == 0 and port.node.is_switch) or peer is None \
            or not port.up:
        return True
    if new == DOWN:
        _set_state(port, INIT, by_sm=True)
        _set_state(peer, INIT, by_sm=False)
        return True
    _set_state(port, new, by_sm=True)
    return True
