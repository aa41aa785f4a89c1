"""The MAD layer of a node: QP0/QP1 receive checks, built-in SMA/PMA, agents, traps.

What a MAD meets when it reaches a node (the Linux MAD layer's order, ``ib_mad.c``):

1. QP checks: QP0 only on VL15 and VL15 only to QP0; QP1 checks the GSI Q_Key and the
   P_Key (drops counted, PortInfo Q_KeyViolations/P_KeyViolations incremented).
2. Directed-route SMPs go through the C14-9/C14-13 rules (:mod:`.sma`) and may be passed on.
3. Requests the built-in agents know are answered by them: the SMA (every SMP attribute but
   SMInfo and traps) and the PMA (all of class 0x04).
4. Other requests go to the :class:`MadAgent` serving the class's requests on that port;
   with none, a Get or Set is answered "unsupported" (status 0x000C, Linux
   ``generate_unmatched_resp``) and anything else is dropped (``no_agent``).
5. Responses go to the agent whose id is the high 32 bits of the TID (the sending agent
   stamps it there, as the Linux MAD layer does); TrapRepress cancels a pending trap.

Agent handlers are called deferred (from :meth:`Fabric.process`); without a handler the
MADs queue on the agent for :meth:`MadAgent.recv`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from ..wire.errors import DecodeError
from ..wire.ib import (
    GSI_QKEY,
    LNH_GLOBAL,
    LRH_SIZE,
    UdTemplate,
    bth_dest_qp,
    bth_pkey,
    build_ud,
    check_ud,
    deth_qkey,
    deth_src_qp,
    lrh_dlid,
    lrh_sl,
    lrh_slid,
    ud_payload,
)
from ..wire.mad import (
    DR_INITIAL_PATH_OFFSET,
    DR_RETURN_PATH_OFFSET,
    MAD_SIZE,
    MAX_HOP_COUNT,
    RESPONSE_BIT,
    DrSmpHeader,
    MadStatus,
    Method,
    MgmtClass,
    build_smp,
    dr_direction,
    dr_slid,
    is_response,
    mad_base_version,
    mad_class,
    mad_method,
    mad_tid,
    make_response,
    with_header,
)
from ..wire.smp import SmpAttr, trap_128
from . import pma, sma
from .node import CAP_IS_SM, Node, Port, Switch

if TYPE_CHECKING:
    from .fabric import Fabric

PERMISSIVE = 0xFFFF
SMI_CLASSES = (MgmtClass.SUBN_LID_ROUTED, MgmtClass.SUBN_DIRECTED_ROUTE)
TRAP_REPEATS = 4
"""Trap 128 is sent at most this many more times while no TrapRepress comes back."""
TRAP_MIN_INTERVAL = 1.0
"""Seconds between trap repeats, at least (IBA uses 4.096 us * 2^SubnetTimeOut)."""

_DR_HEADER = UdTemplate(vl=15, sl=0, dlid=PERMISSIVE, slid=PERMISSIVE, pkey=0xFFFF, dest_qp=0,
                        qkey=0, src_qp=0).header(MAD_SIZE)
"""LRH, BTH and DETH of a directed-route SMP between permissive LIDs: the packet every hop of
a directed part carries (:func:`_dr_packet`), so a switch passing one on need not rebuild it."""
_M = len(_DR_HEADER)
_DR_LEN = _M + MAD_SIZE
(_CLASS_B, _METHOD_B, _D_B, _HP_B, _HC_B, _TID_B, _DRSLID_B, _DRDLID_B) = (
    DrSmpHeader.BY_NAME[f].byte for f in ("mgmt_class", "method", "direction", "hop_pointer",
                                          "hop_count", "tid", "dr_slid", "dr_dlid"))
"""Byte offsets in a DR SMP, from its declared header."""
_METHOD, _D, _HP, _HC, _TID, _DRSLID, _DRDLID = (
    _M + b for b in (_METHOD_B, _D_B, _HP_B, _HC_B, _TID_B, _DRSLID_B, _DRDLID_B))
"""The same offsets in a packet that starts with :data:`_DR_HEADER`."""
_IPATH = _M + DR_INITIAL_PATH_OFFSET
_RPATH = _M + DR_RETURN_PATH_OFFSET
_DR_CLASS = int(MgmtClass.SUBN_DIRECTED_ROUTE)
_DR_PREFIX = DR_PREFIX = _DR_HEADER + DrSmpHeader().encode()[:_CLASS_B + 1]
""":data:`_DR_HEADER` and a DR SMP's BaseVersion and MgmtClass: what the fast paths take."""
DR_LEN = _DR_LEN
_SEND_RESERVED = tuple((_M + a, _M + e, z) for a, e, z in sma.DR_RESERVED)
"""The reserved runs of the DR header at their places in a packet (cleared on send)."""
_TRAP_REPRESS = int(Method.TRAP_REPRESS)


