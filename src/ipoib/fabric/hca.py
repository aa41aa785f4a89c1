"""A verbs-like API for the simulated HCAs, named after pyverbs (style-anchors.md §5).

``Context`` (a device) → ``PD`` → ``CQ`` / ``QP`` / ``AH``; work requests ``SendWR`` and
``RecvWR``; completions ``WC``. MADs use :meth:`Context.open_mad_agent` (QP0/QP1, like
``umad_register``). What the data path does, as an HCA does it:

- **send** (UD): the address handle keeps a prebuilt :class:`~ipoib.wire.ib.UdTemplate` per
  (QP, Q_Key, P_Key, SLID), so a send is one ``bytes.join`` and a hand-off to the fabric;
  :meth:`QP.post_send_sg` takes the payload as two buffers (a driver's own header, then the
  packet) and joins them into the packet in that same join. A
  remote Q_Key with bit 31 set means "use the QP's Q_Key" (controlled Q_Key). Payloads over
  the port's active MTU complete with ``LOC_LEN_ERR``. Multicast is also looped back to every
  QP of the port attached to the group, the sender included (real HCAs do; IPoIB drops its
  own echo by SLID and QPN), unless the QP was created with ``BLOCK_SELF_MCAST_LB``.
- **receive**: P_Key against the QP's P_Key (a limited member cannot talk to a limited
  member), Q_Key against the QP's Q_Key, MTU; no posted receive means the packet is dropped
  (counted, as HW does). A completion's ``byte_len`` includes the 40-byte GRH area every UD
  receive buffer starts with; ``WC.grh`` holds the GRH when one came (``wc_flags`` GRH), and
  ``WC.data`` the payload. A unicast data packet without GRH is read with one unpack
  (:func:`~ipoib.wire.ib.peek_ud`) and its completion is a tuple in the CQ:
  :meth:`CQ.poll_tuples` hands such rows over, :meth:`CQ.poll` makes :class:`WC` objects.

Completion callbacks (``CQ.req_notify``) and async events run deferred, from
:meth:`Fabric.process`. RC QPs have their state machine but no transport yet.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Sequence
from typing import cast

from ..wire.ib import (
    GRH_SIZE,
    LNH_GLOBAL,
    LRH_SIZE,
    MULTICAST_QPN,
    OP_UD_SEND_ONLY_IMM,
    Grh,
    UdTemplate,
    build_ud,
)
from ..wire.offload import OffloadError, TsoSegments, insert_checksum
from .burst import LsoBurst, RecvBurst
from .context import Context
from .inbound import CHAIN_MIN, mcast_deliver
from .node import Port
from .verbs import (
    WC,
    AHAttr,
    AsyncEvent,
    DeviceAttr,
    DeviceCapFlags,
    GlobalRoute,
    PortAttr,
    QPAttr,
    QPAttrMask,
    QPCap,
    QPCreateFlags,
    QPInitAttr,
    QPState,
    QPType,
    RecvWR,
    SendFlags,
    SendWR,
    VerbsError,
    WCFlags,
    WCOpcode,
    WCStatus,
    WcTuple,
    WROpcode,
    wc_tuple,
)

PERMISSIVE = 0xFFFF
MCAST_BASE = 0xC000


# Plain ints and members bound once: an Enum attribute lookup costs ~60 ns, and IntFlag
# arithmetic far more, on a path that runs per packet.
_SUCCESS, _LOC_LEN_ERR = WCStatus.SUCCESS, WCStatus.LOC_LEN_ERR
_OP_SEND, _OP_RECV, _OP_TSO = WCOpcode.SEND, WCOpcode.RECV, WCOpcode.TSO
_WC_GRH, _WC_WITH_IMM = int(WCFlags.GRH), int(WCFlags.WITH_IMM)
_SIGNALED = int(SendFlags.SIGNALED)
_SEND_WITH_IMM = int(WROpcode.SEND_WITH_IMM)

_QP_TRANSITIONS: dict[QPState, frozenset[QPState]] = {
    QPState.RESET: frozenset({QPState.RESET, QPState.INIT, QPState.ERR}),
    QPState.INIT: frozenset({QPState.RESET, QPState.INIT, QPState.RTR, QPState.ERR}),
    QPState.RTR: frozenset({QPState.RESET, QPState.RTS, QPState.ERR}),
    QPState.RTS: frozenset({QPState.RESET, QPState.RTS, QPState.SQD, QPState.ERR}),
    QPState.SQD: frozenset({QPState.RESET, QPState.RTS, QPState.SQD, QPState.ERR}),
    QPState.SQE: frozenset({QPState.RESET, QPState.RTS, QPState.ERR}),
    QPState.ERR: frozenset({QPState.RESET, QPState.ERR}),
}
"""Allowed ``ibv_modify_qp`` state transitions (IBA 10.3.1, Figure 124)."""

_QKEY_TRANSITIONS = frozenset({
    (QPState.RESET, QPState.INIT), (QPState.INIT, QPState.INIT), (QPState.INIT, QPState.RTR),
    (QPState.RTR, QPState.RTS), (QPState.RTS, QPState.RTS), (QPState.SQD, QPState.SQD),
    (QPState.SQD, QPState.RTS), (QPState.SQE, QPState.RTS),
})
"""The transitions of a UD QP that may carry a new Q_Key (the Modify QP verb, IBA ch. 11)."""


# --- device, PD, CQ, AH ----------------------------------------------------------------------


class PD:
    """A protection domain; it only groups objects here."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx


