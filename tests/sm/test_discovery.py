"""Directed-route discovery over a real fabric, lossy links, slow SMAs; the SMP transaction
layer (window, retries, timeouts, TID matching) and the layout-driven field access."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.fabric import netfile, topogen
from ipoib.fabric.fabric import Fabric
from ipoib.sm.agent import SmBinding, run_until
from ipoib.sm.discovery import Discovery
from ipoib.sm.transactions import TIMEOUT, Fields, OutMad, SmpTransactions
from ipoib.wire.mad import DrSmp, Method, make_response
from ipoib.wire.smp import PKeyTable, PortInfo, SmpAttr, SwitchInfo

from .bringup import ACTIVE, EXAMPLES, NET_EXAMPLES, bring_up, linked_ports, route_report


def _discover(fabric: Fabric, node: str) -> Discovery:
    binding = SmBinding(fabric, node)
    sm = binding.sm
    done: list[bool] = []
    disc = Discovery(sm.tx, lambda: done.append(True))
    disc.start()
    binding.flush()
    run_until(fabric, binding, lambda: bool(done), limit=30)
    assert done
    return disc


@pytest.mark.parametrize("name", EXAMPLES)
def test_discovery_finds_exactly_the_cabling(name: str) -> None:
    topo = netfile.load(NET_EXAMPLES / name)
    fabric = Fabric(topo)
    sub = _discover(fabric, topo.nodes[0].name).subnet
    guid = {n.name: n.node_guid for n in topo.nodes}
    want = {frozenset({(guid[ln.a], ln.a_port), (guid[ln.b], ln.b_port)}) for ln in topo.links}
    got = {frozenset({(a, ap), (b, bp)}) for a, ap, b, bp in sub.graph.links()}
    assert got == want
    assert {n.guid: n.desc for n in sub.graph.nodes.values()} == {
        n.node_guid: n.description for n in topo.nodes}
    assert not sub.errors
    # every endport was read, with its P_Key table and NodeInfo as seen through it
    for node, port in sub.graph.endports:
        assert (node.guid, port.num) in sub.port_info
        assert sub.pkeys[(node.guid, port.num)][0] == 0xFFFF
        assert port.guid in sub.node_info


def test_dr_paths_reach_every_node() -> None:
    topo = topogen.fat_tree(36)
    fabric = Fabric(topo)
    sub = _discover(fabric, "hca-1").subnet
    for node in sub.graph.nodes.values():
        if node.is_switch:
            path = sub.node_paths[node.guid]
            assert path[0] == 1  # out of the SM's HCA port first
        else:
            for port in node.ports.values():
                assert port.dr_path or node.guid == sub.sm_guid


def test_lossy_link_costs_retries_not_correctness() -> None:
    topo = topogen.fat_tree(36)
    fabric = Fabric(topo, seed=7)
    spine_port = next(p for p in fabric.switches[0].ports[1:]
                      if p.peer is not None and p.peer.node.is_switch)
    fabric.set_drop_rate(fabric.switches[0].name, spine_port.num, 0.3)
    binding = SmBinding(fabric, topo.nodes[0].name)
    binding.start(0.0)
    run_until(fabric, binding, lambda: binding.sm.subnet_up, limit=60)
    sm = binding.sm
    assert sm.subnet_up and sm.tx.counters["retries"] > 0
    assert all(state == ACTIVE for _n, _p, state in linked_ports(fabric))
    assert route_report(fabric).ok


def test_dead_link_times_out_and_is_routed_around() -> None:
    topo = topogen.fat_tree(36)
    fabric = Fabric(topo)
    leaf = fabric.switches[1]
    port = next(p for p in leaf.ports[1:] if p.peer is not None and p.peer.node.is_switch)
    fabric.set_drop_rate(leaf.name, port.num, 1.0)
    fabric.set_drop_rate(port.peer.node.name, port.peer.num, 1.0)  # type: ignore[union-attr]
    binding = SmBinding(fabric, topo.nodes[0].name)
    binding.start(0.0)
    run_until(fabric, binding, lambda: binding.sm.subnet_up, limit=60)
    sm = binding.sm
    assert sm.subnet_up
    assert sm.tx.counters["timeouts"] >= 1 and sm.report.errors["node_info"] >= 1
    assert port.state != ACTIVE  # never confirmed from the other side, never activated
    assert route_report(fabric).ok  # but nobody routes through it


def test_slow_sma_answers_late_and_duplicates_are_counted() -> None:
    topo = netfile.load(NET_EXAMPLES / "net.2sw2path4hca")
    fabric = Fabric(topo)
    fabric.set_mad_delay("Switch2", 0.3)
    binding = SmBinding(fabric, "Switch1")
    binding.start(0.0)
    run_until(fabric, binding, lambda: binding.sm.subnet_up, limit=60)
    sm = binding.sm
    assert sm.subnet_up and sm.tx.counters["retries"] > 0 and sm.tx.counters["timeouts"] == 0
    assert sm.drops["stray_response"] > 0  # the answers to the resent copies
    assert all(state == ACTIVE for _n, _p, state in linked_ports(fabric))


@pytest.mark.parametrize("window", [1, 4])
def test_window_bounds_outstanding_smps(window: int) -> None:
    _fabric, binding = bring_up(topogen.fat_tree(36), window=window)
    assert binding.sm.tx.high_water == window


def test_hop_count_limit_is_respected() -> None:
    _fabric, binding = bring_up(topogen.line(66, 1), sm_node="sw-1")
    sub = binding.sm.subnet
    assert sub is not None and sub.errors["too_many_hops"] >= 1
    assert max(len(p) for p in sub.node_paths.values()) == 63
    assert len(sub.graph.switches) == 64


# -- the transaction layer on its own ----------------------------------------------------


def _answer(out: OutMad, status: int = 0, tid_high: int = 0) -> bytes:
    mad = bytearray(make_response(out.mad, status=status))
    mad[8:12] = tid_high.to_bytes(4, "big")
    return bytes(mad)


def test_transactions_window_retry_timeout_and_matching() -> None:
    out: list[OutMad] = []
    tx = SmpTransactions(out, window=2, timeout=0.2, retries=1)
    got: list[tuple[Any, int, bytes | None]] = []
    for i in range(3):
        tx.request(Method.GET, SmpAttr.NODE_INFO, 0, (1, i + 2), None,
                   lambda c, s, d: got.append((c, s, d)), i)
    assert len(out) == 2 and tx.outstanding == 2
    first = DrSmp.decode(out[0].mad)
    assert first.header.hop_count == 2 and first.hops == bytes((1, 2))
    # an agent stamped its id into TID bits 63-32: still ours
    assert tx.on_response(_answer(out[0], tid_high=0x77), 0.0)
    assert got[0][0:2] == (0, 0) and len(out) == 3  # the third went out
    assert not tx.on_response(_answer(out[0]), 0.0)  # a duplicate
    assert tx.drops["unmatched_response"] == 1
    tx.handle_timer(0.2)  # both outstanding resent once
    assert tx.counters["retries"] == 2 and len(out) == 5
    tx.handle_timer(0.4)  # out of retries
    assert [c for c, s, _d in got if s == TIMEOUT] == [1, 2]
    assert tx.idle and tx.counters["timeouts"] == 2 and tx.get_timer() is None


def test_requests_leave_in_the_order_made_when_answers_ask_for_more() -> None:
    # window 2: requests 0-3 made, 0 and 1 on the wire; the answer to 0 makes request 4,
    # which must wait behind 2 and 3 (queued first), not jump the queue
    out: list[OutMad] = []
    tx = SmpTransactions(out, window=2)

    def more(ctx: Any, status: int, data: bytes | None) -> None:
        if ctx == 0:
            tx.request(Method.GET, SmpAttr.NODE_INFO, 4, (1,), None, more, 4)

    for i in range(4):
        tx.request(Method.GET, SmpAttr.NODE_INFO, i, (1,), None, more, i)
    assert tx.on_response(_answer(out[0]), 0.0)
    while len(out) < 5:
        assert tx.on_response(_answer(out[len(out) - 2]), 0.0)
    assert [int.from_bytes(o.mad[20:24], "big") for o in out] == [0, 1, 2, 3, 4]
    assert tx.high_water == 2


def test_transactions_reject_long_paths_and_carry_status() -> None:
    out: list[OutMad] = []
    tx = SmpTransactions(out)
    with pytest.raises(ValueError):
        tx.request(Method.GET, SmpAttr.NODE_INFO, 0, (1,) * 64, None, lambda c, s, d: None)
    seen: list[int] = []
    tx.request(Method.SET, SmpAttr.PORT_INFO, 3, (), b"\x01" * 64,
               lambda c, s, d: seen.append(s))
    assert DrSmp.decode(out[0].mad).data == b"\x01" * 64
    tx.on_response(_answer(out[0], status=0x1C), 0.0)
    assert seen == [0x1C]


@given(st.integers(0, 0xFFFF), st.integers(0, 15), st.integers(0, 7), st.integers(0, 1),
       st.integers(0, 2**64 - 1), st.binary(min_size=64, max_size=64))
def test_fields_read_and_patch_agree_with_the_declared_layout(
    lid: int, state: int, lmc: int, crr: int, prefix: int, raw: bytes
) -> None:
    fields = Fields(PortInfo, "lid", "port_state", "lmc", "client_reregister", "gid_prefix")
    base = PortInfo.decode(raw)
    buf = bytearray(raw)
    fields.patch(buf, 0, lid, state, lmc, crr, prefix)
    want = base.replace(lid=lid, port_state=state, lmc=lmc, client_reregister=crr,
                        gid_prefix=prefix)
    assert PortInfo.decode(bytes(buf)) == want  # every field, the patched ones new
    assert buf[:8] == raw[:8]  # bytes of other fields untouched (M_Key)
    assert fields.read(bytes(buf)) == (lid, state, lmc, crr, prefix)
    si = Fields(SwitchInfo, "port_state_change", "linear_fdb_top")
    assert si.read(raw) == (SwitchInfo.decode(raw).port_state_change,
                            SwitchInfo.decode(raw).linear_fdb_top)


def test_fields_refuse_raw_fields() -> None:
    with pytest.raises(TypeError):
        Fields(PKeyTable, "pkey_block")
