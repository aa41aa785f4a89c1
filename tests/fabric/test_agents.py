"""The MAD layer: TID stamping, request/response matching, unsupported answers, QP1 checks,
and Trap 128 from switches to the master SM."""

from __future__ import annotations

import pytest

from ipoib.fabric import Fabric, ReceivedMad
from ipoib.fabric.agents import TRAP_REPEATS
from ipoib.fabric.topogen import line
from ipoib.wire.ib import GSI_QKEY, build_ud
from ipoib.wire.mad import (
    Method,
    MgmtClass,
    Notice,
    build_gmp,
    build_sa_mad,
    build_smp,
    mad_method,
    mad_status,
    mad_tid,
    make_response,
    smp_data,
)
from ipoib.wire.smp import SmpAttr, SwitchInfo

from .tinysm import TinySm, run_until_idle
from .util import line3


def test_tid_carries_the_agent_id_and_responses_match() -> None:
    fabric, sm = line3()
    server = fabric.context("hca-1").open_mad_agent(1, MgmtClass.SUBN_ADM, 2, requests=True)
    client = fabric.context("hca-3").open_mad_agent(1, MgmtClass.SUBN_ADM, 2)
    other = fabric.context("hca-3").open_mad_agent(1, MgmtClass.SUBN_ADM, 2)
    tid = client.send(build_sa_mad(Method.GET, 0x0035, 0x1234), dlid=sm.sm_lid)
    assert tid >> 32 == client.agent_id and tid & 0xFFFF_FFFF == 0x1234
    run_until_idle(fabric)
    rx = server.recv()
    assert rx is not None
    assert (rx.slid, rx.src_qp, rx.dest_qp, rx.qkey) == (sm.lid_of("hca-3"), 1, 1, GSI_QKEY)
    server.respond(rx, make_response(rx.mad))
    run_until_idle(fabric)
    back = client.recv()
    assert back is not None and mad_tid(back.mad) == tid and mad_method(back.mad) == 0x81
    assert other.recv() is None


def test_sa_client_on_the_sm_port_loops_back() -> None:
    fabric, sm = line3()
    ctx = fabric.context("hca-1")
    server = ctx.open_mad_agent(1, MgmtClass.SUBN_ADM, 2, requests=True)
    client = ctx.open_mad_agent(1, MgmtClass.SUBN_ADM, 2)  # same port, responses only
    with pytest.raises(ValueError):
        ctx.open_mad_agent(1, MgmtClass.SUBN_ADM, 2, requests=True)
    tid = client.send(build_sa_mad(Method.GET, 0x0035, 1), dlid=sm.sm_lid)
    run_until_idle(fabric)
    rx = server.recv()
    assert rx is not None
    server.respond(rx, make_response(rx.mad))
    run_until_idle(fabric)
    back = client.recv()
    assert back is not None and mad_tid(back.mad) == tid


def test_sm_agent_sets_is_sm() -> None:
    fabric, _sm = line3()
    port = fabric.port("hca-3", 1)
    assert not port.cap_mask & 2
    client = fabric.open_mad_agent("hca-3", 1, MgmtClass.SUBN_DIRECTED_ROUTE)
    assert not port.cap_mask & 2  # a client is not an SM
    sm_dr = fabric.open_mad_agent("hca-3", 1, MgmtClass.SUBN_DIRECTED_ROUTE, requests=True)
    sm_lr = fabric.open_mad_agent("hca-3", 1, MgmtClass.SUBN_LID_ROUTED, requests=True)
    assert port.cap_mask == 0x0050C04A
    sm_dr.close()
    assert port.cap_mask & 2
    sm_lr.close()
    client.close()
    assert port.cap_mask == 0x0050C048


def test_handlers_are_called_deferred() -> None:
    fabric, sm = line3()
    got: list[ReceivedMad] = []
    fabric.context("hca-1").open_mad_agent(1, MgmtClass.SUBN_ADM, 2, got.append,
                                           requests=True)
    client = fabric.context("hca-3").open_mad_agent(1, MgmtClass.SUBN_ADM, 2)
    client.send(build_sa_mad(Method.GET, 0x0035, 1), dlid=sm.sm_lid)
    assert got == []
    fabric.process(fabric.now)
    assert len(got) == 1


