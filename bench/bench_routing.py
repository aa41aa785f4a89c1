"""Routing a fat tree: LID assignment, min-hop, up/down and the LFT walk (ipoib.sm).

The subnets are ``topogen.fat_tree`` two-level trees of 648 and 1944 HCAs (the ibsim
bring-up figures of ibsim-protocol.md §15) and 10,000 HCAs, two levels (144-port switches)
and three levels (36-port). The baseline is what the simplest min-hop router has to do before
it picks a single port: one breadth-first search per switch over the same switch graph
(adjacency lists, a deque), timed on 20 switches and scaled to all of them. A ratio below 1
means the whole routing engine costs less than that first step done plainly.

Each figure is the best of a few whole runs, in milliseconds (a run is too long for the
timeit loop of ``ns_per_call``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from functools import partial

from bench.common import Result
from ipoib.fabric import topogen
from ipoib.sm.graph import SubnetGraph
from ipoib.sm.lids import assign_lids
from ipoib.sm.routing import minhop, updn
from ipoib.sm.verify import verify_routes

SUBNETS = [(648, 2), (1944, 2), (10000, 2), (10000, 3)]
SAMPLE = 20


def _best_ms(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def _bfs_all_ms(graph: SubnetGraph, repeat: int) -> float:
    """One plain BFS per switch, estimated from a sample of ``SAMPLE`` switches."""
    adj = {
        s.guid: sorted({peer for _p, peer, _q in graph.neighbours(s.guid)
                        if graph.nodes[peer].is_switch})
        for s in graph.switches
    }
    sources = list(adj)[:: max(1, len(adj) // SAMPLE)][:SAMPLE]

    def bfs_sample() -> None:
        for src in sources:
            dist = {src: 0}
            queue = deque([src])
            while queue:
                v = queue.popleft()
                d = dist[v] + 1
                for t in adj[v]:
                    if t not in dist:
                        dist[t] = d
                        queue.append(t)

    return _best_ms(bfs_sample, repeat) * len(adj) / len(sources)


def run() -> list[Result]:
    """Time LID assignment, both engines and the walk check on each subnet."""
    results: list[Result] = []
    for hcas, levels in SUBNETS:
        graph = SubnetGraph.from_topology(topogen.fat_tree(hcas, levels=levels))
        nsw = len(graph.switches)
        repeat = 3 if hcas < 5000 else 2
        tag = f"{hcas} HCAs {levels}L ({nsw} sw)"
        base = f"BFS per switch {nsw} sw"
        base_ms = _bfs_all_ms(graph, repeat)
        lids = assign_lids(graph).lids
        lfts = minhop(graph, lids)
        figures: list[tuple[str, Callable[[], object]]] = [
            ("assign_lids", partial(assign_lids, graph)),
            ("minhop", partial(minhop, graph, lids)),
            ("updn", partial(updn, graph, lids)),
            ("verify_routes", partial(verify_routes, graph, lfts, lids)),
        ]
        for name, fn in figures:
            results.append(Result(
                f"{name} {tag}", _best_ms(fn, repeat), "ms", base, base_ms,
                note=f"{len(lids)} LIDs, {nsw} LFTs" if name == "minhop" else "",
            ))
    return results
