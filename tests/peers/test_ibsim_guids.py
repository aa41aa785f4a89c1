"""Our reading of a topology file against the real ibsim's (ibsim-protocol.md §14, §15).

The real ibsim loads a file; ibnetdiscover (under umad2sim, attached to a CA, no SM running:
it walks the fabric with directed-route SMPs) prints what ibsim built. That output, read with
our :func:`loads`, must show the GUIDs, descriptions, cabling, active widths/speeds and
pre-assigned LIDs that our :func:`load` of the same file gives. A different GUID numbering,
mask reading or LID rule here would make our fabric and ibsim's disagree.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ipoib.fabric import topogen
from ipoib.fabric.netfile import dumps, load, loads
from ipoib.fabric.topology import Link, Topology
from ipoib.wire.enums import NodeType

from .simulator import running

IBSIM = shutil.which("ibsim") or "/usr/bin/ibsim"
IBNETDISCOVER = shutil.which("ibnetdiscover") or "/usr/sbin/ibnetdiscover"
UMAD2SIM = Path("/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so")
EXAMPLE = Path("/usr/share/doc/ibsim-utils/net-examples/net.2sw2path4hca")


def require_peers() -> None:
    missing = [p for p in (IBSIM, IBNETDISCOVER, str(UMAD2SIM)) if not os.access(p, os.R_OK)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


@contextmanager
def ibsim(netfile: Path, workdir: Path) -> Iterator[str]:
    """Run ``ibsim -n -s netfile`` on a fresh socket name until it is ready; yield the name.

    The process is always stopped on exit (:mod:`tests.peers.simulator`)."""
    sockname = f"ipoib-test-{os.getpid()}-{secrets.token_hex(4)}"
    with running([IBSIM, "-n", "-s", str(netfile)], sockname, cwd=workdir, timeout=60):
        yield sockname


def ibnetdiscover(sockname: str, host: str, workdir: Path) -> str:
    """ibnetdiscover's topology output, attached through umad2sim to node ``host``."""
    env = {**os.environ, "IBSIM_SOCKNAME": sockname, "SIM_HOST": host,
           "LD_PRELOAD": str(UMAD2SIM)}
    r = subprocess.run([IBNETDISCOVER], env=env, cwd=workdir, capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout


def active(ln: Link) -> tuple[int, int, int]:
    """The width and speed ibsim makes active: highest common width bit, and the highest
    extended speed bit when there is one (it supersedes the base speed), else base speed."""
    width = next(b for b in (8, 4, 2, 16, 1) if ln.width & b)
    ext = next((b for b in (8, 4, 2, 1) if ln.ext_speed & b), 0)
    return width, 0 if ext else ln.speed.bit_length(), ext


def view(topo: Topology) -> tuple[dict[int, Any], dict[frozenset[tuple[int, int]], Any]]:
    """Everything ibnetdiscover can see, keyed by GUID instead of by name."""
    guid = {n.name: n.node_guid for n in topo.nodes}
    nodes = {n.node_guid: (n.kind, n.description, n.nports, n.sys_guid, n.vendor_id,
                           n.device_id, n.port_guids, n.lids, n.lmcs,
                           n.enhanced_port0) for n in topo.nodes}
    links = {frozenset({(guid[ln.a], ln.a_port), (guid[ln.b], ln.b_port)}): active(ln)
             for ln in topo.links}
    return nodes, links


def check_against_ibsim(netfile: Path, host: str, tmp_path: Path) -> Topology:
    ours = load(netfile)
    with ibsim(netfile, tmp_path) as sockname:
        text = ibnetdiscover(sockname, host, tmp_path)
    seen = loads(text, source="ibnetdiscover")
    assert view(seen) == view(ours)
    return seen


def test_ibsim_example_net_2sw2path4hca(tmp_path: Path) -> None:
    require_peers()
    if not EXAMPLE.exists():
        pytest.skip("ibsim-utils examples not installed")
    seen = check_against_ibsim(EXAMPLE, "Hca1", tmp_path)
    guids = {n.description: n.node_guid for n in seen.nodes}
    assert guids == {"Switch1": 0x200000, "Switch2": 0x200001, "Hca1": 0x100000,
                     "Hca2": 0x100003, "Hca3": 0x100006, "Hca4": 0x100009}


def test_generated_fat_tree(tmp_path: Path) -> None:
    require_peers()
    netfile = tmp_path / "ft8.net"
    netfile.write_text(dumps(topogen.fat_tree(8)))
    seen = check_against_ibsim(netfile, "hca-3", tmp_path)
    assert sum(n.kind == NodeType.SWITCH for n in seen.nodes) == 6


def test_lids_masks_and_port0_survive_ibsim(tmp_path: Path) -> None:
    """Pre-assigned LIDs/LMCs, enhanced port 0, vendor ids and non-default masks, written by
    our dumps and read back from what ibsim built."""
    require_peers()
    base = topogen.fat_tree(8)
    nodes = []
    for i, n in enumerate(base.nodes):
        if n.kind == NodeType.SWITCH:
            n = dataclasses.replace(n, lids={0: 1 + i}, enhanced_port0=i % 2 == 0,
                                    device_id=0xBD36)
        else:
            n = dataclasses.replace(n, lids={1: 0x40 + i}, lmcs={1: i % 2}, vendor_id=0x8F1)
        nodes.append(dataclasses.replace(n, lmcs={p: v for p, v in n.lmcs.items() if v}))
    links = [dataclasses.replace(ln, width=11, speed=7) if ln.b.startswith("hca-") and
             ln.b_port == 1 and int(ln.b[4:]) % 2 else ln for ln in base.links]
    topo = Topology(tuple(nodes), tuple(links))
    netfile = tmp_path / "lids.net"
    netfile.write_text(dumps(topo))
    seen = check_against_ibsim(netfile, "hca-1", tmp_path)
    assert {n.description: n.lids for n in seen.cas}["hca-2"] == {1: 0x40 + 7}


QUIRKS = {
    "quirks.net": """\
# Every directive and port-line form that both readers must read alike.
module="m"
Switch 4 "leaf"
@[1] "up"
[2] "leafca"[1]

Ca 1 "leafca"
[1] "leaf"[2]

module=""
switchguid=0x2000
vendid=0x8f1
devid=0x5a5a
sysimgguid=0xabcdef
Switch\t8 "core" # "core switch" enhanced port 0 lid 2 lmc 0
[1]\t"left"[7]
# a comment inside a record
[2]\t"right"[7] w=3 s=3
[3]\t"m@up"

include "more.net"
lines that match no keyword are ignored
""",
    "more.net": """\
switchguid+0x10
width=11
speed=7
Switch\t8 "left"
[7]\t"core"[1]
[1]\t"h1"[1] w=1
[2]\t"h2"[2]

width=3
speed=3
Switch\t8 "right" base port 0 lid 4
[7]\t"core"[2]
[1]\t"h3"[1] e=1\t# "h3" lid 9 12xDDR

caguid=0x5000
Ca\t2 "h1"
[1]\t"left"[1]\t# lid 11 lmc 0 "left" lid 0 4xSDR

Hca\t3 "h2"
[2]\t"left"[2] w=2\t# "left" lid 12 4xQDR

Ca\t1 "h3"
[1]\t"right"[1] e=1 # lid 13 lmc 2 "right" lid 4 12xFDR
""",
}


def test_directives_and_quirks_read_as_ibsim_reads_them(tmp_path: Path) -> None:
    """Modules and aliases, includes, GUID/vendor/device/system-GUID directives, default and
    per-port masks, ibnetdiscover comments that override them, and ibsim's rule that a CA
    takes the first "lid N" of a line that also has a connection part."""
    require_peers()
    for name, text in QUIRKS.items():
        (tmp_path / name).write_text(text)
    seen = check_against_ibsim(tmp_path / "quirks.net", "h1", tmp_path)
    by_desc = {n.description: n for n in seen.nodes}
    assert by_desc["h2"].lids == {2: 12}  # taken from '# "left" lid 12 4xQDR', as ibsim does
    assert by_desc["core switch"].vendor_id == 0x8F1 and by_desc["left"].vendor_id == 0
    assert by_desc["m#leaf"].node_guid == 0x200000 and by_desc["left"].node_guid == 0x2010
