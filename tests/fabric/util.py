"""Small helpers for fabric tests: UD endpoints on a CA, fabrics brought up by the tiny SM."""

from __future__ import annotations

from dataclasses import dataclass

from ipoib.fabric import (
    AH,
    CQ,
    PD,
    QP,
    AHAttr,
    Context,
    Fabric,
    GlobalRoute,
    QPAttr,
    QPInitAttr,
    QPType,
    RecvWR,
    SendWR,
    Topology,
)
from ipoib.fabric.topogen import line

from .tinysm import TinySm, run_until_idle


@dataclass
class Ud:
    """One UD QP with its context, PD and a shared CQ."""

    ctx: Context
    pd: PD
    cq: CQ
    qp: QP

    @property
    def lid(self) -> int:
        return self.ctx.query_port(self.qp.port_num).lid

    @property
    def gid(self) -> bytes:
        return self.ctx.query_gid(self.qp.port_num, 0)

    def post_recvs(self, n: int = 1, length: int = 4096) -> None:
        for i in range(n):
            self.qp.post_recv(RecvWR(1000 + i, length))

    def send(self, dst: Ud | int, payload: bytes, *, qkey: int = 0x1B, dqpn: int | None = None,
             sl: int = 0, wr_id: int = 1, gr: GlobalRoute | None = None) -> None:
        dlid = dst if isinstance(dst, int) else dst.lid
        if dqpn is None:
            dqpn = 0xFFFFFF if isinstance(dst, int) else dst.qp.qp_num
        ah = AH(self.pd, AHAttr(dlid=dlid, sl=sl, port_num=self.qp.port_num,
                                is_global=gr is not None, gr=gr))
        wr = SendWR(wr_id, payload)
        wr.set_wr_ud(ah, dqpn, qkey)
        self.qp.post_send(wr)

    def received(self) -> list[bytes]:
        """Payloads completed on this QP's receive side (other completions are dropped)."""
        return [wc.data for wc in self.cq.poll(64) if wc.qp_num == self.qp.qp_num and wc.data]


def ud(fabric: Fabric, name: str, *, qkey: int = 0x1B, pkey_index: int = 0, port: int = 1,
       create_flags: int = 0, cqe: int = 256) -> Ud:
    """A UD QP in RTS on ``name``'s ``port``."""
    ctx = fabric.context(name)
    pd = PD(ctx)
    cq = CQ(ctx, cqe)
    qp = QP(pd, QPInitAttr(qp_type=QPType.UD, scq=cq, rcq=cq, create_flags=create_flags),
            QPAttr(qkey=qkey, pkey_index=pkey_index, port_num=port))
    return Ud(ctx, pd, cq, qp)


def up(topology: Topology, sm_node: str | None = None, sm_port: int | None = None,
       seed: int = 0) -> tuple[Fabric, TinySm]:
    """A fabric brought up by the tiny SM (on the first CA's port 1 unless told)."""
    fabric = Fabric(topology, seed=seed)
    if sm_node is None:
        sm_node = topology.cas[0].name
    if sm_port is None:
        sm_port = 0 if fabric.node(sm_node).is_switch else 1
    sm = TinySm(fabric, sm_node, sm_port).bring_up()
    run_until_idle(fabric)
    return fabric, sm


def line3() -> tuple[Fabric, TinySm]:
    """hca-1 - sw-1 - sw-2 - sw-3 - hca-3 (hca-2 on sw-2), activated."""
    return up(line(3, 1))
