"""The embedded SM bringing real fabrics up through MADs only: ports, LIDs, routes, sweeps."""

from __future__ import annotations

import pytest

from ipoib.fabric import Topology, netfile, topogen
from ipoib.fabric.fabric import Fabric
from ipoib.sm.agent import SmBinding, run_until
from ipoib.sm.lids import parse_guid2lid
from ipoib.sm.manager import SmConfig, SubnetManager
from ipoib.sm.transactions import MadAddr
from ipoib.wire.mad import Method, build_dr_smp, build_smp, make_response
from ipoib.wire.smp import SmInfo, SmpAttr, SmState, trap_128

from .bringup import (
    ACTIVE,
    EXAMPLES,
    NET_EXAMPLES,
    bring_up,
    fabric_lids,
    hca_ports,
    linked_ports,
    packet_arrives,
    route_report,
    settle,
    sweep_idle,
    ud,
)


def _example(name: str) -> Topology:
    return netfile.load(NET_EXAMPLES / name)


@pytest.mark.parametrize("name", EXAMPLES)
def test_ibsim_examples_come_up_active_with_loop_free_routes(name: str) -> None:
    fabric, binding = bring_up(_example(name))
    states = linked_ports(fabric)
    assert states and all(state == ACTIVE for _n, _p, state in states), states
    lids = fabric_lids(fabric)
    assert len(set(lids.values())) == len(lids) == len(binding.sm.lids)
    report = route_report(fabric)
    assert report.ok and report.pairs > 0, (report.unreachable_examples, report.loop_examples)
    ends = [ud(fabric, name, port) for name, port in hca_ports(fabric)]
    for a in ends:
        for b in ends:
            if a is not b:
                assert packet_arrives(fabric, a, b, f"{a.lid}->{b.lid}".encode())


def test_lids_and_lft_match_opensm_on_2sw2path4hca() -> None:
    """OpenSM gave LIDs 1..6 and Switch1 LFT block 0 = ff 00 01 03 03 02 05 (vectors)."""
    fabric, _binding = bring_up(_example("net.2sw2path4hca"))
    by_name = {n.name: n.ports[0 if n.is_switch else 1].lid for n in fabric.nodes.values()}
    assert by_name == {"Switch1": 1, "Hca1": 2, "Switch2": 3, "Hca2": 4, "Hca3": 5, "Hca4": 6}
    sw = fabric.switches[0]
    assert sw.name == "Switch1"
    assert bytes(sw.lft[:7]) == bytes.fromhex("ff000103030205")
    assert sw.top == 6


@pytest.mark.parametrize("routing", ["minhop", "updn"])
def test_fat_tree_packets_follow_the_routes(routing: str) -> None:
    topo = topogen.fat_tree(72)
    fabric, _binding = bring_up(topo, routing=routing)
    assert all(state == ACTIVE for _n, _p, state in linked_ports(fabric))
    report = route_report(fabric)
    assert report.ok and report.max_hops == 4
    hcas = [n.name for n in fabric.cas]
    ends = {name: ud(fabric, name) for name in hcas[::7]}
    names = list(ends)
    for i, a in enumerate(names):
        b = names[(i + 3) % len(names)]
        assert packet_arrives(fabric, ends[a], ends[b], f"{a}->{b}".encode()), (a, b)


def test_sm_on_an_hca_port() -> None:
    topo = _example("net.2sw2path4hca")
    fabric, binding = bring_up(topo, sm_node="Hca3")
    assert binding.sm.sm_lid == fabric.node("Hca3").ports[1].lid == 1
    assert all(state == ACTIVE for _n, _p, state in linked_ports(fabric))
    for n in fabric.nodes.values():
        p = n.ports[0 if n.is_switch else 1]
        assert p.master_sm_lid == 1
        assert (p.gid_prefix, p.mkey, p.lmc, p.subnet_timeout) == (0xFE80 << 48, 0, 0, 18)
        for q in n.ports[1:]:
            if q.peer is not None and q.up:  # both ends agree on MTU and VLs
                assert q.neighbor_mtu == min(q.mtu_cap, q.peer.mtu_cap) == 4
                assert q.op_vls == min(q.vl_cap, q.peer.vl_cap) == 4
    a, b = ud(fabric, "Hca1"), ud(fabric, "Hca4")
    assert packet_arrives(fabric, a, b)


