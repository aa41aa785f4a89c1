"""Checking routes by walking the forwarding tables, as a packet would (IBA 18.2.4.3.2).

:func:`verify_routes` answers "can every HCA reach every LID, without loops, and in how many
hops?" for ``ipoib sweep`` and the tests. It reads only the graph, the LFTs and the LIDs, never
the routing engine's internals, so it checks whatever programmed the tables.

Walks are per destination LID and memoised per switch: the path from a switch to a LID is the
same whichever HCA the packet came from, so each (switch, LID) entry is followed once and HCAs
on the same leaf share the result; pair counts are tallied per leaf, not per HCA. For 10,000
HCAs that is about 0.4 s on a two-level fat tree and 2 s on a three-level one.

Hop counts are links traversed from the source HCA: an HCA to its own leaf switch's LID is 1,
to another HCA on the same leaf 2, across a two-level fat tree 4.

:func:`credit_loop` looks for a cycle in the channel dependency graph (a switch-to-switch link
waiting on the next one), the condition for credit deadlock; min-hop on a ring has one,
up/down never does. It costs one step per (switch, LID) and is meant for small subnets.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..wire.enums import NodeType
from .graph import SubnetGraph

_UNKNOWN = -1
_ON_PATH = -2
_DROP = -3
_LOOP = -4


@dataclass(slots=True)
class RouteReport:
    """What walking the LFTs found. ``ok`` when nothing is unreachable and nothing loops."""

    sources: int = 0
    destinations: int = 0
    pairs: int = 0
    unreachable: int = 0
    loops: int = 0
    hops: Counter[int] = field(default_factory=Counter)
    unreachable_examples: list[tuple[int, int]] = field(default_factory=list)
    """(source port GUID, DLID) pairs that are dropped, at most ``limit`` of them."""
    loop_examples: list[tuple[int, int]] = field(default_factory=list)
    """(source port GUID, DLID) pairs whose packets circle forever, at most ``limit``."""

    @property
    def ok(self) -> bool:
        """True when every pair is delivered."""
        return not self.unreachable and not self.loops

    @property
    def max_hops(self) -> int:
        """The longest delivered route, in links (0 if none)."""
        return max(self.hops, default=0)


@dataclass(frozen=True, slots=True)
class Trace:
    """One packet's walk: (node GUID, egress port) per switch, and how it ended."""

    hops: tuple[tuple[int, int], ...]
    outcome: str
    """``"delivered"``, ``"dropped"`` or ``"loop"``."""


class _Tables:
    """Switches indexed, with each port resolved to a neighbour switch or a delivered LID."""

    def __init__(self, graph: SubnetGraph, lfts: Mapping[int, bytes | bytearray],
                 lids: Mapping[int, int]) -> None:
        switches = graph.switches
        self.guids = [sw.guid for sw in switches]
        self.index = {g: i for i, g in enumerate(self.guids)}
        self.lfts = [bytes(lfts.get(g, b"")) for g in self.guids]
        # next_hop[s][p]: >= 0 next switch index; <= -2: delivers LID -(v + 2); -1: drop.
        self.next_hop: list[list[int]] = []
        for sw in switches:
            row = [-1] * 256
            port0 = sw.ports.get(0)
            own = lids.get(port0.guid, 0) if port0 is not None else 0
            if own:
                row[0] = -own - 2
            for num, peer_guid, peer_num in graph.neighbours(sw.guid):
                peer = graph.nodes[peer_guid]
                if peer.kind == NodeType.SWITCH:
                    row[num] = self.index[peer_guid]
                else:
                    lid = lids.get(peer.ports[peer_num].guid, 0)
                    if lid:
                        row[num] = -lid - 2
            self.next_hop.append(row)

    def walk(self, dlid: int, starts: list[int]) -> list[int]:
        """Links from each switch to the port with ``dlid``, or _DROP / _LOOP; memoised.

        Only switches on some walk from ``starts`` are filled in; the rest stay _UNKNOWN.
        """
        res = [_UNKNOWN] * len(self.guids)
        lfts = self.lfts
        next_hop = self.next_hop
        target = -dlid - 2
        for start in starts:
            if res[start] != _UNKNOWN:
                continue
            path: list[int] = []
            x = start
            while True:
                base = res[x]
                if base != _UNKNOWN:
                    if base == _ON_PATH:
                        base = _LOOP
                    break
                res[x] = _ON_PATH
                path.append(x)
                lft = lfts[x]
                port = lft[dlid] if dlid < len(lft) else 0xFF
                step = next_hop[x][port]
                if step >= 0:
                    x = step
                    continue
                base = (0 if port == 0 else 1) if step == target else _DROP
                res[path.pop()] = base
                break
            for node in reversed(path):
                if base >= 0:
                    base += 1
                res[node] = base
        return res


