"""Multicast spanning trees and MulticastForwardingTable port masks (IBA 14.2.5.11).

One tree per multicast group, built as OpenSM's multicast manager does (``osm_mcast_mgr.c``):

- The root is the switch with the smallest maximum distance, in links, to the member ports;
  ties go to the first switch in OpenSM's GUID table order.
- The tree is the breadth-first tree from the root over switch-to-switch links, neighbours
  taken by ascending port number; of parallel cables the lowest-numbered port is used. It is
  pruned to the branches that lead to members.
- Each switch on the tree forwards to its member ports, its child links and the link to its
  parent, so a packet sent by any member reaches every other member exactly once (a switch
  never sends a packet back out of the port it came in on) and no one else.
- A group with fewer than two member ports gets no entries ("nothing to do", as OpenSM logs).

Masks have bit n for port n. :class:`McastPlanner` keeps the switch-graph work (distance
levels, breadth-first trees per root) across joins and leaves, so recomputing a tree after
each change is cheap; build a new planner when the topology changes.

The MFT layout is wire-formats.md §4.10: block b entry i is MLID 0xC000 + 32·b + i; position p
holds ports 16·p .. 16·p + 15; AttributeModifier = position << 28 | block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..wire.enums import NodeType
from .graph import SubnetGraph, opensm_order
from .routing import distance_levels

MLID_BASE = 0xC000
"""The first multicast LID (IBA 4.1.3)."""

MLID_MAX = 0xFFFE
"""The last multicast LID; 0xFFFF is the permissive LID."""

MFT_BLOCK = 32
"""PortMask entries per MulticastForwardingTable block."""

PORTS_PER_POSITION = 16
"""Ports per PortMask position."""


@dataclass(frozen=True, slots=True)
class McastTree:
    """A group's tree: the root switch and each tree switch's port mask.

    ``unreachable`` lists member endports the tree cannot reach (not cabled to a switch, or
    cut off from the root).
    """

    root: int | None
    masks: dict[int, int]
    unreachable: tuple[tuple[int, int], ...] = ()


class McastPlanner:
    """Builds multicast trees on one subnet graph; reuse it while the topology stays put."""

    def __init__(self, graph: SubnetGraph) -> None:
        self.graph = graph
        switches = sorted(graph.switches, key=lambda n: opensm_order(n.guid))
        self.guids = [sw.guid for sw in switches]
        self.index = {g: i for i, g in enumerate(self.guids)}
        self.links: list[list[tuple[int, int, int]]] = []  # (port, neighbour index, its port)
        for sw in switches:
            row = [
                (num, self.index[peer], peer_num)
                for num, peer, peer_num in graph.neighbours(sw.guid)
                if peer in self.index and peer != sw.guid
            ]
            self.links.append(row)
        self._levels: list[list[int]] | None = None
        self._trees: dict[int, list[tuple[int, int, int]]] = {}

    def tree(self, members: Iterable[tuple[int, int]], root: int | None = None) -> McastTree:
        """The tree for member endports (node GUID, port); ``root`` forces the root switch."""
        ports: dict[int, int] = {}  # switch index → mask of member ports on it
        lost: list[tuple[int, int]] = []
        count = 0
        for guid, num in dict.fromkeys(members):
            where = self._attachment(guid, num)
            if where is None:
                lost.append((guid, num))
                continue
            s, port = where
            ports[s] = ports.get(s, 0) | 1 << port
            count += 1
        if count < 2:
            return McastTree(None, {}, tuple(lost))
        r = self._root(ports) if root is None else self.index[root]
        parent = self._bfs(r)
        masks: dict[int, int] = {}
        for s, mask in ports.items():
            if s != r and parent[s][0] < 0:
                lost.extend(self._members_on(s, mask))
                continue
            masks[s] = masks.get(s, 0) | mask
            while s != r:
                up, up_port, down_port = parent[s]
                grown = s in masks and masks[s] >> down_port & 1
                masks[s] = masks.get(s, 0) | 1 << down_port
                if grown:
                    break
                masks[up] = masks.get(up, 0) | 1 << up_port
                s = up
        return McastTree(
            self.guids[r], {self.guids[s]: m for s, m in masks.items()}, tuple(lost)
        )

    def _attachment(self, guid: int, num: int) -> tuple[int, int] | None:
        node = self.graph.nodes.get(guid)
        if node is None:
            return None
        if node.kind == NodeType.SWITCH:
            return (self.index[guid], 0) if num == 0 else None
        port = node.ports.get(num)
        peer = port.neighbour if port is not None else None
        if peer is None or peer[0] not in self.index:
            return None
        return self.index[peer[0]], peer[1]

    def _members_on(self, s: int, mask: int) -> list[tuple[int, int]]:
        out = []
        for num, peer, peer_num in self.graph.neighbours(self.guids[s]):
            if mask >> num & 1 and peer not in self.index:
                out.append((peer, peer_num))
        if mask & 1:
            out.append((self.guids[s], 0))
        return out

    def _root(self, ports: dict[int, int]) -> int:
        """The switch with the least maximum distance (in links) to the member ports."""
        if self._levels is None:
            self._levels = distance_levels([[t for _p, t, _q in row] for row in self.links])
        here = 0
        remote = 0
        for s, mask in ports.items():
            if mask & ~1:
                remote |= 1 << s  # CA members: one more link past their switch
            if mask & 1:
                here |= 1 << s  # the switch itself is a member
        best, best_key = 0, (1 << 30, 1 << 30)
        for s, levels in enumerate(self._levels):
            far = -1
            missing = here | remote
            for d, level in enumerate(levels):
                if level & here:
                    far = max(far, d)
                if level & remote:
                    far = max(far, d + 1)
                missing &= ~level
            key = (missing.bit_count(), far)  # reach every member first, then be central
            if key < best_key:
                best, best_key = s, key
        return best

    def _bfs(self, root: int) -> list[tuple[int, int, int]]:
        """Per switch: (parent index, parent's port, own port towards the parent); -1 if none."""
        tree = self._trees.get(root)
        if tree is None:
            tree = [(-1, 0, 0)] * len(self.guids)
            seen = {root}
            queue = [root]
            for v in queue:
                for port, t, t_port in self.links[v]:
                    if t not in seen:
                        seen.add(t)
                        tree[t] = (v, port, t_port)
                        queue.append(t)
            self._trees[root] = tree
        return tree


def build_tree(
    graph: SubnetGraph, members: Iterable[tuple[int, int]], root: int | None = None
) -> McastTree:
    """One-off :meth:`McastPlanner.tree` (use a planner when building many trees)."""
    return McastPlanner(graph).tree(members, root)


def mask_changes(old: Mapping[int, int], new: Mapping[int, int]) -> dict[int, int]:
    """The switches whose mask for a group changed, with the new mask (0 = remove)."""
    out = {g: m for g, m in new.items() if old.get(g, 0) != m}
    out.update({g: 0 for g in old if g not in new and old[g]})
    return out


def check_mlid(mlid: int) -> int:
    """``mlid`` if it is a multicast LID, else ValueError."""
    if not MLID_BASE <= mlid <= MLID_MAX:
        raise ValueError(f"{mlid:#x} is not a multicast LID ({MLID_BASE:#x}..{MLID_MAX:#x})")
    return mlid


def mft_location(mlid: int) -> tuple[int, int]:
    """(block, entry index) of ``mlid`` in a MulticastForwardingTable."""
    return divmod(check_mlid(mlid) - MLID_BASE, MFT_BLOCK)


def mft_attr_mod(position: int, block: int) -> int:
    """The MFT AttributeModifier: position in bits 31-28, block in bits 8-0."""
    if not 0 <= position <= 15 or not 0 <= block <= 0x1FF:
        raise ValueError(f"MFT position {position} / block {block} out of range")
    return position << 28 | block


def positions(nports: int) -> int:
    """How many 16-port positions a switch with ports 0..``nports`` needs."""
    return nports // PORTS_PER_POSITION + 1


def mft_blocks(mlid: int, mask: int, nports: int) -> list[tuple[int, int, int, int]]:
    """(position, block, entry index, 16-bit PortMask) for one MLID's mask on one switch."""
    block, entry = mft_location(mlid)
    return [
        (pos, block, entry, mask >> (PORTS_PER_POSITION * pos) & 0xFFFF)
        for pos in range(positions(nports))
    ]


def mft_table(masks: Mapping[int, int], nports: int) -> dict[tuple[int, int], tuple[int, ...]]:
    """Whole MFT blocks for one switch: (position, block) → 32 PortMasks, for MLID → mask.

    Only blocks holding at least one of the given MLIDs appear; other entries in them are 0.
    """
    out: dict[tuple[int, int], list[int]] = {}
    for mlid, mask in masks.items():
        for pos, block, entry, bits in mft_blocks(mlid, mask, nports):
            out.setdefault((pos, block), [0] * MFT_BLOCK)[entry] = bits
    return {key: tuple(value) for key, value in sorted(out.items())}