def test_second_sweep_writes_nothing() -> None:
    fabric, binding = bring_up(topogen.fat_tree(36))
    sm = binding.sm
    first = sum(sm.report.sets.values())
    assert first > 0
    sets_before = {k: v for k, v in sm.tx.stats.items() if k[0] == Method.SET}
    sm.request_sweep(fabric.now)  # a new heavy sweep of an unchanged subnet
    binding.flush()
    sweep_idle(fabric, binding)
    assert sm.counters["heavy_sweeps"] == 2
    assert sum(sm.report.sets.values()) == 0
    assert {k: v for k, v in sm.tx.stats.items() if k[0] == Method.SET} == sets_before


def test_link_cut_traps_and_reroutes_a_redundant_fat_tree() -> None:
    topo = topogen.fat_tree(36)
    fabric, binding = bring_up(topo)
    sm = binding.sm
    leaf = fabric.switches[1]
    hcas_here = [p.peer.node.name for p in leaf.ports[1:]
                 if p.peer is not None and not p.peer.node.is_switch]
    far = next(n.name for n in fabric.cas if n.name not in hcas_here)
    src, dst = ud(fabric, hcas_here[0]), ud(fabric, far)
    out_port = leaf.lft[dst.lid]
    assert packet_arrives(fabric, src, dst)
    sweeps = sm.counters["heavy_sweeps"]
    fabric.link_down(leaf.name, out_port, now=fabric.now + 1.0)
    assert not packet_arrives(fabric, src, dst)  # the cut link carried this route
    run_until(fabric, binding, lambda: sm.counters["heavy_sweeps"] > sweeps and sm.phase == "idle",
              limit=fabric.now + 5.0)
    assert sm.counters["trap_128"] >= 1
    assert fabric.now < 2.0  # the trap, not the 10 s light sweep, triggered it
    settle(fabric, binding, 3.0)  # a trap whose route used the cut link is repeated, then
    assert all(not sw.traps for sw in fabric.switches)  # TrapRepress stops the repeats
    assert leaf.lft[dst.lid] != out_port
    assert packet_arrives(fabric, src, dst)
    assert route_report(fabric).ok


def test_light_sweep_finds_a_port_reset_and_reactivates_it() -> None:
    fabric, binding = bring_up(_example("net.2sw2path4hca"))
    sm = binding.sm
    hca = fabric.node("Hca2").ports[1]
    hca.state = 2  # the host restarted its port: back in INIT, no trap from a CA
    hca.peer.state = 2  # type: ignore[union-attr]
    settle(fabric, binding, 11.0)
    assert sm.counters["light_sweeps"] >= 1 and sm.counters["heavy_sweeps"] == 2
    assert hca.state == ACTIVE
    assert any("light sweep found changes" in text for _t, text in sm.log)


def test_lids_survive_an_sm_restart_through_guid2lid() -> None:
    topo = topogen.fat_tree(36)
    fabric, binding = bring_up(topo, sm_node="sw-l2-2")
    before = fabric_lids(fabric)
    cache = binding.sm.guid2lid_text()
    assert parse_guid2lid(cache) == before
    # A fresh fabric (every LID 0), the SM elsewhere: without the cache LIDs move...
    fresh, _other = bring_up(topo, sm_node="hca-5")
    assert fabric_lids(fresh) != before
    # ...with it they come back exactly.
    again, restarted = bring_up(topo, sm_node="hca-5", guid2lid=parse_guid2lid(cache))
    assert fabric_lids(again) == before
    assert restarted.sm.report.lids_changed == len(before)  # all written into empty ports
    assert route_report(again).ok