_new_tuple = tuple.__new__
"""A named tuple made from all its values without its generated ``__new__`` (one per MAD)."""


class ReceivedMad(NamedTuple):
    """A MAD as an agent receives it, with the addressing an answer needs (a named tuple:
    one is made per MAD received, a sweep's worth, at a quarter of a frozen dataclass's
    cost)."""

    mad: bytes
    port_num: int
    """The port of the agent (a switch's management port is 0)."""
    in_port: int
    """The physical port it came in on (equals ``port_num`` on a CA)."""
    slid: int
    dlid: int
    sl: int
    src_qp: int
    dest_qp: int
    pkey: int
    qkey: int
    grh: bytes | None = None


class MadAgent:
    """A registration for one management class on one port (``umad_register``).

    Every agent receives the responses to the requests it sent: they carry its id in TID
    bits 63-32. Unsolicited MADs (requests, traps) of the class reach only an agent
    registered with ``requests=True`` (Linux: a method mask), at most one per port and
    class; a client such as an SA or PMA client leaves it False, a server (SM, SA) sets it.
    An SMI agent serving requests is an SM: while one is registered the port reports
    CapabilityMask.IsSM (ibsim sets it for its issm client; on Linux, opening ``issmN``).
    ``handler`` is called (deferred) with each :class:`ReceivedMad`; without one, MADs
    queue for :meth:`recv`.
    """

    def __init__(
        self, fabric: Fabric, node: Node, port_num: int, mgmt_class: int,
        class_version: int = 1, handler: Callable[[ReceivedMad], None] | None = None,
        *, requests: bool = False,
    ) -> None:
        node.port(port_num)
        key = (port_num, mgmt_class)
        if requests and key in node.agents:
            raise ValueError(f"{node.name} port {port_num} already has an agent serving "
                             f"class {mgmt_class:#04x} requests")
        self.fabric = fabric
        self.node = node
        self.port_num = port_num
        self.mgmt_class = mgmt_class
        self.class_version = class_version
        self.handler = handler
        self.queue: deque[ReceivedMad] = deque()
        self.requests = requests
        self.agent_id = node.next_agent_id
        node.next_agent_id += 1
        if requests:
            node.agents[key] = self
            if mgmt_class in SMI_CLASSES:
                set_issm(node.ports[port_num], True)
        node.agent_ids[self.agent_id] = self
        self.closed = False

    def __repr__(self) -> str:
        return (f"<MadAgent {self.node.name}/{self.port_num} class={self.mgmt_class:#04x} "
                f"id={self.agent_id}>")

    @property
    def port(self) -> Port:
        """The port this agent sends from and listens on."""
        return self.node.ports[self.port_num]

    def close(self) -> None:
        """Unregister; MADs for this agent are then dropped (``no_agent``)."""
        if not self.closed:
            self.closed = True
            if self.node.agents.get((self.port_num, self.mgmt_class)) is self:
                del self.node.agents[(self.port_num, self.mgmt_class)]
                if self.mgmt_class in SMI_CLASSES and not any(
                        (self.port_num, c) in self.node.agents for c in SMI_CLASSES):
                    set_issm(self.port, False)
            self.node.agent_ids.pop(self.agent_id, None)

    def recv(self) -> ReceivedMad | None:
        """The oldest queued MAD, or None (agents without a handler)."""
        return self.queue.popleft() if self.queue else None

    def deliver(self, rx: ReceivedMad) -> None:
        """Hand a received MAD to the owner: deferred handler call, or the queue."""
        if self.handler is None:
            self.queue.append(rx)
        else:
            self.fabric.defer(partial(self.handler, rx))

    def send(
        self, mad: bytes, *, dlid: int = PERMISSIVE, dqp: int | None = None,
        qkey: int | None = None, pkey: int | None = None, sl: int = 0,
    ) -> int:
        """Send ``mad`` and return its TID. A request's TID gets this agent's id in bits
        63-32. SMPs go on QP0/VL15 (a DR SMP follows its InitialPath from this port, the
        C14-9:1 increment done here as the kernel SMI does); GMPs on QP1 with the GSI Q_Key
        unless ``qkey`` says otherwise. ``dlid`` is the LID for LID-routed MADs (and for the
        first, LID-routed segment of a DR SMP whose DrSLID is not permissive)."""
        if self.closed:
            raise ValueError("agent is closed")
        if (len(mad) == MAD_SIZE and mad[_CLASS_B] == _DR_CLASS and mad[_HP_B] == 0
                and not mad[_D_B] & 0x80 and 0 < mad[_HC_B] <= MAX_HOP_COUNT
                and not mad[_METHOD_B] & RESPONSE_BIT and mad[_METHOD_B] != _TRAP_REPRESS
                and mad[_DRSLID_B:_DRSLID_B + 2] == b"\xff\xff"):
            # a request starting its directed part here (C14-9:1): the common case, in one
            # header patch; the same packet as the general path below
            agent_id = self.agent_id
            tid = agent_id << 32 | int.from_bytes(mad[_TID_B + 4:_TID_B + 8], "big")
            node = self.node
            out = mad[DR_INITIAL_PATH_OFFSET + 1] if isinstance(node, Switch) \
                else self.port_num
            if 1 <= out <= node.nports:
                buf = bytearray(_DR_HEADER)
                buf += mad
                buf[_TID:_TID + 4] = agent_id.to_bytes(4, "big")
                buf[_HP] = 1
                for a, e, zeros in _SEND_RESERVED:  # as with_header re-encodes the header
                    buf[a:e] = zeros
                self.fabric.transmit_dr(node.ports[out], buf)
            else:
                node.drops["dr_discard"] += 1
            return tid
        return self._send(mad, dlid, dqp, qkey, pkey, sl)

    def _send(self, mad: bytes, dlid: int, dqp: int | None, qkey: int | None,
              pkey: int | None, sl: int) -> int:
        if not is_response(mad_method(mad)):
            tid = self.agent_id << 32 | (mad_tid(mad) & 0xFFFF_FFFF)
            mad = with_header(mad, tid=tid)
        tid = mad_tid(mad)
        port = self.port
        cls = mad_class(mad)
        qp0 = cls in SMI_CLASSES
        if cls == MgmtClass.SUBN_DIRECTED_ROUTE:
            if dr_direction(mad):
                act = sma.dr_respond(self.node, mad, dlid)
            elif dr_slid(mad) == PERMISSIVE:
                act = sma.dr_send(self.node, mad)
                if act[0] == sma.DR_PORT and not self.node.is_switch:
                    act = (sma.DR_PORT, act[1], self.port_num)  # a CA sends from its port
            else:
                act = (sma.DR_LID, mad, dlid)
            rx = _self_rx(mad, port, port.num)
            dr_act(self.fabric, self.node, port, act, rx)
            return tid
        if pkey is None:
            pkey = port.pkeys[0] if port.pkeys else 0xFFFF
        if qkey is None or qkey & 0x8000_0000:
            qkey = 0 if qp0 else GSI_QKEY
        if dqp is None:
            dqp = 0 if qp0 else 1
        pkt = build_ud(vl=15 if qp0 else 0, sl=sl, dlid=dlid, slid=_slid(self.node, port),
                       pkey=pkey, dest_qp=dqp, qkey=qkey, src_qp=0 if qp0 else 1, payload=mad)
        send_from(self.fabric, self.node, port, pkt, dlid)
        return tid

    def respond(self, request: ReceivedMad, mad: bytes) -> None:
        """Send the response ``mad`` back to where ``request`` came from."""
        reply(self.fabric, self.node, self.port, mad, request, delay=False)


