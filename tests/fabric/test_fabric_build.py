"""Building a fabric from a Topology: nodes, ports, cables, initial port states, clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipoib.fabric import Fabric, Link, NodeSpec, Switch, Topology, netfile
from ipoib.fabric.node import ACTIVE, DOWN, INIT, LINK_UP, POLLING
from ipoib.wire.enums import NodeType

from .tinysm import run_until_idle

EXAMPLES = Path("/usr/share/doc/ibsim-utils/net-examples")
EXAMPLE_FILES = sorted(p for p in EXAMPLES.glob("net*")) if EXAMPLES.is_dir() else []


def _check_wiring(topo: Topology, fabric: Fabric) -> None:
    assert set(fabric.nodes) == {n.name for n in topo.nodes}
    cabled = set()
    for link in topo.links:
        a = fabric.port(link.a, link.a_port)
        b = fabric.port(link.b, link.b_port)
        assert a.peer is b and b.peer is a
        for p in (a, b):
            assert (p.phys, p.state, p.up) == (LINK_UP, INIT, True)
            cabled.add(p)
    for node in fabric.nodes.values():
        spec = topo.node(node.name)
        assert node.guid == spec.node_guid
        assert node.nports == spec.nports
        for p in node.ports[1:]:
            assert p.guid == spec.port_guid(p.num)
            if p not in cabled:
                assert (p.phys, p.state, p.up, p.peer) == (POLLING, DOWN, False, None)
        if isinstance(node, Switch):
            assert (node.ports[0].state, node.ports[0].phys) == (ACTIVE, LINK_UP)


@pytest.mark.skipif(not EXAMPLE_FILES, reason="ibsim example topologies not installed")
@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_ibsim_examples_build(path: Path) -> None:
    topo = netfile.load(path)
    fabric = Fabric(topo)
    _check_wiring(topo, fabric)
    assert fabric.drops() == {}


@pytest.mark.skipif(not EXAMPLE_FILES, reason="ibsim example topologies not installed")
def test_2sw2path4hca_guids_and_ports() -> None:
    fabric = Fabric(netfile.load(EXAMPLES / "net.2sw2path4hca"))
    assert fabric.node("Hca1").ports[1].guid == 0x100001
    assert fabric.node("Hca4").ports[1].guid == 0x10000A
    assert fabric.node("Switch2").guid == 0x200001
    # two parallel inter-switch links
    s1 = fabric.node("Switch1")
    assert s1.ports[3].peer is fabric.port("Switch2", 3)
    assert s1.ports[5].peer is fabric.port("Switch2", 5)
    assert s1.ports[4].state == DOWN
    # Hca ports 2 are not cabled
    assert fabric.port("Hca1", 2).phys == POLLING


def _hand_built() -> Topology:
    sw = NodeSpec(NodeType.SWITCH, "sw", 4, 0x200000, 0x200000, (0x200000,))
    a = NodeSpec(NodeType.CA, "a", 2, 0x100000, 0x100000, (0x100001, 0x100002), lids={1: 7})
    b = NodeSpec(NodeType.CA, "b", 1, 0x100003, 0x100003, (0x100004,), desc="host b")
    return Topology((sw, a, b), (Link("sw", 1, "a", 1), Link("sw", 4, "b", 1),
                                 Link("a", 2, "sw", 2)))


def test_hand_built_topology() -> None:
    topo = _hand_built()
    fabric = Fabric(topo)
    _check_wiring(topo, fabric)
    assert fabric.port("a", 1).lid == 7  # pre-assigned by the description
    assert fabric.node("b").desc == "host b"
    assert fabric.lid_owner(7) is fabric.port("a", 1)
    assert [n.name for n in fabric.switches] == ["sw"]
    assert [n.name for n in fabric.cas] == ["a", "b"]


def test_fabrics_are_independent() -> None:
    f1, f2 = Fabric(_hand_built()), Fabric(_hand_built())
    f1.link_down("a", 1)
    assert f1.port("a", 1).state == DOWN
    assert f2.port("a", 1).state == INIT
    assert f1.node("sw") is not f2.node("sw")


def test_link_down_and_up() -> None:
    fabric = Fabric(_hand_built())
    a1, sw1 = fabric.port("a", 1), fabric.port("sw", 1)
    fabric.link_down("sw", 1, now=5.0)
    assert fabric.now == 5.0
    for p in (a1, sw1):
        assert (p.state, p.up) == (DOWN, False)
        assert p.link_downed == 1
    assert fabric.node("sw").port_state_change  # a link-driven change
    fabric.link_up("sw", 1)
    for p in (a1, sw1):
        assert (p.state, p.phys) == (INIT, LINK_UP)


def test_timers_and_deferred_run_in_order() -> None:
    fabric = Fabric(_hand_built())
    seen: list[tuple[str, float]] = []
    fabric.schedule(2.0, lambda: seen.append(("t2", fabric.now)))
    fabric.schedule(1.0, lambda: seen.append(("t1", fabric.now)))
    cancelled = fabric.schedule(1.5, lambda: seen.append(("never", fabric.now)))
    cancelled.cancel()
    fabric.defer(lambda: seen.append(("d", fabric.now)))
    assert fabric.get_timer() == 0.0  # deferred work is due now
    fabric.process(0.0)
    assert seen == [("d", 0.0)]
    assert fabric.get_timer() == 1.0
    run_until_idle(fabric)
    assert seen == [("d", 0.0), ("t1", 1.0), ("t2", 2.0)]
    assert fabric.get_timer() is None


def test_deferred_callbacks_are_not_reentrant() -> None:
    fabric = Fabric(_hand_built())
    depth = [0]
    calls = []

    def cb(n: int) -> None:
        depth[0] += 1
        calls.append(depth[0])
        if n:
            fabric.defer(lambda: cb(n - 1))
        depth[0] -= 1

    fabric.defer(lambda: cb(50))
    fabric.process(0.0)
    assert calls == [1] * 51


def test_every_drop_reason_is_documented() -> None:
    """The reasons the code counts are exactly the documented set (node.DROP_REASONS)."""
    import re

    import ipoib.fabric as pkg
    from ipoib.fabric.node import DROP_REASONS

    used: set[str] = set()
    for src in Path(pkg.__file__).parent.glob("*.py"):
        used |= set(re.findall(r'drops\["([a-z0-9_]+)"\]', src.read_text()))
    assert used == set(DROP_REASONS)
