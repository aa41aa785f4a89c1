"""The state and control plane of an IPoIB interface: bring-up, actions, SA, events.

:class:`DeviceControl` is the half of :class:`~ipoib.netdev.device.IpoibDevice` that does not
run per packet: it owns the verbs objects (PD, CQs, the UD QP and its receive ring), the
sans-I/O tables (neighbours, paths, multicast groups, the SA client) and carries out what
they return (:meth:`DeviceControl.run`); it turns SA answers into table calls and HCA async
events into flushes. The data path (transmit, receive, the pump) is in :mod:`.device`.

**Bring-up** (linux-ipoib.md §6): :meth:`~DeviceControl.open` finds the P_Key index (an
absent P_Key leaves the interface dark until a PKEY_CHANGE brings it), moves the QP RESET →
INIT → RTR → RTS with Q_Key 0, posts the receive ring, opens the SA agent on QP1 and starts
the join task once the port is ACTIVE. The broadcast group's answer sets the Q_Key (in place,
RTS → RTS, as Linux does it), the MTU, and raises the carrier.

**Events** (linux-ipoib.md §6): CLIENT_REREGISTER, SM_CHANGE and GID_CHANGE are LIGHT flushes
(AHs invalid and re-queried lazily, groups left and joined again); PORT_ACTIVE, PORT_ERR and
LID_CHANGE are NORMAL (paths flushed, the broadcast group joined again, carrier off until
then); PKEY_CHANGE is HEAVY when our P_Key's index changed (the QP restarts). Events that
arrive together are folded into one flush of the highest level. Traffic resumes by itself:
the next packet to a neighbour re-queries its path.

**Completions**: sends are signalled every ``signal_every`` posts, and every post while the
AH reaper waits for one; a UD send queue completes in order, so a completion tells the reaper
every earlier send is done (Linux ``tx_tail``). An AH freed after an unsignalled send waits for
the next signalled completion.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address, IPv6Interface
from typing import NamedTuple

from ..fabric import hca
from ..fabric.agents import MadAgent, ReceivedMad
from ..fabric.hca import QP, AsyncEvent, Context, QPAttr, QPState, SendWR, VerbsError
from ..wire.enums import PortState
from ..wire.ib import GRH_SIZE, MULTICAST_QPN
from ..wire.ipoib import (
    ENCAP_ARP,
    ENCAP_IPV4,
    ENCAP_IPV6,
    EtherType,
    HwAddr,
    broadcast_hwaddr,
    link_local_address,
)
from ..wire.mad import SA_CLASS_VERSION, MgmtClass
from ..wire.offload import TsoSegments
from . import actions as act
from .actions import Ah
from .counters import Counters
from .groups import Membership
from .madclient import SaClient, SaClientConfig
from .mcast import Group, McastConfig, McastTable
from .neigh import Neigh, NeighConfig, NeighTable
from .path import AhReaper, PathCache
from .resolve import Addressing, Resolver, Route, parse_interface

__all__ = ["FLUSH_LEVELS", "HEAVY", "LIGHT", "NORMAL", "RECV_LEN", "DeviceConfig",
           "DeviceControl", "Tx"]

LIGHT, NORMAL, HEAVY = 1, 2, 3
FLUSH_LEVELS: dict[str, int] = {
    "CLIENT_REREGISTER": LIGHT, "SM_CHANGE": LIGHT, "GID_CHANGE": LIGHT,
    "PORT_ACTIVE": NORMAL, "PORT_ERR": NORMAL, "LID_CHANGE": NORMAL, "PKEY_CHANGE": HEAVY,
}
"""Async event → flush level (Linux ``ipoib_event``; SM_CHANGE as the 4.x kernels)."""

RECV_LEN = GRH_SIZE + 4096
"""A receive buffer: the 40-byte GRH area and the largest IB MTU."""

HDR: dict[int, bytes] = {
    EtherType.IPV4: ENCAP_IPV4, EtherType.IPV6: ENCAP_IPV6, EtherType.ARP: ENCAP_ARP,
}
"""The 4-byte IPoIB header of each EtherType the driver sends."""
SIGNALED = int(hca.SendFlags.SIGNALED)


def _neigh_config() -> NeighConfig:
    return NeighConfig(gc_thresh1=0)


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """Interface parameters; the defaults are Linux's (linux-ipoib.md §4).

    The neighbour table plays both Linux tables, the kernel's ARP/ND cache and IPoIB's own
    neighbour list, whose reaper frees every entry idle for 60 s whatever the table's size:
    so ``gc_thresh1`` defaults to 0 here, and gc_thresh2/3 (512/1024) still bound the table.
    """

    name: str = "ib0"
    neigh: NeighConfig = field(default_factory=_neigh_config)
    mcast: McastConfig = field(default_factory=McastConfig)
    sa: SaClientConfig = field(default_factory=SaClientConfig)
    path_queue_len: int = 3
    max_paths: int = 4096
    send_queue_size: int = 128
    recv_queue_size: int = 256
    signal_every: int = 16
    ah_reap_interval: float = 1.0
    link_local: bool = True

    def __post_init__(self) -> None:
        if self.signal_every < 1 or self.signal_every & (self.signal_every - 1):
            raise ValueError("signal_every must be a power of two")
        if self.recv_queue_size < 1 or self.send_queue_size < 1:
            raise ValueError("queue sizes must be positive")


class _PathCookie(NamedTuple):
    dgid: bytes
    seq: int


class _JoinCookie(NamedTuple):
    mgid: bytes
    seq: int


class _LeaveCookie(NamedTuple):
    mgid: bytes


Tx = tuple[SendWR, int, Ah]
"""A prebuilt send: the addressed work request, the largest IP packet it may carry, the AH."""


class DeviceControl:
    """Interface state and everything but the per-packet path (see the module docstring)."""

    def __init__(self, ctx: Context, port_num: int = 1, *, pkey: int = 0xFFFF,
                 config: DeviceConfig | None = None) -> None:
        self.ctx = ctx
        self.port_num = port_num
        self.config = config = config or DeviceConfig()
        self.name = config.name
        self.pkey_wanted = pkey
        self.stats = Counters()
        self.reaper = AhReaper(config.ah_reap_interval)
        self.paths = PathCache(self.reaper, self.stats, queue_len=config.path_queue_len,
                               max_paths=config.max_paths)
        self.neighs = NeighTable(self.paths, self.stats, config.neigh)
        self.gid = ctx.query_gid(port_num, 0)
        self.mcast = McastTable(self.gid, pkey, self.reaper, self.stats, config.mcast)
        self.sa = SaClient(0, self.stats, config.sa)
        self.broadcast = broadcast_hwaddr(pkey)
        self.addressing = Addressing(self.broadcast)
        self.pd = hca.PD(ctx)
        self.send_cq = hca.CQ(ctx, max(config.send_queue_size, 64), self._on_completion)
        self.recv_cq = hca.CQ(ctx, config.recv_queue_size, self._on_completion)
        self.qp: QP | None = None
        self.qpn = 0
        self.hwaddr = HwAddr(flags=0, qpn=0, gid=self.gid)
        self.resolver = Resolver(self.neighs, self.addressing, self.stats, self, self.hwaddr)
        self.groups = Membership(self.mcast, self.addressing, self.stats, self.run)
        self.lid = self.sm_lid = self.sm_sl = 0
        self.port_state = 0
        self.pkey = pkey
        self.pkey_index: int | None = None
        self.qkey = 0
        self.mtu = 0
        self.opened = False
        self._agent: MadAgent | None = None
        self._carrier = False
        self._events: deque[AsyncEvent] = deque()
        self._mads: deque[ReceivedMad] = deque()
        self._woken = True
        """A MAD or an event came (their handlers run from the fabric's ``process``)."""
        self._wakeup: Callable[[], None] | None = None
        self._due: float | None = None
        self._due_stale = True
        """Whether ``_due``, the tables' earliest deadline, must be asked again: set by every
        call into the tables (they all funnel through :meth:`run` and :meth:`_run_sa`)."""
        self._to_host: list[bytes | TsoSegments] = []
        self._bursts_up = 0
        """LSO bursts among ``_to_host``, handed up whole (:meth:`drain_to_gro`)."""
        self._ring = [hca.RecvWR(i, RECV_LEN) for i in range(config.recv_queue_size)]
        self._seq = 0
        self._every_mask = config.signal_every - 1
        self._sig_mask = self._every_mask
        self._now = 0.0
        self._hops = self.addressing.hops
        self._neigh_entries = self.neighs.entries

    # --- bring-up ------------------------------------------------------------------------------

    def open(self, now: float) -> None:
        """Open the port: QP to RTS, receives posted, SA agent, events; join if ACTIVE."""
        if self.opened:
            return
        self._now = now
        self._query_port()
        self.pkey_index = self._find_pkey()
        cap = hca.QPCap(max_send_wr=self.config.send_queue_size,
                        max_recv_wr=self.config.recv_queue_size)
        init = hca.QPInitAttr(qp_type=hca.QPType.UD, scq=self.send_cq, rcq=self.recv_cq,
                              cap=cap, sq_sig_all=False)
        self.qp = qp = QP(self.pd, init)
        self.qpn = qp.qp_num
        self._set_hwaddr()
        if self.pkey_index is not None:
            self._qp_start()
        else:
            self.stats.event("pkey_missing")
        self._agent = self.ctx.open_mad_agent(self.port_num, MgmtClass.SUBN_ADM,
                                              SA_CLASS_VERSION, self._on_mad)
        self.sa = SaClient(self._agent.agent_id, self.stats, self.config.sa)
        self.ctx.set_async_handler(self._on_event)
        self.opened = True
        if self.config.link_local:
            self.add_address(IPv6Interface(f"{self.link_local}/64"), now)
        self._up(now)

    def close(self, now: float) -> None:
        """Leave every group, forget every neighbour and path, stop the QP."""
        if not self.opened:
            return
        self._now = now
        self.run(self.mcast.stop(now), now)
        self.run(self.neighs.clear(now), now)
        self._qp_stop()
        self.run(self.reaper.reap_all(), now)
        if self.qp is not None:
            self.qp.close()
            self.qp = None
        self.ctx.set_async_handler(None)
        if self._agent is not None:
            self._agent.close()
        self._agent = None
        self.opened = False
        self._carrier = False

    @property
    def link_local(self) -> IPv6Address:
        """fe80:: plus the interface ID made from the port GUID (RFC 4391 §8)."""
        return link_local_address(int.from_bytes(self.gid[8:], "big"))

    @property
    def carrier(self) -> bool:
        """Port ACTIVE and the broadcast group joined."""
        return self._carrier

    def _query_port(self) -> None:
        attr = self.ctx.query_port(self.port_num)
        self.lid, self.sm_lid, self.sm_sl = attr.lid, attr.sm_lid, attr.sm_sl
        self.port_state = attr.state
        if not self.mtu:
            self.mtu = (128 << attr.active_mtu) - 4
        gid = self.ctx.query_gid(self.port_num, 0)
        if gid != self.gid:
            self.gid = self.mcast.port_gid = gid
            self._set_hwaddr()

    def _set_hwaddr(self) -> None:
        self.hwaddr = self.resolver.hwaddr = HwAddr(flags=0, qpn=self.qpn, gid=self.gid)

    def _find_pkey(self) -> int | None:
        """Our P_Key's index: the exact value, else the same partition with the other
        membership bit (a child interface chases its P_Key, linux-ipoib.md §6)."""
        n = self.ctx.query_port(self.port_num).pkey_tbl_len
        table = [self.ctx.query_pkey(self.port_num, i) for i in range(n)]
        want = self.pkey_wanted
        for candidates in ([want], [want ^ 0x8000]):
            for i, v in enumerate(table):
                if v in candidates and v & 0x7FFF:
                    self.pkey = v
                    return i
        return None

    def _qp_start(self) -> None:
        """RESET → INIT (Q_Key, P_Key index, port) → RTR → RTS, and a full receive ring."""
        qp = self.qp
        assert qp is not None and self.pkey_index is not None
        if len(self.recv_cq):
            self._poll_rx(self._now)
        self._qp_stop()
        qp.to_init(QPAttr(qkey=self.qkey, pkey_index=self.pkey_index, port_num=self.port_num))
        qp.to_rtr()
        qp.to_rts()
        for wr in self._ring:
            qp.post_recv(wr)

    def _qp_stop(self) -> None:
        """To RESET: nothing posted is in flight any more, so every AH may go."""
        if self.qp is not None and self.qp.state != QPState.RESET:
            self.qp.modify(QPAttr(qp_state=QPState.RESET))
        self.reaper.tx_done = self._seq

    def _ready_qp(self) -> hca.QP:
        """The QP to post a send to (one not in RTS refuses the post itself)."""
        qp = self.qp
        if qp is None:
            raise VerbsError("the QP is not ready")
        return qp

    def _up(self, now: float) -> None:
        """Start the join task when the port is ACTIVE and the P_Key is there."""
        if (self.opened and self.port_state == PortState.ACTIVE and self.pkey_index is not None
                and not self.mcast.running):
            self.run(self.mcast.start(now), now)

    # --- prebuilt sends (the data path's addressed work requests) -------------------------

    def _neigh_tx(self, e: Neigh) -> Tx:
        """Address a reusable work request for a resolved neighbour (kept in ``e.tx``)."""
        ah, hw = e.ah, e.hwaddr
        assert ah is not None and hw is not None
        tx = self._make_tx(ah, int.from_bytes(hw[1:4], "big"))
        e.tx = tx
        return tx

    def _group_tx(self, g: Group) -> Tx:
        assert g.ah is not None
        tx = self._make_tx(g.ah, MULTICAST_QPN)
        g.tx = tx
        return tx

    def _make_tx(self, ah: Ah, qpn: int) -> Tx:
        wr = SendWR()
        wr.set_wr_ud(ah.handle, qpn, self.qkey)
        limit = self.mtu
        if ah.attr.mtu:
            limit = min(limit, (128 << ah.attr.mtu) - 4)
        return wr, limit, ah

    def _post_tx(self, tx: Tx, hdr: bytes, payload: bytes) -> None:
        """Post one packet through a prebuilt send (the hot path's body, not inlined)."""
        wr, maxlen, ah = tx
        n = len(payload)
        if n > maxlen:
            self.stats.drop("tx_too_long")
            return
        seq = self._seq
        self._seq = seq + 1
        wr.wr_id = ah.last_send = seq
        wr.send_flags = 0 if seq & self._sig_mask else SIGNALED
        try:
            self._ready_qp().post_send_sg(wr, hdr, payload)
        except VerbsError:
            self.stats.drop("tx_post_failed")
            return
        self.stats.tx_packets += 1
        self.stats.tx_bytes += n + 4

    # --- actions -------------------------------------------------------------------------------

    def run(self, actions: list[act.Action], now: float) -> None:
        """Carry out what the neighbour, path and multicast tables returned, in order."""
        self._due_stale = True
        if self._wakeup is not None:
            self._wakeup()  # a table moved: its deadline must be asked again
        for a in actions:
            match a:
                case act.NeighSend(neigh=e, frames=frames):
                    for f in frames:
                        self._post_tx(e.tx or self._neigh_tx(e), HDR[f.ethertype], f.payload)
                case act.PathSend(hwaddr=hw, ah=ah, frames=frames):
                    tx = self._make_tx(ah, int.from_bytes(hw[1:4], "big"))
                    for f in frames:
                        self._post_tx(tx, HDR[f.ethertype], f.payload)
                case act.ReleaseQueue(mgid=mgid, ah=ah, frames=frames):
                    g = self.mcast.groups.get(mgid)
                    if g is not None and g.ah is ah:
                        tx = g.tx or self._group_tx(g)
                    else:
                        tx = self._make_tx(ah, MULTICAST_QPN)
                    for f in frames:
                        self._post_tx(tx, HDR[f.ethertype], f.payload)
                case act.SendArpRequest(ip=ip, dest=dest) | act.SendNeighSolicit(ip=ip, dest=dest):
                    self.resolver.solicit(ip, dest, now)
                case act.StartPathQuery(dgid=dgid, seq=seq):
                    b = self.mcast.broadcast_record
                    self._run_sa(self.sa.path_query(
                        now, sgid=self.gid, dgid=dgid, pkey=self.pkey,
                        tclass=b.tclass if b is not None else 0,
                        cookie=_PathCookie(dgid, seq)), now)
                case act.CancelPathQuery(dgid=dgid, seq=seq):
                    self._run_sa(self.sa.cancel(_PathCookie(dgid, seq), now), now)
                case act.CreateAh(ah=ah):
                    self._create_ah(ah)
                case act.DestroyAh(ah=ah):
                    ah.handle = None
                case act.SendJoin(mgid=mgid, record=rec, mask=mask, seq=seq):
                    self._run_sa(self.sa.join(now, rec, mask, _JoinCookie(mgid, seq)), now)
                case act.SendLeave(mgid=mgid, record=rec, mask=mask):
                    self._run_sa(self.sa.leave(now, rec, mask, _LeaveCookie(mgid)), now)
                case act.CancelJoin(mgid=mgid, seq=seq):
                    self._run_sa(self.sa.cancel(_JoinCookie(mgid, seq), now), now)
                case act.AttachQp(mgid=mgid, mlid=mlid, qkey=qkey):
                    self._attach(mgid, mlid, qkey)
                case act.DetachQp(mgid=mgid, mlid=mlid):
                    if self.qp is not None:
                        self.qp.detach_mcast(mgid, mlid)
                case act.CarrierOn(mtu=mtu, qkey=qkey):
                    self._carrier_on(mtu, qkey, now)
                case act.CarrierOff():
                    self._carrier = False
                case act.Drop():
                    pass  # already counted by the table that dropped

    def _create_ah(self, ah: Ah) -> None:
        a = ah.attr
        attr = hca.AHAttr(dlid=a.dlid, sl=a.sl, src_path_bits=a.src_path_bits,
                          static_rate=a.static_rate, is_global=a.grh is not None,
                          port_num=self.port_num, gr=a.grh)
        ah.handle = hca.AH(self.pd, attr)

    def _attach(self, mgid: bytes, mlid: int, qkey: int | None) -> None:
        qp = self.qp
        if qp is None or self.pkey_index is None:
            return
        if qkey is not None and qkey != self.qkey:
            self.qkey = qkey
            self._invalidate_tx()
            if qp.state == QPState.RTS:  # as Linux: the Q_Key changes in place, RTS -> RTS
                qp.modify(QPAttr(qp_state=QPState.RTS, qkey=qkey), hca.QPAttrMask.QKEY)
            else:
                self._qp_start()
        qp.attach_mcast(mgid, mlid)

    def _carrier_on(self, mtu: int, qkey: int, now: float) -> None:
        port_mtu = (128 << self.ctx.query_port(self.port_num).active_mtu) - 4
        mtu = min(mtu, port_mtu)
        if mtu != self.mtu or qkey != self.qkey:
            self.mtu, self.qkey = mtu, qkey
            self._invalidate_tx()
        was = self._carrier
        self._carrier = True
        if not was:
            self.stats.event("carrier_on")
        for iface in list(self.addressing.addresses.values()):
            self.resolver.announce(iface, now)

    def _invalidate_tx(self) -> None:
        """Prebuilt sends carry the Q_Key and MTU: rebuild them lazily after a change."""
        for e in self.neighs.entries.values():
            e.tx = None
        for g in self.mcast.groups.values():
            g.tx = None

    # --- SA answers ----------------------------------------------------------------------------

    def _run_sa(self, results: list[act.SaAction], now: float) -> None:
        self._due_stale = True
        if self._wakeup is not None:
            self._wakeup()
        for r in results:
            match r:
                case act.SendMad(mad=mad):
                    if self._agent is None or not self.sm_lid:
                        self.stats.event("sa_no_sm")
                    else:
                        self._agent.send(mad, dlid=self.sm_lid, sl=self.sm_sl)
                case act.PathQueryDone(cookie=_PathCookie(dgid=dgid, seq=seq), record=rec):
                    self.run(self.neighs.path_done(dgid, seq, rec, now), now)
                case act.JoinDone(cookie=_JoinCookie(mgid=mgid, seq=seq), record=rec):
                    self.run(self.mcast.join_done(mgid, seq, rec, now), now)
                case act.SaFailed(cookie=_PathCookie(dgid=dgid, seq=seq)):
                    self.run(self.neighs.path_failed(dgid, seq, now), now)
                case act.SaFailed(cookie=_JoinCookie(mgid=mgid, seq=seq)):
                    self.run(self.mcast.join_failed(mgid, seq, now), now)
                case act.LeaveDone():
                    self.stats.event("sa_leave_done")
                case act.SaFailed(cookie=_LeaveCookie()):
                    self.stats.event("sa_leave_failed")  # Linux does not wait for leaves
                case act.SaFailed():
                    self.stats.event("sa_failed")
                case act.ClassPortInfoDone(info=info):
                    self.mcast.note_sa_capabilities(info.capability_mask2)

    # --- send completions ----------------------------------------------------------------------

    def _poll_tx(self) -> None:
        """Send completions: in order on a UD send queue, so one tells all earlier are done."""
        done = self.reaper.tx_done
        for wc in self.send_cq.poll(len(self.send_cq)):
            if wc.status:
                self.stats.drop("tx_post_failed")
            if wc.wr_id >= done:
                done = wc.wr_id + 1
        self.reaper.tx_done = done

    # --- events and flushes --------------------------------------------------------------------

    def set_wakeup(self, wakeup: Callable[[], None] | None) -> None:
        """Have ``wakeup()`` called whenever the device has work for :meth:`process` or
        something for :meth:`drain_to_host`: a completion on an armed CQ, an SA answer, an
        async event, or a call into its tables (a transmit that took the slow path, an
        address, a group), so a runtime may leave it alone until then or until
        :meth:`get_timer` is due. A transmit on the fast path leaves nothing to do. The CQs
        are armed again at every ``process`` before they are polled, as Linux re-arms its CQ
        in ``ipoib_poll``, so no completion goes unannounced."""
        self._wakeup = wakeup
        if wakeup is not None:
            self.recv_cq.req_notify()
            self.send_cq.req_notify()
            wakeup()

    def _on_completion(self, cq: hca.CQ) -> None:
        if self._wakeup is not None:
            self._wakeup()

    def _on_event(self, ev: AsyncEvent) -> None:
        if ev.port_num == self.port_num:
            self._events.append(ev)
            self._woken = True
            if self._wakeup is not None:
                self._wakeup()

    def _on_mad(self, rx: ReceivedMad) -> None:
        self._mads.append(rx)
        self._woken = True
        if self._wakeup is not None:
            self._wakeup()

    def _handle_events(self, now: float) -> None:
        levels = set()
        while self._events:
            ev = self._events.popleft()
            self.stats.event(f"event_{ev.event_type.lower()}")
            level = FLUSH_LEVELS.get(ev.event_type)
            if level is not None:
                levels.add(level)
        if levels:
            self.flush(max(levels), now, also=levels)

    def flush(self, level: int, now: float, *, also: set[int] | None = None) -> None:
        """A LIGHT (1), NORMAL (2) or HEAVY (3) flush, as Linux ``__ipoib_ib_dev_flush``."""
        self._due_stale = True
        self.stats.event(f"flush_{('light', 'normal', 'heavy')[level - 1]}")
        self._query_port()
        if level == HEAVY:
            old = (self.pkey_index, self.pkey)
            self.pkey_index = self._find_pkey()
            if (self.pkey_index, self.pkey) == old:
                rest = (also or set()) - {HEAVY}
                if rest:
                    self.flush(max(rest), now)
                return
        if level >= NORMAL or self.port_state != PortState.ACTIVE:
            self.run(self.mcast.stop(now), now)
            self.run(self.neighs.flush(now), now)
            self._carrier = False
            if level == HEAVY:
                self._qp_stop()
                if self.pkey_index is not None and self.qp is not None:
                    self._qp_start()
            self._up(now)
            return
        self.neighs.flush_light()
        if self.mcast.running:
            self.run(self.mcast.flush_light(now), now)
        else:
            self._up(now)

    # --- addresses, routes, groups -------------------------------------------------------------

    def add_address(self, addr: IPv4Interface | IPv6Interface | str, now: float) -> None:
        """Own an address: its prefix is on-link; IPv4 announces itself with a gratuitous
        ARP, IPv6 joins its solicited-node group (and all-nodes) and sends an unsolicited NA."""
        iface = parse_interface(addr)
        if self.addressing.add_address(iface):
            self.groups.address_added(iface, now)
            if self._carrier:
                self.resolver.announce(iface, now)

    def remove_address(self, addr: IPv4Interface | IPv6Interface | str, now: float) -> None:
        """Stop owning an address (and leave its solicited-node group)."""
        iface = parse_interface(addr)
        if self.addressing.remove_address(iface):
            self.groups.address_removed(iface, now)

    def set_routes(self, routes: list[Route | str]) -> None:
        """The host's routes: on-link prefixes (no gateway) and gateways. A destination no
        route covers is dropped (``tx_no_route``); our addresses' prefixes are always on-link."""
        self.addressing.set_routes(routes)

    def join_group(self, group: IPv4Address | IPv6Address | str, now: float) -> None:
        """The host wants to receive ``group`` (a socket joined): full join; pair each call
        with :meth:`leave_group`. IGMP/MLD reports the host transmits are followed too."""
        self.groups.join_group(group, now)

    def leave_group(self, group: IPv4Address | IPv6Address | str, now: float) -> None:
        """One :meth:`join_group` fewer; the group is left with its last member."""
        self.groups.leave_group(group, now)

    # --- provided by the data path (device.py) -------------------------------------------------

    def _poll_rx(self, now: float) -> None:
        raise NotImplementedError

    def send_arp(self, dest: bytes | None, packet: bytes, now: float) -> None:
        """An ARP packet to ``dest`` (via its path) or to the broadcast group."""
        raise NotImplementedError

    def send_ip(self, packet: bytes, now: float) -> None:
        """An IP packet the driver made (NS, NA)."""
        raise NotImplementedError