def _slid(node: Node, port: Port) -> int:
    return node.ports[0].lid if node.is_switch else port.lid


def _self_rx(mad: bytes, port: Port, in_port: int) -> ReceivedMad:
    lid = _slid(port.node, port)
    return ReceivedMad(mad, port.num, in_port, lid, lid, 0, 0, 0, 0xFFFF, 0)


def send_from(fabric: Fabric, node: Node, port: Port, pkt: bytes, dlid: int) -> None:
    """Send a packet a node originates: a switch by its LFT, a CA out of ``port`` (or
    looped back inside the HCA when ``dlid`` is the port's own LID)."""
    if node.is_switch:
        fabric.route_from(node, pkt)
    elif port.owns_lid(dlid):
        fabric.loopback(port, pkt)
    else:
        fabric.transmit(port, pkt)


def _dr_packet(mad: bytes, dlid: int = PERMISSIVE, slid: int = PERMISSIVE) -> bytes:
    if dlid == PERMISSIVE and slid == PERMISSIVE and len(mad) == MAD_SIZE:
        return _DR_HEADER + mad
    return build_ud(vl=15, sl=0, dlid=dlid, slid=slid, pkey=0xFFFF, dest_qp=0, qkey=0,
                    src_qp=0, payload=mad)


def _dr_fast(fabric: Fabric, node: Node, port: Port, pkt: bytes, in_port: int) -> bool:
    """The common cases of a DR SMP reaching ``node`` (:func:`dr_hop`), done on a copy of
    the packet bytes; True when handled. Only the header every DR hop sends
    (:data:`_DR_HEADER`) with a whole MAD qualifies; anything else is left to the general
    path (:func:`sma.dr_receive`, :func:`dr_act`, :func:`local`): False, with nothing done.
    """
    if len(pkt) != _DR_LEN or not pkt.startswith(_DR_PREFIX):
        return False
    buf = bytearray(pkt)
    out = dr_hop(fabric, node, port, buf, in_port)
    if out < 0:
        return False
    if out:
        fabric.transmit_dr(node.ports[out], buf)
    return True


