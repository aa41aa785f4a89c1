"""Generated fabrics: the shapes of ibsim-protocol.md §15, 3-level pods, lines and rings.

Every shape is checked structurally (who is cabled to whom, how many cables per pair, no port
used twice) rather than by counts alone, and must survive dumps -> loads unchanged.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque

import pytest

from ipoib.fabric import topogen
from ipoib.fabric.netfile import dumps, loads
from ipoib.fabric.topology import Topology
from ipoib.wire.enums import NodeType


def neighbours(topo: Topology) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for ln in topo.links:
        out[ln.a].append(ln.b)
        out[ln.b].append(ln.a)
    return out


def check_wellformed(topo: Topology) -> None:
    """Ports in range and used once, ibsim GUID numbering, every HCA cabled, all connected."""
    nodes = {n.name: n for n in topo.nodes}
    used = Counter((ln.a, ln.a_port) for ln in topo.links)
    used.update((ln.b, ln.b_port) for ln in topo.links)
    assert max(used.values()) == 1
    assert all(1 <= p <= nodes[name].nports for name, p in used)
    kinds = [n.kind for n in topo.nodes]
    assert kinds == sorted(kinds, key=lambda k: k != NodeType.SWITCH)  # switches first
    assert [n.node_guid for n in topo.switches] == [
        0x200000 + i for i in range(len(topo.switches))]
    assert [n.node_guid for n in topo.cas] == [0x100000 + 2 * i for i in range(len(topo.cas))]
    assert all(n.port_guids == (n.node_guid + 1,) and n.nports == 1 for n in topo.cas)
    assert all((n.name, 1) in used for n in topo.cas)
    assert [n.name for n in topo.cas] == [f"hca-{i + 1}" for i in range(len(topo.cas))]
    adj = neighbours(topo)
    seen, todo = {topo.nodes[0].name}, deque([topo.nodes[0].name])
    while todo:
        for nb in adj[todo.popleft()]:
            if nb not in seen:
                seen.add(nb)
                todo.append(nb)
    assert seen == set(nodes)
    back = loads(dumps(topo))
    assert (back.nodes, back.links) == (topo.nodes, topo.links)


# (HCAs, leaves, HCAs per leaf, spines, radix): ibsim-protocol.md §15, plus the demo's 8.
SHAPES = [(108, 6, 18, 3, 36), (324, 18, 18, 9, 36), (648, 36, 18, 18, 36),
          (1944, 54, 36, 36, 72), (8, 4, 2, 2, 36)]


@pytest.mark.parametrize("hcas,nleaves,per_leaf,nspines,radix", SHAPES)
def test_two_level_shapes(hcas: int, nleaves: int, per_leaf: int, nspines: int,
                          radix: int) -> None:
    topo = topogen.fat_tree(hcas)
    leaves = [n for n in topo.switches if n.name.startswith("sw-l1-")]
    spines = [n for n in topo.switches if n.name.startswith("sw-l2-")]
    assert (len(leaves), len(spines), len(topo.cas)) == (nleaves, nspines, hcas)
    assert len(topo.switches) == nleaves + nspines
    assert {n.nports for n in topo.switches} == {radix}
    pairs = Counter((ln.a, ln.b) for ln in topo.links if ln.b.startswith("sw-l2-"))
    assert set(pairs.values()) == {per_leaf // nspines}  # uplinks spread evenly
    assert len(pairs) == nleaves * nspines  # every leaf reaches every spine
    adj = neighbours(topo)
    for leaf in leaves:
        hosts = [nb for nb in adj[leaf.name] if nb.startswith("hca-")]
        assert len(hosts) == per_leaf
        assert len(adj[leaf.name]) == 2 * per_leaf
    assert all(len(adj[s.name]) <= radix for s in spines)
    assert topo.node("hca-1") and adj["hca-1"] == ["sw-l1-1"]
    assert adj[f"hca-{hcas}"] == [f"sw-l1-{nleaves}"]
    check_wellformed(topo)


def test_explicit_radix_gives_the_64_port_shape() -> None:
    topo = topogen.fat_tree(1536, radix=64)
    leaves = [n for n in topo.switches if n.name.startswith("sw-l1-")]
    assert (len(leaves), len(topo.switches) - len(leaves)) == (48, 32)
    check_wellformed(topo)


@pytest.mark.parametrize("hcas", [1, 2, 3, 5, 17, 35, 36, 37, 100, 649, 2592])
def test_two_level_any_size(hcas: int) -> None:
    topo = topogen.fat_tree(hcas)
    assert len(topo.cas) == hcas
    check_wellformed(topo)


@pytest.mark.parametrize("hcas,radix,npods", [(8, 4, 2), (108, 8, 7), (10000, 36, 31)])
def test_three_level_pods(hcas: int, radix: int, npods: int) -> None:
    topo = topogen.fat_tree(hcas, levels=3)
    half = radix // 2
    by_level = Counter(n.name.split("-")[1] for n in topo.switches)
    assert by_level["l2"] == npods * half and by_level["l3"] == half * half
    assert {n.nports for n in topo.switches} == {radix}
    adj = neighbours(topo)
    for i in range(by_level["l2"]):
        pod, j = divmod(i, half)
        agg = f"sw-l2-{i + 1}"
        leaves = {nb for nb in adj[agg] if nb.startswith("sw-l1-")}
        cores = {nb for nb in adj[agg] if nb.startswith("sw-l3-")}
        assert cores == {f"sw-l3-{j * half + m + 1}" for m in range(half)}
        assert all((int(leaf.rsplit("-", 1)[1]) - 1) // half == pod for leaf in leaves)
    for c in range(half * half):  # each core switch: one cable to each pod
        assert len(adj[f"sw-l3-{c + 1}"]) == npods
    for leaf in (n.name for n in topo.switches if n.name.startswith("sw-l1-")):
        up = [nb for nb in adj[leaf] if nb.startswith("sw-l2-")]
        assert len(up) == half and len(set(up)) == half
    assert len(topo.cas) == hcas
    if hcas <= 108:
        check_wellformed(topo)


@pytest.mark.slow
def test_ten_thousand_round_trip() -> None:
    for levels in (2, 3):
        check_wellformed(topogen.fat_tree(10000, levels=levels))


def test_ten_thousand_two_levels_picks_a_bigger_radix() -> None:
    topo = topogen.fat_tree(10000)
    assert len(topo.cas) == 10000 and {n.nports for n in topo.switches} == {144}


@pytest.mark.parametrize("closed", [False, True])
def test_line_and_ring(closed: bool) -> None:
    topo = (topogen.ring if closed else topogen.line)(5, 3)
    assert [n.name for n in topo.switches] == [f"sw-{i}" for i in range(1, 6)]
    assert {n.nports for n in topo.switches} == {5}
    adj = neighbours(topo)
    for i in range(1, 6):
        assert sorted(adj[f"sw-{i}"])[:3] == [f"hca-{3 * (i - 1) + h}" for h in (1, 2, 3)]
    inter = {(ln.a, ln.a_port, ln.b, ln.b_port) for ln in topo.links
             if ln.b.startswith("sw-")}
    expect = {(f"sw-{i}", 5, f"sw-{i + 1}", 4) for i in range(1, 5)}
    if closed:
        expect.add(("sw-1", 4, "sw-5", 5))
    assert inter == expect
    check_wellformed(topo)


def test_line_without_hcas_and_bad_arguments() -> None:
    assert len(topogen.line(3, 0).links) == 2
    for call in (lambda: topogen.fat_tree(0), lambda: topogen.fat_tree(8, levels=4),
                 lambda: topogen.fat_tree(8, radix=7), lambda: topogen.fat_tree(700, radix=36),
                 lambda: topogen.fat_tree(20000, levels=3, radix=36),
                 lambda: topogen.ring(2, 1), lambda: topogen.line(0, 1),
                 lambda: topogen.line(2, -1)):
        with pytest.raises(ValueError):
            call()