def test_sm_restart_on_a_live_subnet_keeps_lids_and_reregisters_clients() -> None:
    fabric, binding = bring_up(_example("net.2sw2path4hca"))
    lids = fabric_lids(fabric)
    ctx = fabric.context("Hca4")
    binding.close()
    second = SmBinding(fabric, "Switch1")
    second.start(fabric.now)
    run_until(fabric, second, lambda: second.sm.subnet_up, limit=fabric.now + 10)
    assert fabric_lids(fabric) == lids
    events = []
    fabric.process(fabric.now)
    while (ev := ctx.get_async_event()) is not None:
        events.append(ev.event_type)
    assert "CLIENT_REREGISTER" in events


def _sm_info(fabric: Fabric, name: str) -> SmInfo:
    """Ask the SM on ``name`` for SMInfo with a DR SMP from Hca1, as another SM would."""
    agent = fabric.open_mad_agent("Hca1", 1, 0x81)
    path = {"Switch1": (0, 1), "Switch2": (0, 1, 3)}[name]
    agent.send(build_dr_smp(Method.GET, SmpAttr.SM_INFO, 0, 7, initial_path=path))
    fabric.process(fabric.now)
    rx = agent.recv()
    agent.close()
    assert rx is not None and rx.mad[3] == Method.GET_RESP
    return SmInfo.decode(rx.mad[64:128])


def test_sminfo_get_is_answered_with_priority_and_state() -> None:
    fabric, _binding = bring_up(_example("net.2sw2path4hca"), priority=9)
    info = _sm_info(fabric, "Switch1")
    assert (info.priority, info.sm_state) == (9, SmState.MASTER)
    assert info.guid == fabric.node("Switch1").guid
    assert info.sm_key == 0  # not given to a requester that does not present it


def test_lower_priority_sm_stands_by_under_a_master() -> None:
    topo = _example("net.2sw2path4hca")
    fabric, master = bring_up(topo, priority=10)
    low = SmBinding(fabric, "Switch2", config=SmConfig(priority=2))
    low.start(fabric.now)
    run_until(fabric, [master, low], lambda: low.sm.phase == "standby", limit=fabric.now + 10)
    assert low.sm.state == SmState.STANDBY
    assert low.sm.master is not None and low.sm.master[0] == fabric.node("Switch1").guid
    assert _sm_info(fabric, "Switch2").sm_state == SmState.STANDBY
    # the standby polls; the master keeps the subnet and the standby wrote nothing
    assert not any(k[0] == Method.SET for k in low.sm.tx.stats)
    settle(fabric, [master, low], 25.0)
    assert low.sm.state == SmState.STANDBY and master.sm.state == SmState.MASTER


def test_standby_takes_over_when_the_master_dies() -> None:
    topo = _example("net.2sw2path4hca")
    fabric, master = bring_up(topo, priority=10)
    low = SmBinding(fabric, "Switch2", config=SmConfig(priority=2))
    low.start(fabric.now)
    run_until(fabric, [master, low], lambda: low.sm.phase == "standby", limit=fabric.now + 10)
    master.close()
    settle(fabric, low, 60.0)
    assert low.sm.state == SmState.MASTER
    assert all(state == ACTIVE for _n, _p, state in linked_ports(fabric))


def test_master_hands_over_to_a_higher_priority_newcomer() -> None:
    topo = _example("net.2sw2path4hca")
    fabric, old = bring_up(topo, priority=1)
    new = SmBinding(fabric, "Switch2", config=SmConfig(priority=12))
    new.start(fabric.now)
    settle(fabric, [old, new], 25.0)  # the old master's light sweep sees IsSM appear
    assert new.sm.state == SmState.MASTER and old.sm.state == SmState.STANDBY
    assert old.sm.counters["handovers"] == 1
    assert fabric.node("Hca1").ports[1].master_sm_lid == new.sm.sm_lid


def test_trap_is_repressed_and_ignored_while_standby() -> None:
    sm = SubnetManager()
    trap = build_smp(Method.TRAP, SmpAttr.NOTICE, 0, 42, trap_128(3).smp_data())
    sm.receive(trap, MadAddr(slid=3), 0.0)
    assert sm.drain() == [] and sm.drops["trap_not_master"] == 1