def dr_hop(fabric: Fabric, node: Node, port: Port, buf: bytearray, in_port: int) -> int:
    """What ``node`` does with the DR SMP ``buf`` (a packet that starts with
    :data:`_DR_PREFIX`, :data:`_DR_LEN` bytes) that arrived on ``in_port``, done in place
    (``port``: the node's management side). A sweep is made of these, and each is what the
    general path (:func:`sma.dr_receive`, :func:`dr_act`, :func:`local`) does with the same
    packet:

    - a switch in the middle of the directed part passes it on: C14-9:2 outbound
      (ReturnPath[HopPointer] = ``in_port``, HopPointer + 1), C14-13:2 returning
      (HopPointer - 1);
    - the end of an outbound directed part (C14-9:3, DrDLID permissive) is a request for the
      SMA: answered (C14-13:1) back out of ``in_port``, unless the node delays its answers;
    - the end of a returning directed part (C14-13:3, DrSLID permissive) is a response for
      the agent whose id is in the TID.

    Returns the port to send ``buf`` out of next; 0 when it ends here (delivered, discarded
    and counted); -1, with ``buf`` untouched, for anything else (other headers' cases,
    LID-routed ends, traps, bad counts, delayed answers): the general path's to take.
    """
    hp, hc = buf[_HP], buf[_HC]
    if hc > MAX_HOP_COUNT or in_port > 0xFF:
        return -1
    if buf[_D] & 0x80:
        if 2 <= hp <= hc:
            if not isinstance(node, Switch):
                return -1
            out = buf[_RPATH + hp - 1]
            buf[_HP] = hp - 1
        elif hp == 1 and buf[_DRSLID] == 0xFF and buf[_DRSLID + 1] == 0xFF:
            if not buf[_METHOD] & RESPONSE_BIT:
                return -1
            buf[_HP] = 0
            agent = node.agent_ids.get(int.from_bytes(buf[_TID:_TID + 4], "big"))
            if agent is None or agent.port_num != port.num:
                node.drops["unmatched_response"] += 1
            else:
                agent.deliver(_new_tuple(ReceivedMad, (bytes(buf[_M:]), port.num, in_port,
                                                       PERMISSIVE, PERMISSIVE, 0, 0, 0,
                                                       0xFFFF, 0, None)))
            return 0
        else:
            return -1
    elif hp < hc:
        if hp == 0 or not isinstance(node, Switch):
            return -1
        out = buf[_IPATH + hp + 1]
        buf[_HP] = hp + 1
        buf[_RPATH + hp] = in_port
    elif (hp == hc and hc and buf[_DRDLID] == 0xFF and buf[_DRDLID + 1] == 0xFF
          and not is_response(buf[_METHOD]) and node.mad_delay <= 0):
        was = buf[_RPATH + hp]
        buf[_HP] = hp + 1
        buf[_RPATH + hp] = in_port
        answered = sma.answer_dr(node, in_port, buf, _M)
        if answered < 0:  # not for the SMA (SMInfo, traps): the general path finds an agent
            buf[_HP], buf[_RPATH + hp] = hp, was
            return -1
        if not answered:
            return 0
        buf[_HP] = hc  # C14-13:1: the responder starts the return at HopCount
        out = in_port  # ReturnPath[HopCount], written above
    else:
        return -1
    if 1 <= out <= node.nports:
        return out
    node.drops["dr_discard"] += 1
    return 0


