"""Directed-route SMPs: a DR walk finds every node and link; hop-pointer rules (IBA 14.2.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipoib.fabric import Fabric, netfile
from ipoib.fabric.sma import process_smp
from ipoib.fabric.topogen import fat_tree, line
from ipoib.wire.mad import (
    Method,
    MgmtClass,
    build_dr_smp,
    dr_direction,
    dr_hop_pointer,
    dr_return_path,
    mad_status,
    mad_tid,
    smp_data,
)
from ipoib.wire.smp import NodeInfo, SmpAttr

from .tinysm import TinySm, run_until_idle
from .util import up

NET_2SW = Path("/usr/share/doc/ibsim-utils/net-examples/net.2sw2path4hca")


def _topology_links(fabric: Fabric) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    out = set()
    for link in fabric.topology.links:
        a = (fabric.node(link.a).guid, link.a_port)
        b = (fabric.node(link.b).guid, link.b_port)
        out |= {(a, b), (b, a)}
    return out


@pytest.mark.parametrize("topo", [fat_tree(16, levels=3, radix=4), fat_tree(12, radix=8)],
                         ids=["3-level-k4", "2-level-radix8"])
def test_dr_walk_finds_every_node_and_link(topo: object) -> None:
    fabric = Fabric(topo)  # type: ignore[arg-type]
    sm = TinySm(fabric, "hca-1")
    sm.discover()
    assert {f.guid for f in sm.nodes.values()} == {n.guid for n in fabric.nodes.values()}
    assert set(sm.links.items()) == _topology_links(fabric)
    assert {f.desc for f in sm.nodes.values()} == set(fabric.nodes)
    assert fabric.drops() == {}


@pytest.mark.skipif(not NET_2SW.exists(), reason="ibsim examples not installed")
def test_sm_on_switch_port0_brings_up_parallel_links() -> None:
    fabric, sm = up(netfile.load(NET_2SW), sm_node="Switch1")
    assert len(sm.nodes) == 6
    assert sm.lid_of("Switch1") == 1
    for name in ("Hca1", "Hca2", "Hca3", "Hca4"):
        assert fabric.port(name, 1).state == 4
    assert fabric.port("Switch1", 5).state == 4  # both parallel links active
    assert fabric.drops() == {}


def _dr(sm: TinySm, path: tuple[int, ...], attr: int = SmpAttr.NODE_INFO,
        **kw: int) -> bytes | None:
    mad = build_dr_smp(Method.GET, attr, 0, 77, initial_path=(0, *path), **kw)
    return sm.rpc(mad)


def test_return_path_and_hop_pointer() -> None:
    fabric = Fabric(line(3, 1))
    sm = TinySm(fabric, "hca-1")
    # hca-1 -> sw-1 (in on 1, out on 3) -> sw-2 (in 2, out 3) -> sw-3 (in 2) -> hca-3 via 1
    resp = _dr(sm, (1, 3, 3, 1))
    assert resp is not None and mad_status(resp) == 0
    assert dr_direction(resp) == 1
    assert dr_hop_pointer(resp) == 0  # C14-13:3 at the SM: given to the SM with HopPointer 0
    assert list(dr_return_path(resp)[1:]) == [1, 2, 2, 1]
    ni = NodeInfo.decode(smp_data(resp))
    assert ni.node_guid == fabric.node("hca-3").guid
    assert ni.local_port_num == 1


def test_dr_through_a_ca_is_discarded() -> None:
    fabric = Fabric(line(2, 1))
    sm = TinySm(fabric, "hca-1")
    # hca-1 -> sw-1 -> port 1 back to hca-1 (a CA), then on: a CA never forwards (C14-9:2)
    assert _dr(sm, (1, 1, 1)) is None
    assert fabric.node("hca-1").drops["dr_discard"] == 1


def test_dr_to_missing_or_dead_ports() -> None:
    fabric = Fabric(line(2, 1))
    sm = TinySm(fabric, "hca-1")
    assert _dr(sm, (1, 9)) is None  # sw-1 has 3 ports
    assert fabric.node("sw-1").drops["dr_discard"] == 1
    assert _dr(sm, (1, 2)) is None  # sw-1 port 2 is not cabled
    assert fabric.port("sw-1", 2).drops["link_down"] == 1


def test_hop_count_zero_reaches_own_sma() -> None:
    fabric = Fabric(line(1, 1))
    sm = TinySm(fabric, "hca-1")
    resp = _dr(sm, ())
    assert resp is not None
    ni = NodeInfo.decode(smp_data(resp))
    assert ni.node_guid == fabric.node("hca-1").guid
    assert fabric.port("hca-1", 1).xmit_pkts == 0  # never left the HCA


def test_lid_routed_segments_drslid_and_drdlid() -> None:
    fabric, sm = up(line(3, 1))
    sm_lid = sm.lid_of("hca-1")
    sw2 = sm.lid_of("sw-2")
    # DrSLID: LID-routed to sw-2, then directed: sw-2 port 3 -> sw-3, port 1 -> hca-3
    mad = build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 5, initial_path=(0, 3, 1),
                       dr_slid=sm_lid)
    tid = sm.agent.send(mad, dlid=sw2)
    run_until_idle(fabric)
    rx = sm.agent.recv()
    assert rx is not None and mad_tid(rx.mad) == tid and mad_status(rx.mad) == 0
    assert NodeInfo.decode(smp_data(rx.mad)).node_guid == fabric.node("hca-3").guid
    assert rx.slid == sw2  # the last leg came back LID-routed from sw-2
    # DrDLID: directed to sw-1, then LID-routed to hca-3's LID
    hca3 = sm.lid_of("hca-3")
    mad = build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 6, initial_path=(0, 1),
                       dr_dlid=hca3)
    tid = sm.agent.send(mad)
    run_until_idle(fabric)
    rx = sm.agent.recv()
    assert rx is not None and mad_tid(rx.mad) == tid and mad_status(rx.mad) == 0
    ni = NodeInfo.decode(smp_data(rx.mad))
    assert ni.node_guid == fabric.node("hca-3").guid
    assert dr_direction(rx.mad) == 1
    assert fabric.drops() == {}


def test_process_smp_with_hop_pointer_zero_like_ibsim() -> None:
    fabric = Fabric(line(1, 1))
    sw = fabric.node("sw-1")
    mad = build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 9, initial_path=(0, 1))
    resp = process_smp(sw, 1, mad)
    assert resp is not None
    assert dr_direction(resp) == 1 and dr_hop_pointer(resp) == 0
    ni = NodeInfo.decode(smp_data(resp))
    assert (ni.node_guid, ni.local_port_num, ni.num_ports) == (sw.guid, 1, sw.nports)
    # non-SMP classes are not the SMA's business
    assert process_smp(sw, 1, bytes([1, MgmtClass.PERF_MGMT]) + bytes(254)) is None
