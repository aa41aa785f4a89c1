"""The real OpenSM (Debian's 3.3.23, under libumad2sim.so) brings our fabric up.

Each topology is served from this process (:class:`~tests.peers.umad.InProcess`, no SM of
ours); OpenSM attaches at the first node, as it does to ibsim, and must log "SUBNET UP". Then,
with OpenSM and the server stopped, the fabric objects must show what OpenSM did: every
cabled port ACTIVE, a LID on every end port, and LFTs in our switches that deliver every
HCA-to-LID pair (walked by :func:`~ipoib.sm.verify.verify_routes`). These are the objects our
data path forwards with, so the routes OpenSM programmed are the routes packets take.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ipoib.fabric import netfile
from ipoib.fabric.node import ACTIVE
from ipoib.fabric.topogen import fat_tree
from ipoib.fabric.topology import Topology

from ..sm.bringup import fabric_lids, route_report
from .umad import EXAMPLES, InProcess, opensm, require

EXAMPLE_FILES = ["net", "net.1", "net.2sw2path", "net.2sw2path4hca", "net.2sw2path4hca2port"]


@pytest.fixture(autouse=True)
def _tools() -> None:
    require("opensm")


def bring_up_with_opensm(topo: Topology, workdir: Path) -> tuple[InProcess, str]:
    """Serve ``topo``, run OpenSM to SUBNET UP, stop both; the server and OpenSM's log."""
    with InProcess(topo) as server:
        with opensm(server.name, workdir / "osm", timeout=120) as log:
            text = log.read_text(errors="replace")
        server.stop()
    return server, text


def check(server: InProcess, topo: Topology, log: str) -> None:
    fabric = server.net.fabric
    cabled = [p for n in fabric.nodes.values() for p in n.ports if p.peer is not None and p.up]
    assert cabled
    not_active = [p for p in cabled if p.state != ACTIVE]
    assert not not_active, not_active[:5]
    lids = fabric_lids(fabric)
    endports = [p for n in fabric.nodes.values()
                for p in (n.ports[:1] if n.is_switch else [q for q in n.ports[1:] if q.up])]
    assert all(p.lid for p in endports), [p for p in endports if not p.lid][:5]
    assert len(set(lids.values())) == len(lids)  # unique
    report = route_report(fabric)
    assert report.ok, (report.unreachable_examples, report.loop_examples)
    hcas = sum(1 for n in fabric.cas for p in n.ports[1:] if p.up)
    assert report.sources == hcas
    assert report.pairs >= hcas * (len(lids) - 1)
    sm_lid = fabric.nodes[topo.nodes[0].name].ports[0 if topo.nodes[0].kind == 2 else 1].lid
    assert all(p.master_sm_lid == sm_lid for p in endports)
    assert re.search(r"SUBNET UP", log)
    # the server only ever answered: nothing it could not route or had to drop
    drops = server.net.ibsim.server.drops if server.net.ibsim else {}
    assert not {k: v for k, v in drops.items() if k != "client_gone"}, drops


@pytest.mark.parametrize("example", EXAMPLE_FILES)
def test_opensm_brings_up_the_ibsim_examples(example: str, tmp_path: Path) -> None:
    topo = netfile.load(EXAMPLES / example)
    server, log = bring_up_with_opensm(topo, tmp_path)
    check(server, topo, log)


@pytest.mark.parametrize("hcas,levels", [(36, 2), (16, 3)])
def test_opensm_brings_up_fat_trees(hcas: int, levels: int, tmp_path: Path) -> None:
    topo = fat_tree(hcas, levels)
    server, log = bring_up_with_opensm(topo, tmp_path)
    check(server, topo, log)


@pytest.mark.slow
@pytest.mark.parametrize("hcas,levels", [(648, 2), (432, 3)])
def test_opensm_brings_up_large_fat_trees(hcas: int, levels: int, tmp_path: Path) -> None:
    topo = fat_tree(hcas, levels)
    server, log = bring_up_with_opensm(topo, tmp_path)
    check(server, topo, log)
