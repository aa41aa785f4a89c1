"""Generated topologies: fat trees sized by HCA count, lines and rings of switches.

Why generators: a topology file for 648 or 10000 HCAs is not written by hand, and tests need
fabrics of known shape. Every generator returns a :class:`Topology` in the canonical order
of :func:`netfile.canonical_links`, so ``loads(dumps(t))`` gives ``t`` back.

Naming scheme (1-based, documented for users and tests):

- ``hca-<n>``: single-port HCAs, numbered leaf by leaf in order, ``hca-1`` on the first leaf.
- ``sw-l<level>-<n>``: fat-tree switches; level 1 = leaves (HCAs attach there), level 2 =
  spines (2 levels) or aggregation switches (3 levels), level 3 = core switches.
- ``sw-<n>``: the switches of a line or ring.

Nodes come in file order switches first (level 1, 2, 3), then HCAs; GUIDs follow ibsim's
default numbering in that order (switches 0x200000 + i, HCA i at 0x100000 + 2 i).
"""

from __future__ import annotations

import math

from ..wire.enums import NodeType
from .netfile import GUID_BASE, canonical_links
from .topology import Link, NodeSpec, Topology

DEFAULT_RADIX = 36
_RADIX_LADDER = (36, 72, 144, 254)
VENDOR_ID = 0x2C9


class _Builder:
    """Accumulates nodes with ibsim-numbered GUIDs, and cables between them."""

    def __init__(self) -> None:
        self.nodes: list[NodeSpec] = []
        self.links: list[Link] = []
        self.next_guid = dict(GUID_BASE)

    def switch(self, name: str, nports: int) -> str:
        guid = self.next_guid[NodeType.SWITCH]
        self.next_guid[NodeType.SWITCH] += 1
        self.nodes.append(NodeSpec(NodeType.SWITCH, name, nports, guid, guid, (guid,),
                                   vendor_id=VENDOR_ID))
        return name

    def hca(self, name: str) -> str:
        guid = self.next_guid[NodeType.CA]
        self.next_guid[NodeType.CA] += 2  # one port: node GUID, then port GUID
        self.nodes.append(NodeSpec(NodeType.CA, name, 1, guid, guid, (guid + 1,),
                                   vendor_id=VENDOR_ID))
        return name

    def cable(self, a: str, a_port: int, b: str, b_port: int) -> None:
        self.links.append(Link(a, a_port, b, b_port))

    def build(self, source: str) -> Topology:
        # Switches first, then HCAs, each group in creation order.
        order = sorted(range(len(self.nodes)),
                       key=lambda i: (self.nodes[i].kind != NodeType.SWITCH, i))
        nodes = tuple(self.nodes[i] for i in order)
        return Topology(nodes=nodes, links=canonical_links(nodes, self.links), source=source)


def _check_radix(radix: int) -> None:
    if radix < 4 or radix % 2 or radix > 254:
        raise ValueError(f"radix must be an even number of ports from 4 to 254, got {radix}")