def verify_routes(
    graph: SubnetGraph,
    lfts: Mapping[int, bytes | bytearray],
    lids: Mapping[int, int],
    *,
    limit: int = 20,
) -> RouteReport:
    """Walk every (HCA port, LID) pair through the LFTs; ``lids`` maps port GUIDs to LIDs.

    Sources are the LID-bearing CA/router ports; destinations every LID in ``lids`` whose port
    is in the graph, switches included. A pair of an HCA with itself is not counted.
    """
    tables = _Tables(graph, lfts, lids)
    report = RouteReport()
    by_switch: dict[int, list[tuple[int, int]]] = {}  # switch index → its (GUID, LID) HCAs
    direct: list[tuple[int, int, int]] = []
    for node, port in graph.endports:
        lid = lids.get(port.guid, 0)
        if node.kind == NodeType.SWITCH or not lid:
            continue
        report.sources += 1
        peer = port.neighbour
        if peer is not None and peer[0] in tables.index:
            by_switch.setdefault(tables.index[peer[0]], []).append((port.guid, lid))
        else:
            peer_lid = 0
            if peer is not None and peer[0] in graph.nodes:
                far = graph.nodes[peer[0]].ports.get(peer[1])
                peer_lid = lids.get(far.guid, 0) if far is not None else 0
            direct.append((port.guid, lid, peer_lid))
    present = {port.guid for _node, port in graph.endports}
    dlids = sorted({lid for guid, lid in lids.items() if guid in present and lid})
    report.destinations = len(dlids)
    groups = sorted(by_switch.items())
    starts = [s for s, _group in groups]
    home = {lid: s for s, group in groups for _g, lid in group}  # HCA LID → its switch
    sizes: dict[int, list[int]] = {}
    for s, group in groups:
        sizes.setdefault(len(group), []).append(s)
    classes = [(k, operator.itemgetter(*ss), len(ss)) for k, ss in sizes.items()]
    sources = sum(len(group) for _s, group in groups)
    for dlid in dlids:
        res = tables.walk(dlid, starts)
        tally: Counter[int] = Counter()
        for k, get, count in classes:
            got = get(res)
            for value, times in Counter(got if count > 1 else (got,)).items():
                tally[value] += times * k
        own = home.get(dlid)
        if own is not None:
            tally[res[own]] -= 1  # an HCA does not send to itself
        report.pairs += sources - (own is not None)
        failed = False
        for value, times in tally.items():
            if value >= 0:
                if times:
                    report.hops[value + 1] += times
            elif times:
                failed = True
        if failed:
            for s, group in groups:
                if res[s] < 0:
                    for guid, lid in group:
                        if lid != dlid:
                            _fail(report, res[s], (guid, dlid), limit)
        for guid, lid, peer_lid in direct:
            if lid == dlid:
                continue
            report.pairs += 1
            if peer_lid == dlid:
                report.hops[1] += 1
            else:
                _fail(report, _DROP, (guid, dlid), limit)
    return report


def _fail(report: RouteReport, code: int, pair: tuple[int, int], limit: int) -> None:
    if code == _LOOP:
        report.loops += 1
        if len(report.loop_examples) < limit:
            report.loop_examples.append(pair)
    else:
        report.unreachable += 1
        if len(report.unreachable_examples) < limit:
            report.unreachable_examples.append(pair)


def trace(
    graph: SubnetGraph,
    lfts: Mapping[int, bytes | bytearray],
    lids: Mapping[int, int],
    src: tuple[int, int],
    dlid: int,
) -> Trace:
    """Follow one packet from endport ``src`` = (node GUID, port) to ``dlid``, switch by switch."""
    tables = _Tables(graph, lfts, lids)
    node = graph.nodes[src[0]]
    if node.kind == NodeType.SWITCH:
        x = tables.index[node.guid]
    else:
        peer = node.ports[src[1]].neighbour
        if peer is None or peer[0] not in tables.index:
            return Trace((), "dropped")
        x = tables.index[peer[0]]
    hops: list[tuple[int, int]] = []
    seen: set[int] = set()
    while x not in seen:
        seen.add(x)
        lft = tables.lfts[x]
        port = lft[dlid] if dlid < len(lft) else 0xFF
        hops.append((tables.guids[x], port))
        step = tables.next_hop[x][port]
        if step >= 0:
            x = step
            continue
        return Trace(tuple(hops), "delivered" if step == -dlid - 2 else "dropped")
    return Trace(tuple(hops), "loop")


def credit_loop(
    graph: SubnetGraph, lfts: Mapping[int, bytes | bytearray], lids: Mapping[int, int]
) -> list[tuple[int, int]]:
    """A cycle of (switch GUID, egress port) channels that wait on each other, or [] if none.

    Channel A depends on channel B when some LID is routed over A into the switch that then
    sends it over B. A cycle in these dependencies can deadlock a lossless fabric.
    """
    tables = _Tables(graph, lfts, lids)
    deps: dict[tuple[int, int], set[tuple[int, int]]] = {}
    for dlid in sorted({lid for lid in lids.values() if lid}):
        for x, lft in enumerate(tables.lfts):
            port = lft[dlid] if dlid < len(lft) else 0xFF
            y = tables.next_hop[x][port]
            if y < 0:
                continue
            lft_y = tables.lfts[y]
            port_y = lft_y[dlid] if dlid < len(lft_y) else 0xFF
            if tables.next_hop[y][port_y] >= 0:
                deps.setdefault((x, port), set()).add((y, port_y))
    cycle = _find_cycle(deps)
    return [(tables.guids[x], p) for x, p in cycle]


def _find_cycle(deps: dict[tuple[int, int], set[tuple[int, int]]]) -> list[tuple[int, int]]:
    state: dict[tuple[int, int], int] = {}
    for root in sorted(deps):
        if root in state:
            continue
        stack = [(root, iter(sorted(deps.get(root, ()))))]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                chain = [n for n, _ in stack]
                return chain[chain.index(nxt):]
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(deps.get(nxt, ())))))
    return []