def dr_act(fabric: Fabric, node: Node, port: Port, act: sma.DrAction, rx: ReceivedMad) -> None:
    """Carry out a directed-route decision at ``node`` (``port``: its management side)."""
    action, mad, arg = act
    if action == sma.DR_DISCARD:
        node.drops["dr_discard"] += 1
    elif action == sma.DR_LOCAL:
        local(fabric, node, port, mad, rx)
    elif action == sma.DR_PORT:
        if not 1 <= arg <= node.nports:
            node.drops["dr_discard"] += 1
            return
        fabric.transmit(node.ports[arg], _dr_packet(mad))
    else:
        out = port if not node.is_switch else node.ports[0]
        send_from(fabric, node, out, _dr_packet(mad, arg, _slid(node, out)), arg)


def receive(fabric: Fabric, node: Node, port: Port, pkt: bytes, in_port: int) -> None:
    """A packet for QP0/QP1 of ``node`` (``port``: a CA port, or a switch's port 0)."""
    if _dr_fast(fabric, node, port, pkt, in_port):
        return
    try:
        off = check_ud(pkt)
    except DecodeError:
        port.drops["malformed"] += 1
        return
    receive_checked(fabric, node, port, pkt, off, in_port)


def receive_checked(fabric: Fabric, node: Node, port: Port, pkt: bytes, off: int,
                    in_port: int) -> None:
    """:func:`receive` for a packet that passed ``check_ud`` (BTH at ``off``)."""
    if not _dr_fast(fabric, node, port, pkt, in_port):
        _receive_general(fabric, node, port, pkt, off, in_port)


def _receive_general(fabric: Fabric, node: Node, port: Port, pkt: bytes, off: int,
                     in_port: int) -> None:
    vl15 = pkt[0] >> 4 == 15
    dqp = bth_dest_qp(pkt, off)
    qkey = deth_qkey(pkt, off)
    pkey = bth_pkey(pkt, off)
    if dqp == 0:
        if not vl15:
            port.drops["qp0_not_vl15"] += 1
            return
    elif vl15:
        port.drops["vl15_not_qp0"] += 1
        return
    elif dqp == 1:
        if qkey != GSI_QKEY:
            port.drops["bad_qkey"] += 1
            port.qkey_violations = min(port.qkey_violations + 1, 0xFFFF)
            return
        if port.pkey_index(pkey) is None:
            port.drops["bad_pkey"] += 1
            port.pkey_violations = min(port.pkey_violations + 1, 0xFFFF)
            return
    else:
        port.drops["no_qp"] += 1
        return
    mad = ud_payload(pkt, off)
    if len(mad) < 24 or mad_base_version(mad) != 1:
        node.drops["bad_mad"] += 1
        return
    cls = mad_class(mad)
    if (cls in SMI_CLASSES) != (dqp == 0):
        node.drops["bad_mad"] += 1
        return
    grh = pkt[LRH_SIZE:off] if pkt[1] & 3 == LNH_GLOBAL else None
    rx = ReceivedMad(mad, port.num, in_port, lrh_slid(pkt), lrh_dlid(pkt), lrh_sl(pkt),
                     deth_src_qp(pkt, off), dqp, pkey, qkey, grh)
    if cls == MgmtClass.SUBN_DIRECTED_ROUTE:
        act = sma.dr_receive(node, in_port, mad, lid_routed=rx.dlid != PERMISSIVE)
        dr_act(fabric, node, port, act, rx)
    else:
        local(fabric, node, port, mad, rx)