def test_unsupported_smp_gets_status_and_garbage_is_counted() -> None:
    sm = SubnetManager()
    sm.receive(b"\x01\x81", MadAddr(), 0.0)
    assert sm.drops["malformed"] == 1
    get = build_dr_smp(Method.GET, SmpAttr.GUID_INFO, 0, 5)
    sm.receive(get, MadAddr(), 0.0)
    (out,) = sm.drain()
    assert out.mad[3] == Method.GET_RESP and out.mad[5] == 0x0C
    stray = make_response(build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 99))
    sm.receive(stray, MadAddr(), 0.0)
    assert sm.drops["stray_response"] == 1
    sm.receive_answer(stray, 0.0)  # the binding's way in for SMP answers counts the same
    assert sm.drops["stray_response"] == 2 and sm.drain() == []


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="routing"):
        SmConfig(routing="lash")
    with pytest.raises(ValueError, match="priority"):
        SmConfig(priority=16)


@pytest.mark.slow
@pytest.mark.parametrize("hcas", [1944, 10000])
def test_scale_bring_up(hcas: int) -> None:
    fabric, _binding = bring_up(topogen.fat_tree(hcas), limit=3600)
    assert all(state == ACTIVE for _n, _p, state in linked_ports(fabric))
    assert route_report(fabric).ok


def test_partitions_program_pkey_tables_and_broadcast_groups() -> None:
    topo = _example("net.2sw2path4hca")
    guid = {n.name: n.port_guids[0] for n in topo.cas}
    conf = (
        "Default=0x7fff, ipoib : ALL=full ;\n"
        f"storage=0x0001, ipoib, rate=3 : {guid['Hca1']:#x}=full, {guid['Hca2']:#x}=limited ;\n"
    )
    fabric, binding = bring_up(topo, partitions=conf)
    sm = binding.sm
    tables = {n.name: [k for k in n.ports[1].pkeys if k] for n in fabric.cas}
    assert tables["Hca1"] == [0xFFFF, 0x8001]
    assert tables["Hca2"] == [0xFFFF, 0x0001]
    assert tables["Hca3"] == tables["Hca4"] == [0xFFFF]
    group = sm.groups.get(bytes.fromhex("ff12401b8001000000000000ffffffff"))
    assert group is not None and group.mlid == 0xC001 and group.pkey == 0x8001
    a = ud(fabric, "Hca1", pkey_index=1)
    b = ud(fabric, "Hca2", pkey_index=1)
    c = ud(fabric, "Hca3")
    assert packet_arrives(fabric, a, b, b"in the partition")
    assert fabric.node("Hca2").ports[1].pkey_index(0x8001) == 1
    assert not packet_arrives(fabric, c, b, b"from outside")  # Hca3 has no 0x0001
    sm.request_sweep(fabric.now)  # nothing to rewrite on a second sweep
    binding.flush()
    sweep_idle(fabric, binding)
    assert sm.report.sets["p_key_blocks"] == 0 and sum(sm.report.sets.values()) == 0


def test_failed_sets_retry_with_backoff_until_the_sweep_is_clean() -> None:
    topo = _example("net.2sw2path4hca")
    fabric = Fabric(topo)
    locked = fabric.node("Hca4").ports[1]
    locked.mkey, locked.mkey_protect = 0x1234, 1  # Gets pass, Sets without the key do not
    binding = SmBinding(fabric, "Switch1")
    binding.start(0.0)
    settle(fabric, binding, 6.0)
    sm = binding.sm
    assert not sm.subnet_up and sm.counters["sweeps_failed"] >= 2
    notes = [text for _t, text in sm.log if "sweep failed" in text]
    assert "again in 1 s" in notes[0] and "again in 2 s" in notes[1]
    assert locked.mkey_violations > 0 and locked.state != ACTIVE
    assert fabric.node("Hca1").ports[1].state == ACTIVE  # the rest came up meanwhile
    locked.mkey = 0
    run_until(fabric, binding, lambda: sm.subnet_up, limit=fabric.now + 20)
    assert sm.subnet_up and locked.state == ACTIVE
