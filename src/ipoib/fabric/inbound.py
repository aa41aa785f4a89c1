"""What arrives at a CA port: a MAD for QP0/QP1, a data packet for a QP, or a multicast packet
for the QPs attached to its group (IBA 9.6, 10.5). The checks and completions are the QP's
(:class:`~ipoib.fabric.hca.QP`); this is the port's part: reading the packet once, finding
whom it is for, and counting at the port every packet nobody takes.

A unicast data packet without GRH is read with one unpack (:func:`~ipoib.wire.ib.peek_ud`);
a chain of them on one cached route (:func:`receive_run`) is read once for all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..wire.errors import DecodeError
from ..wire.ib import (
    LNH_GLOBAL,
    LRH_SIZE,
    MCAST_LID_BASE,
    MULTICAST_QPN,
    PERMISSIVE_LID,
    UD_HEADER_SIZE,
    check_ud,
    peek_ud,
)
from . import agents
from .node import Ca, Node, Port
from .verbs import QPCreateFlags

if TYPE_CHECKING:
    from .burst import LsoBurst
    from .fabric import Fabric
    from .hca import QP

CHAIN_MIN = 4
"""Packets from which a chain (one address handle, one route) is built, carried and
completed as a whole: below that, the comprehensions cost more than they save and each
packet goes on its own."""


def mcast_deliver(node: Ca, port: Port, pkt: bytes, mlid: int, sender: QP | None) -> None:
    """Give a multicast packet to every QP of ``port`` attached to the group (``sender``:
    the QP whose send this is, for the HCA's loopback copy)."""
    members = node.mcast[port.num].get(mlid)
    if not members:
        return
    try:
        off = check_ud(pkt)
    except DecodeError:
        return
    dgid = pkt[LRH_SIZE + 24:LRH_SIZE + 40] if pkt[1] & 3 == LNH_GLOBAL else None
    for qp, gid in list(members):
        if qp is sender and sender is not None \
                and sender.create_flags & QPCreateFlags.BLOCK_SELF_MCAST_LB:
            port.drops["mcast_loopback"] += 1
            continue
        if dgid is None or dgid == gid:
            qp.deliver(port, pkt, off)


def receive(fabric: Fabric, node: Node, port: Port, pkt: bytes) -> None:
    """A packet arriving at a CA port: to QP0/QP1 (MAD layer), a data QP, or a group.

    A unicast data packet without GRH (:func:`~ipoib.wire.ib.peek_ud`) goes straight to its
    QP's :meth:`QP.accept`; everything else takes :func:`_receive`, with the same checks."""
    f = peek_ud(pkt) if len(pkt) > 1 and pkt[1] & 3 != LNH_GLOBAL else None
    if f is None or f[4] <= 1 or f[1] >= MCAST_LID_BASE or not isinstance(node, Ca):
        _receive(fabric, node, port, pkt)
        return
    sl, dlid, slid, pkey, dqp, qkey, src_qp, pad = f
    qp = _unicast_qp(node, port, dlid, dqp)
    if qp is not None:
        qp.accept(port, pkt, UD_HEADER_SIZE, sl, dlid, slid, pkey, qkey, src_qp, pad, None,
                  None)


def _unicast_qp(node: Ca, port: Port, dlid: int, dqp: int) -> QP | None:
    """The QP a unicast packet to (``dlid``, ``dqp``) is for, else None with the drop
    counted: a DLID not among the port's (LMC), or no such QP."""
    base = port.lid
    if not base or not base <= dlid < base + (1 << port.lmc):
        port.drops["not_for_us"] += 1
        return None
    qp = node.qps.get(dqp)
    if qp is None:
        port.drops["no_qp"] += 1
    return qp


def receive_run(fabric: Fabric, node: Node, port: Port, pkts: Sequence[bytes]) -> None:
    """Packets arriving at a CA port in order, exactly as one :func:`receive` each.

    A send chain from one address handle gives packets whose LRH, BTH and DETH repeat the
    first one's but for the PSN: once the first is read and admitted by its QP, each next
    one of the same length with those same header bytes gets the same verdict without being
    read again; only its receive WR and completion are its own. Any other packet takes
    :func:`receive`."""
    first = pkts[0]
    n = len(first)
    f = peek_ud(first) if n > UD_HEADER_SIZE and first[1] & 3 != LNH_GLOBAL else None
    if f is None or f[4] <= 1 or f[1] >= MCAST_LID_BASE or not isinstance(node, Ca) \
            or not port.lid or not port.lid <= f[1] < port.lid + (1 << port.lmc) \
            or f[4] not in node.qps:
        for pkt in pkts:
            receive(fabric, node, port, pkt)
        return
    sl, dlid, slid, pkey, dqp, qkey, src_qp, pad = f
    qp = node.qps[dqp]
    end = n - pad
    admitted = qp.admits(port, pkey, qkey, end - UD_HEADER_SIZE)
    lrh_bth, deth = first[:_PSN], first[_PSN + 3:UD_HEADER_SIZE]
    same: list[bytes] = [first]
    for i in range(1, len(pkts) + 1):
        pkt = pkts[i] if i < len(pkts) else b""
        if len(pkt) == n and pkt.startswith(lrh_bth) and pkt.startswith(deth, _PSN + 3):
            same.append(pkt)
            continue
        if not same:
            pass
        elif admitted and len(same) >= CHAIN_MIN:
            qp.complete_run(port, same, UD_HEADER_SIZE, end, sl, dlid, slid, src_qp)
        elif admitted:
            for p in same:
                qp.complete(port, p, UD_HEADER_SIZE, end, sl, dlid, slid, src_qp, None, None)
        else:  # the first one's refusal is counted; each of the others counts the same
            for _ in range(len(same) - (same[0] is first)):
                qp.admits(port, pkey, qkey, end - UD_HEADER_SIZE)
        same = []
        if pkt:
            receive(fabric, node, port, pkt)


def receive_burst(fabric: Fabric, node: Node, port: Port, burst: LsoBurst) -> None:
    """An LSO send arriving whole at a CA port: completed whole by its QP when that QP takes
    every packet (:meth:`QP.complete_burst`), else cut and received as the chain it is."""
    t = burst.template
    base = port.lid
    if t.lnh != LNH_GLOBAL and isinstance(node, Ca) and t.dest_qp > 1 and base \
            and base <= t.dlid < base + (1 << port.lmc):
        qp = node.qps.get(t.dest_qp)
        if qp is not None and qp.complete_burst(port, burst):
            return
    receive_run(fabric, node, port, burst.packets())


_PSN = LRH_SIZE + 9
"""Where BTH.PSN (3 bytes) sits in a packet without GRH; nothing else differs along a chain."""


def _receive(fabric: Fabric, node: Node, port: Port, pkt: bytes) -> None:
    try:
        off = check_ud(pkt)
    except DecodeError:
        port.drops["malformed"] += 1
        return
    dlid = pkt[2] << 8 | pkt[3]
    dqp = pkt[off + 5] << 16 | pkt[off + 6] << 8 | pkt[off + 7]  # BTH.DestQP
    if dqp <= 1:
        if dlid == PERMISSIVE_LID or port.owns_lid(dlid):
            agents.receive_checked(fabric, node, port, pkt, off, port.num)
        else:
            port.drops["not_for_us"] += 1
        return
    if not isinstance(node, Ca):
        port.drops["no_qp"] += 1
        return
    if dlid >= MCAST_LID_BASE:
        if dlid == PERMISSIVE_LID or dqp != MULTICAST_QPN:
            port.drops["bad_dlid"] += 1
            return
        port.rcv_mcast += 1
        if not node.mcast[port.num].get(dlid):
            port.drops["no_mcast_member"] += 1
            return
        mcast_deliver(node, port, pkt, dlid, None)
        return
    qp = _unicast_qp(node, port, dlid, dqp)
    if qp is not None:
        qp.deliver(port, pkt, off)