def local(fabric: Fabric, node: Node, port: Port, mad: bytes, rx: ReceivedMad) -> None:
    """Dispatch a MAD addressed to this node: built-in agents, registered agents, or the
    "unsupported" answer."""
    if rx.mad is not mad:
        rx = ReceivedMad(mad, rx.port_num, rx.in_port, rx.slid, rx.dlid, rx.sl, rx.src_qp,
                         rx.dest_qp, rx.pkey, rx.qkey, rx.grh)
    method = mad_method(mad)
    cls = mad_class(mad)
    if is_response(method):
        tid = mad_tid(mad)
        if method == Method.TRAP_REPRESS and tid in node.traps:
            node.traps.pop(tid).cancel()
            return
        agent = node.agent_ids.get(tid >> 32)
        if agent is None or agent.port_num != port.num:
            node.drops["unmatched_response"] += 1
            return
        agent.deliver(rx)
        return
    resp: bytes | None = None
    if cls in SMI_CLASSES:
        resp = sma.process_smp(node, rx.in_port, mad)
    elif cls == MgmtClass.PERF_MGMT:
        resp = pma.process_pma(node, rx.in_port, mad)
    if resp == sma.DISCARD:
        return
    if resp is not None:
        reply(fabric, node, port, resp, rx, delay=True)
        return
    agent = node.agents.get((port.num, cls))
    if agent is not None:
        agent.deliver(rx)
    elif method in (Method.GET, Method.SET):
        reply(fabric, node, port, make_response(mad, status=MadStatus.METHOD_ATTR_UNSUPPORTED),
              rx, delay=True)
    else:
        node.drops["no_agent"] += 1


def reply(fabric: Fabric, node: Node, port: Port, resp: bytes, rx: ReceivedMad, *,
          delay: bool) -> None:
    """Send ``resp`` back to the sender of ``rx``; built-in agents honour the node's MAD
    delay fault."""
    if delay and node.mad_delay > 0:
        fabric.schedule(fabric.now + node.mad_delay,
                        lambda: _send_reply(fabric, node, port, resp, rx))
    else:
        _send_reply(fabric, node, port, resp, rx)


def _send_reply(fabric: Fabric, node: Node, port: Port, resp: bytes, rx: ReceivedMad) -> None:
    if mad_class(resp) == MgmtClass.SUBN_DIRECTED_ROUTE:
        dr_act(fabric, node, port, sma.dr_respond(node, resp, rx.slid), rx)
        return
    qp0 = rx.dest_qp == 0
    slid = _slid(node, port)
    if port.owns_lid(rx.dlid):
        slid = rx.dlid  # answer from the LID (of the LMC range) that was asked
    pkt = build_ud(vl=15 if qp0 else 0, sl=rx.sl, dlid=rx.slid, slid=slid, pkey=rx.pkey,
                   dest_qp=rx.src_qp, qkey=0 if qp0 else GSI_QKEY, src_qp=rx.dest_qp,
                   payload=resp)
    send_from(fabric, node, port, pkt, rx.slid)


# --- IsSM and traps ----------------------------------------------------------------------------


def set_issm(port: Port, on: bool) -> None:
    """Set or clear CapabilityMask.IsSM on ``port`` (an SM starting or stopping there)."""
    if on:
        port.cap_mask |= CAP_IS_SM
    else:
        port.cap_mask &= ~CAP_IS_SM


def send_trap_128(fabric: Fabric, sw: Node) -> None:
    """Trap 128 (link state change) from switch ``sw`` to its master SM, LID-routed, repeated
    until TrapRepress (at most :data:`TRAP_REPEATS` times). Nothing is sent before an SM
    has given the switch a LID and set its MasterSMLID (as ibsim)."""
    p0 = sw.ports[0]
    if not p0.lid or not p0.master_sm_lid:
        return
    tid = sw.alloc_tid()
    mad = build_smp(Method.TRAP, SmpAttr.NOTICE, 0, tid, trap_128(p0.lid).smp_data())
    interval = max(4.096e-6 * (1 << p0.subnet_timeout), TRAP_MIN_INTERVAL)

    def fire(left: int) -> None:
        sm_lid = p0.master_sm_lid
        if not sm_lid or not p0.lid:
            sw.traps.pop(tid, None)
            return
        pkt = build_ud(vl=15, sl=p0.master_sm_sl, dlid=sm_lid, slid=p0.lid, pkey=0xFFFF,
                       dest_qp=0, qkey=0, src_qp=0, payload=mad)
        if left > 0:
            sw.traps[tid] = fabric.schedule(fabric.now + interval, lambda: fire(left - 1))
        else:
            sw.traps.pop(tid, None)
        fabric.route_from(sw, pkt)

    fire(TRAP_REPEATS)
