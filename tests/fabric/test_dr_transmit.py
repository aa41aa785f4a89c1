"""A directed-route SMP is carried from link to link in one loop (``Fabric.transmit_dr``)
unless a tap records, when it goes hop by hop through the work queue so the capture sees
every hop. The two must do the same thing: the same counters on the same ports, the same
drops (faults, bad ports, M_Key), the same answers, port changes and agent deliveries, the
same random draws of a drop-rate fault. Two identical fabrics get the same SMPs, one with a
tap and one without, and are compared."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.fabric import Fabric, MadAgent, sma
from ipoib.fabric.topogen import fat_tree, line
from ipoib.sm.agent import SmBinding, run_until
from ipoib.wire.mad import Method, MgmtClass, build_dr_smp
from ipoib.wire.smp import PortInfo, SmpAttr

from .test_dr_fast import Tap, dr_smps

TOPO = line(4, 2)  # sw-2: hca-3, hca-4 on ports 1-2, sw-1 on port 3, sw-3 on port 4


def _state(fabric: Fabric, agents: list[MadAgent]) -> Any:
    fabric.process(fabric.now + 1)
    return ({n.name: +n.all_drops() for n in fabric.nodes.values()},
            [(p.xmit_pkts, p.xmit_words, p.rcv_pkts, p.rcv_words,
              sma.port_info(p, p.num).encode()) for n in fabric.nodes.values() for p in n.ports],
            [list(a.queue) for a in agents], fabric.rng.random())


def _run(mads: list[bytes], at: str, setup: int, tap: bool) -> Any:
    fabric = Fabric(TOPO, seed=setup)
    if tap:
        fabric.capture(Tap())  # type: ignore[arg-type]
    port_num = 0 if at.startswith("sw") else 1
    agents = [fabric.open_mad_agent(at, port_num, MgmtClass.SUBN_DIRECTED_ROUTE),
              fabric.open_mad_agent("sw-1", 0, MgmtClass.SUBN_DIRECTED_ROUTE, requests=True)]
    if setup & 1:
        fabric.set_mad_delay("sw-3", 0.25)
    if setup & 2:
        p = fabric.port("hca-4", 1)
        p.mkey, p.mkey_protect = 0x1234, 2
    if setup & 4:
        fabric.set_drop_rate("sw-2", 4, 0.5)
    if setup & 8:
        fabric.link_down("sw-1", 1)
    tids = []
    for mad in mads:
        try:
            tids.append(agents[0].send(mad))
        except ValueError as e:
            tids.append(type(e).__name__)
    return tids, _state(fabric, agents)


PATHS = [(0, 4), (0, 4, 1), (0, 3), (0, 3, 1), (0, 2), (0, 9), (0, 4, 9), (0, 1, 3), (0, 3, 2)]


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    path = draw(st.sampled_from(PATHS))
    attr = draw(st.sampled_from([SmpAttr.NODE_INFO, SmpAttr.PORT_INFO, SmpAttr.SM_INFO,
                                 SmpAttr.SWITCH_INFO, SmpAttr.NODE_DESCRIPTION]))
    method = draw(st.sampled_from([Method.GET, Method.SET]))
    data = b""
    if attr == SmpAttr.PORT_INFO and method == Method.SET:
        data = PortInfo(lid=draw(st.integers(1, 40)), port_state=draw(st.integers(0, 4)),
                        mkey=draw(st.sampled_from([0, 0x1234]))).encode()
    return build_dr_smp(method, attr, draw(st.integers(0, 4)), draw(st.integers(0, 99)), data,
                        initial_path=path, mkey=draw(st.sampled_from([0, 0x1234])))


@settings(max_examples=300, deadline=None)
@given(mads=st.lists(requests() | dr_smps(), min_size=1, max_size=6),
       at=st.sampled_from(["sw-2", "hca-3"]), setup=st.integers(0, 15))
def test_a_walked_smp_does_what_the_hop_by_hop_path_does(mads: list[bytes], at: str,
                                                         setup: int) -> None:
    assert _run(mads, at, setup, tap=False) == _run(mads, at, setup, tap=True)


def test_a_request_is_answered_with_the_return_path_filled_in() -> None:
    fabric = Fabric(TOPO)
    agent = fabric.open_mad_agent("hca-3", 1, MgmtClass.SUBN_DIRECTED_ROUTE)
    agent.send(build_dr_smp(Method.GET, SmpAttr.NODE_INFO, 0, 5, initial_path=(0, 1, 3, 1)))
    fabric.process(1.0)
    (rx,) = agent.queue
    assert rx.mad[3] == Method.GET_RESP and rx.mad[4] == 0x80 and rx.mad[6] == 0
    assert rx.mad[128 + 1:128 + 4] == bytes((1, 3, 1))  # InitialPath kept
    # in on sw-2 port 1, on sw-1 port 4 (its right-hand neighbour), on hca-1 port 1
    assert rx.mad[192 + 1:192 + 4] == bytes((1, 4, 1))
    assert fabric.port("hca-3", 1).xmit_pkts == 1 and fabric.port("hca-3", 1).rcv_pkts == 1


def _bring_up(tap: bool) -> Any:
    topo = fat_tree(12, radix=8)
    fabric = Fabric(topo)
    if tap:
        fabric.capture(Tap())  # type: ignore[arg-type]
    binding = SmBinding(fabric, topo.nodes[0].name)
    binding.start(0.0)
    run_until(fabric, binding, lambda: binding.sm.subnet_up, limit=60)
    assert binding.sm.subnet_up
    return (binding.sm.tx.stats, binding.sm.lids, _state(fabric, []),
            {sw.name: bytes(sw.lft[:64]) for sw in fabric.switches})


def test_a_bring_up_walked_equals_one_made_hop_by_hop() -> None:
    assert _bring_up(tap=False) == _bring_up(tap=True)