def _two_level_shape(hcas: int, radix: int) -> tuple[int, int, int]:
    """(HCAs per leaf, leaves, spines) for a 2-level tree.

    Each leaf gives half its ports to HCAs and half to uplinks, spread evenly over the
    spines: the number of spines is the smallest divisor of the uplink count that keeps every
    spine within ``radix`` ports (and at least two when there are two uplinks). Below
    ``radix`` HCAs, leaves take about sqrt(hcas/2) HCAs each so the tree keeps several
    leaves (8 HCAs: 4 leaves of 2, 2 spines)."""
    half = radix // 2
    per_leaf = half if hcas >= radix else max(1, min(half, math.isqrt(hcas // 2)))
    leaves = -(-hcas // per_leaf)
    need = max(min(2, per_leaf), -(-leaves * per_leaf // radix))
    spines = next((d for d in range(need, per_leaf + 1) if per_leaf % d == 0), 0)
    if not spines:
        raise ValueError(f"{hcas} HCAs do not fit a 2-level fat tree of {radix}-port switches "
                         f"(at most {radix * half}); use more ports or 3 levels")
    return per_leaf, leaves, spines


def fat_tree(hcas: int, levels: int = 2, radix: int | None = None) -> Topology:
    """A fat tree holding ``hcas`` single-port HCAs.

    Two levels mirror ibsim-protocol.md §15 (108 HCAs: 6 leaves x 18, 3 spines, 36 ports;
    648: 36 x 18, 18 spines; 1944: 54 x 36, 36 spines, 72 ports). Without ``radix`` the
    smallest of 36, 72, 144, 254 ports that fits is used. Three levels build the k-ary fat
    tree of pods (k = radix; smallest even k with k^3/4 >= hcas when not given): each pod has
    k/2 leaves and k/2 aggregation switches, fully meshed; aggregation switch j of every pod
    reaches core switches j*k/2 .. (j+1)*k/2 - 1; only the pods needed are built."""
    if hcas < 1:
        raise ValueError("a fat tree needs at least one HCA")
    if levels == 2:
        if radix is None:
            radix = next((r for r in _RADIX_LADDER if hcas <= r * (r // 2)), _RADIX_LADDER[-1])
        _check_radix(radix)
        return _fat_tree_2(hcas, radix)
    if levels == 3:
        if radix is None:
            radix = 4
            while radix ** 3 // 4 < hcas and radix < 254:
                radix += 2
        _check_radix(radix)
        return _fat_tree_3(hcas, radix)
    raise ValueError(f"levels must be 2 or 3, got {levels}")


def _fat_tree_2(hcas: int, radix: int) -> Topology:
    per_leaf, nleaves, nspines = _two_level_shape(hcas, radix)
    per_pair = per_leaf // nspines
    b = _Builder()
    leaves = [b.switch(f"sw-l1-{i + 1}", radix) for i in range(nleaves)]
    spines = [b.switch(f"sw-l2-{i + 1}", radix) for i in range(nspines)]
    for n in range(hcas):
        b.cable(leaves[n // per_leaf], n % per_leaf + 1, b.hca(f"hca-{n + 1}"), 1)
    for li, leaf in enumerate(leaves):
        for u in range(per_leaf):  # uplink u goes to spine u % S, its (u // S)-th cable
            s = u % nspines
            b.cable(leaf, per_leaf + u + 1, spines[s], li * per_pair + u // nspines + 1)
    return b.build(f"<fat-tree {hcas} HCAs, 2 levels, {radix} ports>")


def _fat_tree_3(hcas: int, radix: int) -> Topology:
    half = radix // 2
    per_pod = half * half
    npods = -(-hcas // per_pod)
    if npods > radix:
        raise ValueError(f"{hcas} HCAs do not fit a 3-level fat tree of {radix}-port switches "
                         f"(at most {radix * per_pod})")
    b = _Builder()
    nleaves = sum(-(-min(per_pod, hcas - pod * per_pod) // half) for pod in range(npods))
    leaves = [b.switch(f"sw-l1-{i + 1}", radix) for i in range(nleaves)]
    aggs = [b.switch(f"sw-l2-{i + 1}", radix) for i in range(npods * half)]
    cores = [b.switch(f"sw-l3-{i + 1}", radix) for i in range(per_pod)]
    for n in range(hcas):
        b.cable(leaves[n // half], n % half + 1, b.hca(f"hca-{n + 1}"), 1)
    for li, leaf in enumerate(leaves):
        pod, pos = divmod(li, half)
        for j in range(half):  # leaf -> every aggregation switch of its pod
            b.cable(leaf, half + j + 1, aggs[pod * half + j], pos + 1)
    for ai, agg in enumerate(aggs):
        pod, j = divmod(ai, half)
        for m in range(half):  # aggregation j -> its group of k/2 core switches
            b.cable(agg, half + m + 1, cores[j * half + m], pod + 1)
    return b.build(f"<fat-tree {hcas} HCAs, 3 levels, {radix} ports>")


def _chain(switches: int, hcas_per_switch: int, closed: bool) -> Topology:
    if hcas_per_switch < 0:
        raise ValueError("hcas_per_switch must not be negative")
    nports = hcas_per_switch + 2
    if nports > 254:
        raise ValueError("at most 252 HCAs per switch")
    b = _Builder()
    sws = [b.switch(f"sw-{i + 1}", nports) for i in range(switches)]
    for i, sw in enumerate(sws):
        for h in range(hcas_per_switch):
            b.cable(sw, h + 1, b.hca(f"hca-{i * hcas_per_switch + h + 1}"), 1)
    # Port M+2 goes to the next switch's port M+1.
    for i in range(switches - 1 + closed):
        b.cable(sws[i], nports, sws[(i + 1) % switches], nports - 1)
    kind = "ring" if closed else "line"
    return b.build(f"<{kind} of {switches} switches, {hcas_per_switch} HCAs each>")


def line(switches: int, hcas_per_switch: int) -> Topology:
    """``switches`` switches in a chain, each with ``hcas_per_switch`` HCAs on ports 1..M;
    port M+2 of ``sw-i`` is cabled to port M+1 of ``sw-(i+1)``."""
    if switches < 1:
        raise ValueError("a line needs at least one switch")
    return _chain(switches, hcas_per_switch, closed=False)


def ring(switches: int, hcas_per_switch: int) -> Topology:
    """A :func:`line` whose last switch is also cabled back to the first."""
    if switches < 3:
        raise ValueError("a ring needs at least three switches")
    return _chain(switches, hcas_per_switch, closed=True)