class CQ:
    """A completion queue. ``req_notify`` arms a one-shot call of the completion handler
    (deferred) on the next completion.

    Completions are kept as :data:`~.verbs.WcTuple` rows: :meth:`poll` makes :class:`WC`
    objects of them (the pyverbs shape), :meth:`poll_tuples` hands the rows over as they are
    (the data path's poll, no object per completion). An LSO send completed whole is one
    :class:`~.burst.RecvBurst` standing for a completion per segment (counted so in ``len``
    and against ``cqe``): those two polls make its rows, :meth:`poll_bursts` hands it over
    whole."""

    def __init__(self, ctx: Context, cqe: int = 1024,
                 comp_handler: Callable[[CQ], None] | None = None) -> None:
        self.ctx = ctx
        self.cqe = cqe
        self.comp_handler = comp_handler
        self._entries: deque[WcTuple | RecvBurst] = deque()
        self._extra = 0
        """Completions the bursts queued stand for beyond one each."""
        self._armed = False
        self.overflows = 0

    def __len__(self) -> int:
        return len(self._entries) + self._extra

    def poll(self, num_entries: int = 1) -> list[WC]:
        """Up to ``num_entries`` completions, oldest first."""
        return [WC(*t) for t in self.poll_tuples(num_entries)]

    def poll_tuples(self, num_entries: int) -> list[WcTuple]:
        """Up to ``num_entries`` completions as tuples in :class:`WC`'s field order."""
        e = self._entries
        if self._extra:
            return self._cut(num_entries)
        if num_entries >= len(e):
            out = cast(list[WcTuple], list(e))
            e.clear()
            return out
        return [cast(WcTuple, e.popleft()) for _ in range(num_entries)]

    def _cut(self, num_entries: int) -> list[WcTuple]:
        """:meth:`poll_tuples` with bursts queued: each made into its rows as it is reached
        (those past ``num_entries`` stay queued as rows)."""
        e = self._entries
        out: list[WcTuple] = []
        while e and len(out) < num_entries:
            x = e.popleft()
            if isinstance(x, tuple):
                out.append(x)
                continue
            self._extra -= x.count - 1
            rows = x.wcs()
            take = num_entries - len(out)
            out.extend(rows[:take])
            e.extendleft(reversed(rows[take:]))
        return out

    def poll_bursts(self) -> list[WcTuple | RecvBurst]:
        """Every completion, oldest first, a burst's as its :class:`~.burst.RecvBurst`."""
        out = list(self._entries)
        self._entries.clear()
        self._extra = 0
        return out

    @property
    def bursts(self) -> bool:
        """Whether a burst is queued (:meth:`poll_bursts` would hand one over)."""
        return self._extra > 0

    def add_burst(self, burst: RecvBurst) -> None:
        """Queue ``burst``'s completions (the caller made sure they fit)."""
        self._entries.append(burst)
        self._extra += burst.count - 1
        if self._armed and self.comp_handler is not None:
            self._notify()

    def req_notify(self, solicited_only: bool = False) -> None:
        """Arm the completion handler for the next completion."""
        self._armed = True

    def push(self, wc: WC | WcTuple) -> bool:
        """Add a completion; False when the CQ is full (the completion is lost)."""
        if len(self) >= self.cqe:
            self.overflows += 1
            return False
        self._entries.append(wc_tuple(wc) if isinstance(wc, WC) else wc)
        if self._armed and self.comp_handler is not None:
            self._notify()
        return True

    def extend(self, wcs: Sequence[WcTuple]) -> None:
        """:meth:`push` for each of ``wcs`` in order (those past a full CQ are lost)."""
        room = self.cqe - len(self)
        if len(wcs) > room:
            self.overflows += len(wcs) - max(room, 0)
            wcs = wcs[:max(room, 0)]
        if wcs:
            self._entries.extend(wcs)
            if self._armed and self.comp_handler is not None:
                self._notify()

    def _notify(self) -> None:
        self._armed = False
        self.ctx.fabric.defer(self._fire)

    def _fire(self) -> None:
        handler = self.comp_handler
        if handler is not None:
            handler(self)