def test_unhandled_requests_and_responses() -> None:
    fabric, sm = line3()
    client = fabric.context("hca-3").open_mad_agent(1, MgmtClass.SUBN_ADM, 2)
    # no SA anywhere: a Get is answered "unsupported" by the MAD layer (Linux behaviour)
    tid = client.send(build_sa_mad(Method.GET, 0x0035, 7), dlid=sm.lid_of("hca-2"))
    run_until_idle(fabric)
    rx = client.recv()
    assert rx is not None and mad_tid(rx.mad) == tid and mad_status(rx.mad) == 0x0C
    # a Report with no agent is dropped and counted
    client.send(build_sa_mad(Method.REPORT, 0x0002, 8), dlid=sm.lid_of("hca-2"))
    run_until_idle(fabric)
    assert fabric.node("hca-2").drops["no_agent"] == 1
    # a response nobody asked for
    client.send(make_response(build_sa_mad(Method.GET, 0x0035, 5 | 77 << 32)),
                dlid=sm.lid_of("hca-2"))
    assert fabric.node("hca-2").drops["unmatched_response"] == 1
    client.close()
    with pytest.raises(ValueError):
        client.send(build_sa_mad(Method.GET, 0x0035, 7), dlid=1)


def test_qp1_checks_qkey_and_qp0_checks_vl() -> None:
    fabric, sm = line3()
    port = fabric.port("hca-1", 1)
    dlid = sm.lid_of("hca-3")
    mad = build_gmp(MgmtClass.PERF_MGMT, Method.GET, 0x12, 0, 1, bytes(40))
    fabric.transmit(port, build_ud(vl=0, sl=0, dlid=dlid, slid=port.lid, pkey=0xFFFF,
                                   dest_qp=1, qkey=0x1234, src_qp=1, payload=mad))
    assert fabric.port("hca-3", 1).drops["bad_qkey"] == 1
    smp = build_smp(Method.GET, SmpAttr.NODE_INFO, 0, 1)
    fabric.transmit(port, build_ud(vl=0, sl=0, dlid=dlid, slid=port.lid, pkey=0xFFFF,
                                   dest_qp=0, qkey=0, src_qp=0, payload=smp))
    assert fabric.port("hca-3", 1).drops["qp0_not_vl15"] == 1
    fabric.transmit(port, build_ud(vl=15, sl=0, dlid=dlid, slid=port.lid, pkey=0xFFFF,
                                   dest_qp=1, qkey=GSI_QKEY, src_qp=1, payload=mad))
    assert fabric.port("hca-3", 1).drops["vl15_not_qp0"] == 1


# --- traps -------------------------------------------------------------------------------------


def _trap_sink(fabric: Fabric) -> list[ReceivedMad]:
    got: list[ReceivedMad] = []
    fabric.open_mad_agent("hca-1", 1, MgmtClass.SUBN_LID_ROUTED, handler=got.append,
                          requests=True)
    return got


def test_trap_128_on_link_down_repeats_until_repressed() -> None:
    fabric = Fabric(line(3, 1))
    traps = _trap_sink(fabric)
    sm = TinySm(fabric, "hca-1").bring_up()
    run_until_idle(fabric)
    traps.clear()
    fabric.link_down("sw-3", 1)
    run_until_idle(fabric)
    assert len(traps) == 1 + TRAP_REPEATS  # nobody answered
    first = traps[0]
    assert mad_method(first.mad) == Method.TRAP and first.slid == sm.lid_of("sw-3")
    notice = Notice.from_smp_data(smp_data(first.mad))
    assert (notice.trap_number, notice.issuer_lid) == (128, sm.lid_of("sw-3"))
    assert len({mad_tid(t.mad) for t in traps}) == 1  # repeats keep the TID
    si = SwitchInfo.decode(sm.get(sm.nodes[fabric.node("sw-3").guid].path, SmpAttr.SWITCH_INFO))
    assert si.port_state_change == 1
    # this time the SM answers the first one
    traps.clear()
    agent = fabric.node("hca-1").agents[(1, MgmtClass.SUBN_LID_ROUTED)]
    agent.handler = lambda rx: (traps.append(rx), agent.respond(rx, make_response(rx.mad)))
    fabric.link_up("sw-3", 1)
    run_until_idle(fabric)
    assert len(traps) == 1
    assert fabric.node("sw-3").traps == {}


def test_no_trap_before_an_sm_set_master_sm_lid() -> None:
    fabric = Fabric(line(2, 1))
    fabric.link_down("sw-2", 1)
    run_until_idle(fabric)
    assert all(p.xmit_pkts == 0 for n in fabric.nodes.values() for p in n.ports)
    assert fabric.node("sw-2").port_state_change  # type: ignore[attr-defined]
