"""The PMA: PortCounters/PortCountersExtended grow with traffic, reset by CounterSelect,
saturate, sum over all ports, and count drops as IBA error counters."""

from __future__ import annotations

from ipoib.fabric import Fabric, MadAgent
from ipoib.fabric.topogen import line
from ipoib.wire.mad import (
    ClassPortInfo,
    Method,
    MgmtClass,
    build_gmp,
    gmp_data,
    mad_status,
    mad_tid,
)
from ipoib.wire.pma import PerfMgtAttr, PmaCap, PortCounters, PortCountersExtended

from .tinysm import TinySm, run_until_idle
from .util import line3, ud


class Pma:
    """A PerfMgt client on hca-1 (a GSI agent on QP1)."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.agent: MadAgent = fabric.context("hca-1").open_mad_agent(1, MgmtClass.PERF_MGMT)
        self.tid = 0

    def query(self, lid: int, attr: int, data: bytes, method: int = Method.GET
              ) -> tuple[int, bytes]:
        self.tid += 1
        tid = self.agent.send(build_gmp(MgmtClass.PERF_MGMT, method, attr, 0, self.tid, data),
                              dlid=lid)
        run_until_idle(self.fabric)
        rx = self.agent.recv()
        assert rx is not None and mad_tid(rx.mad) == tid
        return mad_status(rx.mad), gmp_data(rx.mad)

    def counters(self, lid: int, port: int) -> PortCounters:
        st, data = self.query(lid, PerfMgtAttr.PORT_COUNTERS,
                              PortCounters(port_select=port).encode())
        assert st == 0
        return PortCounters.decode(data)

    def extended(self, lid: int, port: int) -> PortCountersExtended:
        st, data = self.query(lid, PerfMgtAttr.PORT_COUNTERS_EXTENDED,
                              PortCountersExtended(port_select=port).encode())
        assert st == 0
        return PortCountersExtended.decode(data)

    def clear(self, lid: int, port: int, select: int = 0xFFFF, *, ext: bool = False) -> None:
        rec = (PortCountersExtended if ext else PortCounters)(port_select=port,
                                                               counter_select=select)
        attr = PerfMgtAttr.PORT_COUNTERS_EXTENDED if ext else PerfMgtAttr.PORT_COUNTERS
        st, _ = self.query(lid, attr, rec.encode(), Method.SET)
        assert st == 0


def test_counters_grow_with_traffic_and_reset() -> None:
    fabric, sm = line3()
    pma = Pma(fabric)
    sw2 = sm.lid_of("sw-2")
    pma.clear(sw2, 3)
    assert pma.counters(sw2, 3).port_xmit_pkts == 0
    assert pma.extended(sw2, 3).port_xmit_pkts > 0  # the two views clear separately
    pma.clear(sw2, 3, select=0xFF, ext=True)
    a, b = ud(fabric, "hca-1"), ud(fabric, "hca-3")
    b.post_recvs(10)
    for _ in range(10):
        a.send(b, b"twelve bytes")  # 28 + 12 + ICRC 4 = 44 bytes = 11 words
    pc = pma.counters(sw2, 3)
    assert (pc.port_xmit_pkts, pc.port_xmit_data, pc.port_select) == (10, 110, 3)
    assert pc.port_rcv_pkts == 0  # nothing comes back over sw-2 port 3
    ext = pma.extended(sw2, 3)
    assert (ext.port_xmit_pkts, ext.port_xmit_data, ext.port_unicast_xmit_pkts) == (10, 110, 10)
    pma.clear(sw2, 3, select=0x4000)  # PortXmitPkts only
    pc = pma.counters(sw2, 3)
    assert (pc.port_xmit_pkts, pc.port_xmit_data) == (0, 110)
    assert pma.extended(sw2, 3).port_xmit_pkts == 10  # extended counters kept
    pma.clear(sw2, 3, select=0x0004, ext=True)
    assert pma.extended(sw2, 3).port_xmit_pkts == 0


def test_all_ports_select_and_ca_port_select() -> None:
    fabric, sm = line3()
    pma = Pma(fabric)
    sw2 = sm.lid_of("sw-2")
    total = pma.counters(sw2, 0xFF)
    parts = [pma.counters(sw2, p) for p in range(4)]
    # the queries themselves cross sw-2's ports between the reads: compare the quiet port 3
    assert total.port_xmit_pkts >= sum(p.port_xmit_pkts for p in parts[2:])
    assert total.port_select == 0xFF
    hca3 = sm.lid_of("hca-3")
    assert pma.counters(hca3, 1).port_rcv_pkts > 0
    st, _ = pma.query(hca3, PerfMgtAttr.PORT_COUNTERS, PortCounters(port_select=0).encode())
    assert st == 0x1C
    st, _ = pma.query(sw2, PerfMgtAttr.PORT_COUNTERS, PortCounters(port_select=9).encode())
    assert st == 0x1C


def test_saturation_and_error_counters() -> None:
    fabric, sm = line3()
    pma = Pma(fabric)
    sw2 = sm.lid_of("sw-2")
    fabric.port("sw-2", 1).rcv_words += 1 << 33
    pc = pma.counters(sw2, 1)
    assert pc.port_rcv_data == 0xFFFF_FFFF
    assert pma.extended(sw2, 1).port_rcv_data >= 1 << 33
    fabric.port("sw-2", 2).drops["no_route"] += 70000
    assert pma.counters(sw2, 2).port_rcv_switch_relay_errors == 0xFFFF
    fabric.link_down("sw-2", 1)
    fabric.link_up("sw-2", 1)
    assert pma.counters(sw2, 1).link_downed_counter == 1
    pma.clear(sw2, 2, select=0x0020)
    assert pma.counters(sw2, 2).port_rcv_switch_relay_errors == 0


def test_class_port_info_and_unknown_attributes() -> None:
    fabric, sm = line3()
    pma = Pma(fabric)
    st, data = pma.query(sm.lid_of("sw-1"), 0x0001, b"")
    cpi = ClassPortInfo.decode(data)
    assert st == 0 and cpi.capability_mask & PmaCap.ALL_PORT_SELECT
    st, data = pma.query(sm.lid_of("hca-3"), 0x0001, b"")
    assert not ClassPortInfo.decode(data).capability_mask & PmaCap.ALL_PORT_SELECT
    st, _ = pma.query(sm.lid_of("sw-1"), PerfMgtAttr.PORT_SAMPLES_CONTROL, b"")
    assert st == 0x0C  # answered by the PMA, never handed to an SM


def test_pma_answers_even_without_an_sm_agent() -> None:
    fabric = Fabric(line(1, 2))
    TinySm(fabric, "hca-1").bring_up()
    pma = Pma(fabric)
    pc = pma.counters(fabric.port("hca-2", 1).lid, 1)
    assert pc.port_rcv_pkts > 0 and pc.port_xmit_pkts > 0
