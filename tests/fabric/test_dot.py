"""``ipoib topo show``: the fabric drawn with graphviz."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from ipoib.fabric import netfile, topogen
from ipoib.fabric.dot import to_dot


def test_every_node_and_cable_drawn_in_tiers() -> None:
    topo = topogen.fat_tree(8)
    dot = to_dot(topo)
    for n in topo.nodes:
        assert f'"{n.name}" [label=' in dot
    edges = re.findall(r'^  "([^"]+)" -- "([^"]+)"', dot, re.MULTILINE)
    assert len(edges) == len(topo.links)
    cas = {n.name for n in topo.cas}
    # HCAs are always the tail (drawn at the bottom), spines always the head
    assert all(b not in cas for _, b in edges)
    assert all(a.startswith(("hca", "sw-l1")) for a, _ in edges)


def test_lids_shown_after_a_sweep(tmp_path: Path) -> None:
    net = tmp_path / "ft.net"
    net.write_text(netfile.dumps(topogen.fat_tree(8)))
    p = subprocess.run([sys.executable, "-m", "ipoib", "topo", "show", str(net), "--lids"],
                       capture_output=True, text=True, check=False, timeout=60)
    assert p.returncode == 0, p.stderr
    lids = sorted(int(x) for x in re.findall(r"\\nLID (\d+)", p.stdout))
    assert lids == list(range(1, 15))  # 6 switches + 8 HCAs, all assigned, none twice


def test_svg(tmp_path: Path) -> None:
    net = tmp_path / "ft.net"
    net.write_text(netfile.dumps(topogen.fat_tree(8)))
    svg = tmp_path / "ft.svg"
    p = subprocess.run([sys.executable, "-m", "ipoib", "topo", "show", str(net), "--svg",
                        str(svg)], capture_output=True, text=True, check=False, timeout=60)
    assert p.returncode == 0, p.stderr
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    assert text.count('class="node"') == 14
