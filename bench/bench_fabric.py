"""Forwarding costs of the simulated subnet (ipoib.fabric): UD packets through switches.

Fabrics are lines of switches (``topogen.line``), brought up by the small
test SM (``tests/fabric/tinysm.py``: DR discovery, LIDs, LFTs, ports ACTIVE) so the packets
take exactly the path an SM-programmed fabric gives them. The packet is a full IPoIB datagram:
LRH + BTH + DETH and a 1504-byte payload, 1532 bytes.

The baseline is the cheapest possible "network": appending the same packet to a deque and
taking it off again. Every figure is given as a multiple of it; the per-hop figure is the
difference between three switches and one, halved.
"""

from __future__ import annotations

import io
from collections import deque
from typing import Any

from tests.fabric.tinysm import TinySm, run_until_idle

from bench.common import Result, ns_per_call
from ipoib.fabric import (
    AH,
    CQ,
    PD,
    QP,
    AHAttr,
    Fabric,
    GlobalRoute,
    QPAttr,
    QPInitAttr,
    QPType,
    RecvWR,
    SendWR,
)
from ipoib.fabric.topogen import line
from ipoib.wire.capture import LINKTYPE_ERF, PcapWriter

BASELINE = "deque append+popleft"
PAYLOAD = bytes(1504)
MLID = 0xC001
MGID = bytes.fromhex("ff12401bffff00000000000000000001")


def _qp(fabric: Fabric, name: str) -> tuple[PD, CQ, QP]:
    ctx = fabric.context(name)
    pd, cq = PD(ctx), CQ(ctx, 1 << 20)
    qp = QP(pd, QPInitAttr(qp_type=QPType.UD, scq=cq, rcq=cq), QPAttr(qkey=0x1B, port_num=1))
    return pd, cq, qp


def _env(switches: int, *, tap: bool = False, mcast: bool = False) -> dict[str, Any]:
    """hca-1 sends to the HCA at the far end: hca-2 on the same switch when there is one
    switch, else the HCA of the last switch."""
    fabric = Fabric(line(switches, 2 if switches == 1 else 1))
    sm = TinySm(fabric, "hca-1").bring_up()
    last = "hca-2" if switches == 1 else f"hca-{switches}"
    if mcast:
        sm.add_mcast(MLID, [("hca-1", 1), (last, 1)])
    run_until_idle(fabric)
    pd, cq, src = _qp(fabric, "hca-1")
    _, dcq, dst = _qp(fabric, last)
    dlid = MLID if mcast else fabric.port(last, 1).lid
    if mcast:
        dst.attach_mcast(MGID, MLID)
        ah = AH(pd, AHAttr(dlid=MLID, is_global=True, gr=GlobalRoute(dgid=MGID)))
    else:
        ah = AH(pd, AHAttr(dlid=dlid))
    wr = SendWR(1, PAYLOAD)
    wr.set_wr_ud(ah, dst.qp_num, 0x1B)
    port = fabric.port("hca-1", 1)
    pkt = ah.template(src.qp_num, 0x1B, 0xFFFF, 0xFF_FFFF if mcast else dst.qp_num).packet(
        PAYLOAD)
    if tap:
        fabric.capture(PcapWriter(io.BytesIO(), LINKTYPE_ERF))
    return {"fabric": fabric, "port": port, "pkt": pkt, "src": src, "dst": dst, "wr": wr,
            "rwr": RecvWR(1, 4096), "cq": cq, "dcq": dcq, "q": deque()}


def run() -> list[Result]:
    """Measure the baseline, the bare fabric at 1 and 3 switches, the verbs round, a
    multicast, and a tapped fabric."""
    one, three = _env(1), _env(3)
    base = ns_per_call("q.append(pkt); q.popleft()", one)
    results = [Result(BASELINE, base, "ns/pkt", BASELINE, base,
                      "the floor: hand the same bytes over through a deque")]

    def add(name: str, stmt: str, env: dict[str, Any], note: str) -> float:
        ns = ns_per_call(stmt, env)
        results.append(Result(name, ns, "ns/pkt", BASELINE, base,
                              f"{note}; {1e9 / ns:,.0f} packets/s"))
        return ns

    # no receive posted: the packet is carried, checked by the QP and dropped (counted)
    t1 = add("transmit, 1 switch", "fabric.transmit(port, pkt)", one,
             "HCA egress, one switch hop, HCA receive checks")
    t3 = add("transmit, 3 switches", "fabric.transmit(port, pkt)", three,
             "the same over three switches")
    results.append(Result("per switch hop", (t3 - t1) / 2, "ns/hop", BASELINE, base,
                          "(3 switches - 1 switch) / 2"))
    verbs = "dst.post_recv(rwr); src.post_send(wr); dcq.poll(); cq.poll()"
    add("verbs UD send+recv, 1 switch", verbs, one,
        "post_recv, post_send (cached AH header), two CQ polls")
    add("verbs UD send+recv, 3 switches", verbs, three, "the same over three switches")
    add("multicast, 1 switch, 1 member", "fabric.transmit(port, pkt)", _env(1, mcast=True),
        "MFT lookup and replication, member QP with no receive posted")
    add("transmit, 1 switch, tap on", "fabric.transmit(port, pkt)", _env(1, tap=True),
        "every egress recorded: ICRC + VCRC + ERF record per link")
    return results