class AH:
    """An address handle; it caches the prebuilt UD headers its sends use."""

    def __init__(self, pd: PD, attr: AHAttr) -> None:
        self.pd = pd
        self.attr = attr
        self.port = pd.ctx._port(attr.port_num)
        if attr.is_global and attr.gr is None:
            raise VerbsError("a global AH needs a GlobalRoute")
        if MCAST_BASE <= attr.dlid < PERMISSIVE and not attr.is_global:
            raise VerbsError("a multicast AH needs a GRH (is_global and a GlobalRoute)")
        self._templates: dict[tuple[int, int, int, int], UdTemplate] = {}
        self._last: tuple[tuple[int, int, int, int], UdTemplate] | None = None
        """The last template a send used and its key, with the port's LID (not the SLID):
        the usual send compares one tuple instead of building the key and hashing it."""

    def _grh(self) -> Grh | None:
        gr = self.attr.gr
        if not self.attr.is_global or gr is None:
            return None
        sgid = self.pd.ctx.query_gid(self.attr.port_num, gr.sgid_index)
        return Grh(tclass=gr.traffic_class, flow_label=gr.flow_label, hop_lmt=gr.hop_limit,
                   sgid=sgid, dgid=gr.dgid)

    def template(self, src_qp: int, qkey: int, pkey: int, dest_qp: int) -> UdTemplate:
        """The header for sends from ``src_qp`` (cached while LID and P_Key stay put)."""
        port = self.port
        slid = port.lid | self.attr.src_path_bits
        key = (src_qp << 24 | dest_qp, qkey, pkey, slid)
        t = self._templates.get(key)
        if t is None:
            if len(self._templates) > 64:
                self._templates.clear()
            t = UdTemplate(vl=0, sl=self.attr.sl, dlid=self.attr.dlid, slid=slid, pkey=pkey,
                           dest_qp=dest_qp, qkey=qkey, src_qp=src_qp, grh=self._grh())
            self._templates[key] = t
        return t


# --- queue pairs -----------------------------------------------------------------------------


class QP:
    """A queue pair. UD is implemented; RC has the state machine and no transport yet
    (its sends raise, packets to it are dropped as ``no_qp``)."""

    def __init__(self, pd: PD, init_attr: QPInitAttr, qp_attr: QPAttr | None = None) -> None:
        ctx = pd.ctx
        if init_attr.scq is None or init_attr.rcq is None:
            raise VerbsError("a QP needs a send and a receive CQ")
        self.pd = pd
        self.ctx = ctx
        self.node = ctx.node
        self.qp_type = init_attr.qp_type
        self.scq: CQ = init_attr.scq
        self.rcq: CQ = init_attr.rcq
        self.cap = init_attr.cap
        self.sq_sig_all = init_attr.sq_sig_all
        self.create_flags = init_attr.create_flags
        self.qp_num = self.node.next_qpn
        self.node.next_qpn += 1
        self.state = QPState.RESET
        self._rx_ok = self._tx_ok = False
        self.qkey = 0
        self.pkey_index = 0
        self.port_num = 1
        self.sq_psn = 0
        self.rq: deque[RecvWR] = deque()
        self.mcast: set[tuple[bytes, int]] = set()
        self.offload_errors = 0
        """Offloaded sends the HCA could not parse (completed with ``LOC_QP_OP_ERR``)."""
        self._max_tso = ctx.query_device().max_tso
        self.node.qps[self.qp_num] = self
        if qp_attr is not None and self.qp_type == QPType.UD:
            self.to_init(qp_attr)
            self.to_rtr(qp_attr)
            self.to_rts(qp_attr)

    def __repr__(self) -> str:
        return f"<QP {self.node.name} {self.qp_num:#x} {self.qp_type.name} {self.state.name}>"

    @property
    def qp_state(self) -> QPState:
        """The current state."""
        return self.state

    def close(self) -> None:
        """Destroy the QP: detach from groups, forget it."""
        for gid, lid in list(self.mcast):
            self.detach_mcast(gid, lid)
        self.node.qps.pop(self.qp_num, None)
        self.state = QPState.RESET
        self._rx_ok = self._tx_ok = False

    # state machine

    def modify(self, attr: QPAttr, attr_mask: int | None = None) -> None:
        """Move to ``attr.qp_state``, taking the attributes that state needs.

        With ``attr_mask`` (:class:`~.verbs.QPAttrMask`; STATE is implied) only the named
        attributes are taken; so a UD QP's Q_Key changes in RTS -> RTS, as Linux IPoIB does
        when the broadcast group's Q_Key arrives (the Modify QP verb, IBA chapter 11, takes a
        UD QP's Q_Key in INIT -> INIT, INIT -> RTR, RTR -> RTS, RTS -> RTS, SQD -> RTS and
        SQE -> RTS, and requires it in RESET -> INIT)."""
        new = QPState(attr.qp_state)
        if new not in _QP_TRANSITIONS[self.state]:
            raise VerbsError(f"QP {self.qp_num:#x}: {self.state.name} -> {new.name} is invalid")
        if attr_mask is not None:
            self._modify_masked(new, attr, attr_mask)
            return
        if new == QPState.INIT and self.state in (QPState.RESET, QPState.INIT):
            if not 1 <= attr.port_num <= self.node.nports:
                raise VerbsError(f"no port {attr.port_num}")
            if not 0 <= attr.pkey_index < len(self.node.ports[attr.port_num].pkeys):
                raise VerbsError(f"P_Key index {attr.pkey_index} out of range")
            self.port_num, self.pkey_index, self.qkey = attr.port_num, attr.pkey_index, attr.qkey
        if new == QPState.RTS:
            self.sq_psn = attr.sq_psn
        if new in (QPState.RESET, QPState.ERR):
            flushed = list(self.rq)
            self.rq.clear()
            if new == QPState.ERR:
                for wr in flushed:
                    self.rcq.push(WC(wr.wr_id, WCStatus.WR_FLUSH_ERR, WCOpcode.RECV, 0,
                                     self.qp_num))
        self.state = new
        self._rx_ok = self.qp_type == QPType.UD and new in (QPState.RTR, QPState.RTS)
        self._tx_ok = self.qp_type == QPType.UD and new == QPState.RTS

    def _modify_masked(self, new: QPState, attr: QPAttr, mask: int) -> None:
        old = self.state
        unknown = mask & ~int(QPAttrMask.STATE | QPAttrMask.PKEY_INDEX | QPAttrMask.PORT
                              | QPAttrMask.QKEY | QPAttrMask.SQ_PSN)
        if unknown:
            raise VerbsError(f"attribute mask bits {unknown:#x} are not supported")
        if old == QPState.RESET and new == QPState.INIT \
                and mask & (QPAttrMask.PKEY_INDEX | QPAttrMask.PORT | QPAttrMask.QKEY) \
                != QPAttrMask.PKEY_INDEX | QPAttrMask.PORT | QPAttrMask.QKEY:
            raise VerbsError("RESET -> INIT needs the P_Key index, the port and the Q_Key")
        if mask & (QPAttrMask.PKEY_INDEX | QPAttrMask.PORT) \
                and not (old in (QPState.RESET, QPState.INIT) and new == QPState.INIT):
            raise VerbsError(f"the port and P_Key index are not modifiable in "
                             f"{old.name} -> {new.name}")
        if mask & QPAttrMask.QKEY and (old, new) not in _QKEY_TRANSITIONS:
            raise VerbsError(f"the Q_Key is not modifiable in {old.name} -> {new.name}")
        if mask & QPAttrMask.SQ_PSN and new not in (QPState.RTS, QPState.SQD):
            raise VerbsError(f"the SQ PSN is not modifiable in {old.name} -> {new.name}")
        if new != old or new not in (QPState.RTS, QPState.INIT, QPState.SQD):
            # any other change of state: the plain path, with the attributes asked for
            merged = QPAttr(qp_state=new, qkey=attr.qkey if mask & QPAttrMask.QKEY else self.qkey,
                            pkey_index=attr.pkey_index if mask & QPAttrMask.PKEY_INDEX
                            else self.pkey_index,
                            port_num=attr.port_num if mask & QPAttrMask.PORT else self.port_num,
                            sq_psn=attr.sq_psn if mask & QPAttrMask.SQ_PSN else self.sq_psn)
            self.modify(merged)
            if mask & QPAttrMask.QKEY:
                self.qkey = attr.qkey
            return
        if mask & QPAttrMask.PORT:  # INIT -> INIT
            if not 1 <= attr.port_num <= self.node.nports:
                raise VerbsError(f"no port {attr.port_num}")
            self.port_num = attr.port_num
        if mask & QPAttrMask.PKEY_INDEX:
            if not 0 <= attr.pkey_index < len(self.node.ports[self.port_num].pkeys):
                raise VerbsError(f"P_Key index {attr.pkey_index} out of range")
            self.pkey_index = attr.pkey_index
        if mask & QPAttrMask.QKEY:
            self.qkey = attr.qkey
        if mask & QPAttrMask.SQ_PSN:
            self.sq_psn = attr.sq_psn

    def to_init(self, attr: QPAttr) -> None:
        """RESET -> INIT with port, P_Key index and Q_Key."""
        attr.qp_state = QPState.INIT
        self.modify(attr)

    def to_rtr(self, attr: QPAttr | None = None) -> None:
        """INIT -> RTR."""
        a = attr or QPAttr()
        a.qp_state = QPState.RTR
        self.modify(a)

    def to_rts(self, attr: QPAttr | None = None) -> None:
        """RTR -> RTS."""
        a = attr or QPAttr(sq_psn=self.sq_psn)
        a.qp_state = QPState.RTS
        self.modify(a)

    def query(self) -> QPAttr:
        """The current attributes."""
        return QPAttr(qp_state=self.state, qkey=self.qkey, pkey_index=self.pkey_index,
                      port_num=self.port_num, sq_psn=self.sq_psn)

    # work requests

    def post_recv(self, wr: RecvWR) -> None:
        """Post a receive buffer (allowed from INIT on)."""
        if self.state == QPState.RESET:
            raise VerbsError("cannot post receives in RESET")
        if len(self.rq) >= self.cap.max_recv_wr:
            raise VerbsError("receive queue full", errno.ENOMEM)
        self.rq.append(wr)

    def post_recv_list(self, wrs: list[RecvWR]) -> None:
        """Post several receive buffers in order, all or none: when they do not all fit (or
        the QP is in RESET) nothing is posted and :class:`VerbsError` says why."""
        if self.state == QPState.RESET:
            raise VerbsError("cannot post receives in RESET")
        if len(self.rq) + len(wrs) > self.cap.max_recv_wr:
            raise VerbsError("receive queue full", errno.ENOMEM)
        self.rq.extend(wrs)

    def post_send(self, wr: SendWR) -> None:
        """Send one work request (UD: needs RTS and an AH)."""
        self.post_send_sg_list(wr, b"", (wr.payload,), wr.wr_id)

    def post_send_sg(self, wr: SendWR, head: bytes, payload: bytes) -> None:
        """Send ``wr`` with a two-entry gather list, ``head`` then ``payload``, in place of
        ``wr.payload``: the packet is made with one join, so a caller's own header costs no
        extra copy of the payload (a driver's 4-byte encapsulation header)."""
        self.post_send_sg_list(wr, head, (payload,), wr.wr_id)

    def post_send_offload(self, wr: SendWR, head: bytes, payload: bytes) -> None:
        """Send ``head`` then ``payload``, an IP packet, with the transmit offloads: a ``TSO``
        request is cut into TCP segments of ``wr.mss`` payload bytes (at most ``max_tso`` in
        all), any other send gets its TCP/UDP checksum computed (``IP_CSUM``), both done by
        :mod:`ipoib.wire.offload`. The segments leave as one chain, carried whole as long as
        nothing needs them one by one (:mod:`.burst`); the request completes once, with the
        bytes it carried. A packet the engine cannot parse completes with ``LOC_QP_OP_ERR``
        and sends nothing."""
        tso = wr.opcode == WROpcode.TSO
        try:
            if tso and len(payload) > self._max_tso:
                raise OffloadError("TSO", "length", 0, f"{len(payload)} bytes")
            if tso:
                segs = TsoSegments(payload, wr.mss)
                n = len(head) * segs.count + segs.ip_bytes()
                self.post_send_sg_list(wr, head, (), wr.wr_id, quiet=True, segs=segs)
            else:
                packet = insert_checksum(payload)
                n = len(head) + len(packet)
                self.post_send_sg_list(wr, head, (packet,), wr.wr_id, quiet=True)
        except OffloadError:
            self.offload_errors += 1
            self.scq.push(WC(wr.wr_id, WCStatus.LOC_QP_OP_ERR, _OP_SEND, 0, self.qp_num))
            return
        if self.sq_sig_all or wr.send_flags & _SIGNALED:
            self.scq.push((wr.wr_id, _SUCCESS, _OP_TSO if tso else _OP_SEND, n, self.qp_num,
                           0, 0, 0, 0, 0, 0, 0, None, b""))

    def post_send_sg_list(self, wr: SendWR, head: bytes, payloads: Sequence[bytes],
                          first_wr_id: int, signal_mask: int = 0, *,
                          quiet: bool = False, segs: TsoSegments | None = None) -> None:
        """Post ``len(payloads)`` sends in order (``ibv_post_send`` with a chain), each
        ``wr`` with the gather list ``head``, ``payloads[i]`` and the id ``first_wr_id + i``.

        ``wr``'s SIGNALED flag applies to those whose id has no bit of ``signal_mask`` set
        (0: every one; 15: every 16th), the usual selective signalling; ``sq_sig_all``
        signals all. The QP, the address handle and the header are checked and looked up
        once for the chain, which is what makes it cheaper than one post per packet; the
        packets leave together (``Fabric.transmit_list``) and the send completions are
        queued once they have. With ``segs`` (an LSO send) the payloads are its segments,
        carried whole as an :class:`~.burst.LsoBurst` when the fabric can."""
        if not self._tx_ok:
            if self.qp_type != QPType.UD:
                raise VerbsError("RC transport is not implemented", errno.EOPNOTSUPP)
            raise VerbsError(f"QP {self.qp_num:#x} is {self.state.name}, not RTS")
        ah = wr.ah
        if ah is None:
            raise VerbsError("a UD send needs an AH")
        port = ah.port
        limit = 128 << min(port.mtu_cap, port.neighbor_mtu)
        rqkey = wr.remote_qkey
        qkey = self.qkey if rqkey & 0x8000_0000 else rqkey
        pkeys = port.pkeys
        pkey = pkeys[self.pkey_index] if self.pkey_index < len(pkeys) else 0
        attr = ah.attr
        dlid = attr.dlid
        mcast = MCAST_BASE <= dlid < PERMISSIVE
        dest_qp = MULTICAST_QPN if mcast else wr.remote_qpn
        lid = port.lid
        imm = wr.opcode == _SEND_WITH_IMM
        if imm:
            t = None
        else:
            key = (self.qp_num << 24 | dest_qp, qkey, pkey, lid)
            last = ah._last
            if last is not None and last[0] == key:
                t = last[1]
            else:
                t = ah.template(self.qp_num, qkey, pkey, dest_qp)
                ah._last = (key, t)
        fabric = self.ctx.fabric
        local = not mcast and lid and lid <= dlid < lid + (1 << port.lmc)
        scq, qpn, hlen = self.scq, self.qp_num, len(head)
        signaled = (self.sq_sig_all or wr.send_flags & _SIGNALED) and not quiet
        every = 0 if self.sq_sig_all else signal_mask
        if segs is not None:
            if segs.count > 1 and t is not None and not mcast and not local \
                    and hlen + segs.hl + segs.mss <= limit \
                    and fabric.transmit_burst(port, LsoBurst(t, head, segs)):
                return
            payloads = segs.cut()
        if t is not None and not mcast and not local and len(payloads) >= CHAIN_MIN \
                and hlen + max(map(len, payloads)) <= limit:
            # the chain as a whole: every packet fits, one template, one route
            fabric.transmit_chain(port, t.packets_sg(head, payloads))
            if signaled:
                ids = range(first_wr_id, first_wr_id + len(payloads))
                scq.extend([(i, _SUCCESS, _OP_SEND, hlen + len(p), qpn, 0, 0, 0, 0, 0, 0, 0,
                             None, b"") for i, p in zip(ids, payloads, strict=True)
                            if not i & every])
            return
        wr_id = first_wr_id
        pkts: list[bytes] = []
        done: list[WC | WcTuple] = []
        for payload in payloads:
            n = hlen + len(payload)
            if n > limit:
                done.append(WC(wr_id, _LOC_LEN_ERR, _OP_SEND, n, qpn))
                wr_id += 1
                continue
            if t is not None:
                pkt = t.packet_sg(head, payload)
            else:
                pkt = build_ud(vl=0, sl=attr.sl, dlid=dlid, slid=lid | attr.src_path_bits,
                               pkey=pkey, dest_qp=dest_qp, qkey=qkey, src_qp=qpn,
                               payload=head + payload, grh=ah._grh(), imm=wr.imm_data)
            if mcast:
                port.xmit_mcast += 1
                mcast_deliver(self.node, port, pkt, dlid, self)
            pkts.append(pkt)
            if signaled and not wr_id & every:
                done.append((wr_id, _SUCCESS, _OP_SEND, n, qpn, 0, 0, 0, 0, 0, 0, 0, None,
                             b""))
            wr_id += 1
        if local:
            for pkt in pkts:
                fabric.loopback(port, pkt)
        else:
            fabric.transmit_list(port, pkts)
        for wc in done:  # the chain's completions, once its packets have left
            scq.push(wc)

    # multicast

    def attach_mcast(self, gid: bytes, lid: int) -> None:
        """Receive packets sent to multicast group (``gid``, ``lid``) on this QP's port."""
        if not MCAST_BASE <= lid < PERMISSIVE:
            raise VerbsError(f"{lid:#x} is not a multicast LID")
        members = self.node.mcast[self.port_num].setdefault(lid, [])
        entry = (self, bytes(gid))
        if entry not in members:
            members.append(entry)
        self.mcast.add((bytes(gid), lid))

    def detach_mcast(self, gid: bytes, lid: int) -> None:
        """Stop receiving the group."""
        table = self.node.mcast[self.port_num]
        members = table.get(lid, [])
        entry = (self, bytes(gid))
        if entry in members:
            members.remove(entry)
            if not members:
                del table[lid]
        self.mcast.discard((bytes(gid), lid))

    # receive

    def deliver(self, port: Port, pkt: bytes, off: int) -> None:
        """Take a UD packet addressed to this QP (headers checked by :func:`receive`; BTH at
        ``off``): its fields read in place (wire-formats.md §1.3-1.4), then :meth:`accept`."""
        imm = pkt[off] == OP_UD_SEND_ONLY_IMM
        s = off + 17
        self.accept(
            port, pkt, off + (24 if imm else 20), pkt[1] >> 4, pkt[2] << 8 | pkt[3],
            pkt[6] << 8 | pkt[7], pkt[off + 2] << 8 | pkt[off + 3],
            int.from_bytes(pkt[off + 12:off + 16], "big"),
            pkt[s] << 16 | pkt[s + 1] << 8 | pkt[s + 2], pkt[off + 1] >> 4 & 3,
            pkt[LRH_SIZE:LRH_SIZE + GRH_SIZE] if pkt[1] & 3 == LNH_GLOBAL else None,
            int.from_bytes(pkt[off + 20:off + 24], "big") if imm else None)

    def accept(self, port: Port, pkt: bytes, start: int, sl: int, dlid: int, slid: int,
               pkey: int, qkey: int, src_qp: int, pad: int, grh: bytes | None,
               imm: int | None) -> None:
        """The QP's checks on a packet for it, then the receive completion: P_Key, Q_Key,
        MTU, a posted receive big enough. The payload (from ``start`` to the pad) is copied
        only once a receive buffer is known to be there."""
        end = len(pkt) - pad
        if self.admits(port, pkey, qkey, end - start):
            self.complete(port, pkt, start, end, sl, dlid, slid, src_qp, grh, imm)

    def admits(self, port: Port, pkey: int, qkey: int, length: int, *,
               count: bool = True) -> bool:
        """The checks that depend on the headers alone (QP state and port, P_Key, Q_Key,
        MTU), each failure counted at ``port`` (unless not ``count``: a question asked
        before a packet is taken)."""
        if not self._rx_ok or self.port_num != port.num:
            if count:
                port.drops["no_qp"] += 1
            return False
        pkeys = port.pkeys
        mine = pkeys[self.pkey_index] if self.pkey_index < len(pkeys) else 0
        if pkey & 0x7FFF != mine & 0x7FFF or not (pkey | mine) & 0x8000 or not pkey & 0x7FFF:
            if count:
                port.drops["bad_pkey"] += 1
                port.pkey_violations = min(port.pkey_violations + 1, 0xFFFF)
            return False
        if qkey != self.qkey:
            if count:
                port.drops["bad_qkey"] += 1
                port.qkey_violations = min(port.qkey_violations + 1, 0xFFFF)
            return False
        if length > 128 << min(port.neighbor_mtu, port.mtu_cap):
            if count:
                port.drops["mtu_exceeded"] += 1
            return False
        return True

    def complete_burst(self, port: Port, burst: LsoBurst) -> bool:
        """Complete every packet of ``burst`` at once (one :class:`~.burst.RecvBurst`) when
        this QP admits them all and has a receive posted for each, big enough, and room for
        all in its CQ; else False, with nothing done or counted (the caller cuts it)."""
        t = burst.template
        n = burst.count
        rq, cq = self.rq, self.rcq
        if len(rq) < n or cq.cqe - len(cq) < n \
                or not self.admits(port, t.pkey, t.qkey, burst.largest, count=False):
            return False
        byte_len = GRH_SIZE + burst.largest
        wrs = [rq.popleft() for _ in range(n)]
        if any(wr.length < byte_len for wr in wrs):
            rq.extendleft(reversed(wrs))
            return False
        cq.add_burst(RecvBurst(burst, wrs, self.qp_num, t.src_qp, self.pkey_index, t.slid,
                               t.sl, t.dlid & ((1 << port.lmc) - 1)))
        return True

    def complete_run(self, port: Port, pkts: Sequence[bytes], start: int, end: int, sl: int,
                     dlid: int, slid: int, src_qp: int) -> None:
        """:meth:`complete` for admitted packets of one unicast chain without GRH (same
        headers, same length): a posted receive each while there are any, the completions
        queued together while the CQ has room."""
        rq = self.rq
        byte_len = GRH_SIZE + end - start
        take = min(len(pkts), len(rq))
        wrs = [rq.popleft() for _ in range(take)]
        if any(wr.length < byte_len for wr in wrs):  # a receive too small: one by one
            rq.extendleft(reversed(wrs))
            for pkt in pkts:
                self.complete(port, pkt, start, end, sl, dlid, slid, src_qp, None, None)
            return
        if len(pkts) > take:
            port.drops["no_recv_wr"] += len(pkts) - take
        cq = self.rcq
        entries = cq._entries
        room = max(cq.cqe - len(cq), 0)
        if take > room:
            cq.overflows += take - room
            port.drops["cq_overflow"] += take - room
            wrs = wrs[:room]
        if not wrs:
            return
        qpn, pki, bits = self.qp_num, self.pkey_index, dlid & ((1 << port.lmc) - 1)
        entries.extend([(wr.wr_id, _SUCCESS, _OP_RECV, byte_len, qpn, src_qp, pki, slid, sl,
                         bits, 0, 0, None, pkt[start:end]) for wr, pkt in zip(wrs, pkts)])
        if cq._armed and cq.comp_handler is not None:
            cq._notify()

    def complete(self, port: Port, pkt: bytes, start: int, end: int, sl: int, dlid: int,
                 slid: int, src_qp: int, grh: bytes | None, imm: int | None) -> None:
        """Consume a posted receive for an admitted packet and queue its completion."""
        rq = self.rq
        if not rq:
            port.drops["no_recv_wr"] += 1
            return
        wr = rq.popleft()
        byte_len = GRH_SIZE + end - start
        cq = self.rcq
        if byte_len > wr.length:
            port.drops["recv_too_small"] += 1
            cq.push(WC(wr.wr_id, _LOC_LEN_ERR, _OP_RECV, byte_len, self.qp_num))
            return
        entries = cq._entries
        if len(cq) >= cq.cqe:
            cq.overflows += 1
            port.drops["cq_overflow"] += 1
            return
        if grh is None and imm is None and dlid < MCAST_BASE:
            entries.append((wr.wr_id, _SUCCESS, _OP_RECV, byte_len, self.qp_num, src_qp,
                            self.pkey_index, slid, sl, dlid & ((1 << port.lmc) - 1), 0, 0,
                            None, pkt[start:end]))
        else:
            entries.append((
                wr.wr_id, _SUCCESS, _OP_RECV, byte_len, self.qp_num, src_qp, self.pkey_index,
                slid, sl, dlid & ((1 << port.lmc) - 1) if dlid < MCAST_BASE else 0,
                (0 if grh is None else _WC_GRH) | (0 if imm is None else _WC_WITH_IMM),
                imm or 0, grh, pkt[start:end]))
        if cq._armed and cq.comp_handler is not None:
            cq._notify()


__all__ = [
    "AH", "CQ", "PD", "QP", "WC", "AHAttr", "AsyncEvent", "Context", "DeviceAttr", "DeviceCapFlags",
    "GlobalRoute", "PortAttr", "QPAttr", "QPAttrMask", "QPCap", "QPCreateFlags", "QPInitAttr",
    "QPState", "QPType", "RecvWR", "SendFlags", "SendWR", "VerbsError", "WCFlags", "WCOpcode",
    "WCStatus", "WROpcode",
]
