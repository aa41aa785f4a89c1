"""The real infiniband-diags (Debian's, under libumad2sim.so) read our fabric.

The standalone runner (``python -m ipoib.ibsim FILE --sm embedded``) serves a topology with
our SM and SA; each tool runs as a user would run it against ibsim, and its output must
describe that topology: ibnetdiscover's cabling and GUIDs, saquery's answers from our SA,
smpquery, ibroute's LFTs (they must route every pair) and MFTs, perfquery's counters, ibstat.
A raw ibsim-protocol client written here joins the broadcast group from two HCAs, as a
host would, so the MFT has something to show. The last test does the same through
``ipoib up --detach`` and ``ipoib diag``, with real IPoIB hosts pinging each other.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ipoib.fabric import netfile, topogen
from ipoib.fabric.topology import Topology
from ipoib.host.netns import PREFIX_ENV
from ipoib.host.state import RunDir
from ipoib.sm.graph import SubnetGraph
from ipoib.sm.verify import verify_routes
from ipoib.wire.enums import NodeType
from ipoib.wire.gid import DEFAULT_GID_PREFIX
from ipoib.wire.ipoib import broadcast_mgid
from ipoib.wire.mad import Method, build_sa_mad
from ipoib.wire.sa import MCMemberRecord, SaAttr

from ..host.helpers import needs_root, prefix, run_dir
from .umad import EXAMPLES, RawClient, require, serve, tool

__all__ = ["prefix", "run_dir"]

NET = EXAMPLES / "net.2sw2path4hca"
TOOLS = ("ibnetdiscover", "saquery", "smpquery", "ibroute", "perfquery", "ibstat")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(*TOOLS)
    return tmp_path_factory.mktemp("diags")


@pytest.fixture(scope="module")
def net(workdir: Path) -> Iterator[str]:
    """net.2sw2path4hca served with our SM on Switch1; the socket name."""
    with serve(NET, workdir, sm="embedded") as name:
        yield name


def run(name: str, host: str | None, *argv: str, cwd: Path) -> str:
    return tool(name, host, *argv, cwd=cwd).stdout


def endports(topo: Topology) -> dict[tuple[str, int], int]:
    """(node, port) -> port GUID of every port a link uses."""
    out = {}
    for link in topo.links:
        for name, port in ((link.a, link.a_port), (link.b, link.b_port)):
            out[(name, port)] = topo.node(name).port_guid(port)
    return out


def describe(topo: Topology) -> tuple[dict[int, tuple[Any, ...]], set[frozenset[Any]]]:
    """A topology by GUIDs: node GUID -> (kind, ports, description, port GUIDs of linked
    ports), and the links as {(node GUID, port), (node GUID, port)} pairs."""
    by_name = {n.name: n for n in topo.nodes}
    used = endports(topo)
    nodes = {}
    for n in topo.nodes:
        guids = tuple(sorted(g for (name, _), g in used.items() if name == n.name))
        nodes[n.node_guid] = (n.kind, n.nports, n.description, guids)
    links = {frozenset({(by_name[k.a].node_guid, k.a_port), (by_name[k.b].node_guid, k.b_port)})
             for k in topo.links}
    return nodes, links


def discovered(name: str, host: str, cwd: Path) -> Topology:
    return netfile.loads(run(name, host, "ibnetdiscover", cwd=cwd))


def lids_of(topo: Topology) -> dict[str, int]:
    """Node description -> LID (port 0 of a switch, port 1 of a CA), as ibnetdiscover saw."""
    out = {}
    for n in topo.nodes:
        lid = n.lids.get(0 if n.kind == NodeType.SWITCH else 1)
        if lid:
            out[n.description] = lid
    return out


def field(text: str, name: str) -> str:
    m = re.search(rf"^\s*{re.escape(name)}\.*:?\.*\s*(\S+)", text, re.MULTILINE)
    assert m, f"no {name} in:\n{text}"
    return m.group(1)


# --- ibnetdiscover -------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["net.2sw2path4hca", "net.2sw2path4hca2port", "fat-tree"])
def test_ibnetdiscover_describes_our_topology(source: str, workdir: Path) -> None:
    path = EXAMPLES / source
    if source == "fat-tree":
        path = workdir / "fat.net"
        path.write_text(netfile.dumps(topogen.fat_tree(24, 2)))
    topo = netfile.load(path)
    with serve(path, workdir, sm="embedded") as name:
        seen = discovered(name, topo.cas[0].name, workdir)
    ours_nodes, ours_links = describe(topo)
    seen_nodes, seen_links = describe(seen)
    assert seen_nodes == ours_nodes
    assert seen_links == ours_links
    # and the SM's LIDs are on every node it shows
    assert len(lids_of(seen)) == len(topo.nodes)


# --- saquery: our SA answers -----------------------------------------------------------------


def test_saquery_answers_from_our_sa(net: str, workdir: Path) -> None:
    lids = lids_of(discovered(net, "Hca3", workdir))
    pr = run(net, "Hca3", "saquery", "--src-to-dst", f"{lids['Hca3']}:{lids['Hca1']}",
             cwd=workdir)
    assert field(pr, "dgid") == "fe80::10:1" and field(pr, "sgid") == "fe80::10:7"
    assert int(field(pr, "dlid")) == lids["Hca1"] and int(field(pr, "slid")) == lids["Hca3"]
    assert field(pr, "pkey") == "0xFFFF" and field(pr, "mtu") == "0x84"
    nr = run(net, "Hca3", "saquery", "NR", str(lids["Hca2"]), cwd=workdir)
    assert int(field(nr, "lid")) == lids["Hca2"]
    assert field(nr, "port_guid") == "0x0000000000100004"
    assert field(nr, "NodeDescription") == "Hca2"
    mc = run(net, "Hca3", "saquery", "-g", cwd=workdir)
    assert field(mc, "MGID") == "ff12:401b:ffff::ffff:ffff"
    assert field(mc, "Mlid") == "0xC000" and field(mc, "pkey") == "0xFFFF"
    cpi = run(net, "Hca3", "saquery", "-c", cwd=workdir)
    assert "0x2602" in cpi  # OpenSM's SA CapabilityMask, as ours reports it
    sm = run(net, "Hca3", "saquery", "-s", cwd=workdir)  # ports whose CapabilityMask has IsSM
    assert re.findall(r"EndPortLid\.*(\d+)", sm) == [str(lids["Switch1"])], sm


# --- smpquery, ibstat ---------------------------------------------------------------------


def test_smpquery_and_ibstat(net: str, workdir: Path) -> None:
    lids = lids_of(discovered(net, "Hca3", workdir))
    ni = run(net, "Hca3", "smpquery", "nodeinfo", str(lids["Switch2"]), cwd=workdir)
    assert field(ni, "Guid") == "0x0000000000200001"
    assert field(ni, "NodeType") == "Switch"
    pi = run(net, "Hca3", "smpquery", "portinfo", str(lids["Hca4"]), "1", cwd=workdir)
    assert int(field(pi, "Lid")) == lids["Hca4"]
    assert int(field(pi, "SMLid")) == lids["Switch1"]
    assert field(pi, "LinkState") == "Active" and field(pi, "PhysLinkState") == "LinkUp"
    dr = run(net, "Hca3", "smpquery", "-D", "nodeinfo", "0,1,3", cwd=workdir)  # via Switch1
    assert field(dr, "Guid") == "0x0000000000200001"
    stat = run(net, "Hca3", "ibstat", cwd=workdir)
    assert "CA 'ibsim0'" in stat and "State: Active" in stat
    assert f"Base lid: {lids['Hca3']}" in stat and f"SM lid: {lids['Switch1']}" in stat
    assert "Port GUID: 0x0000000000100007" in stat


# --- ibroute: the LFTs route every pair; the MFT once two ports joined --------------------


def lft(text: str) -> bytes:
    """An ``ibroute`` dump as an LFT (0xFF where no entry)."""
    table = bytearray(b"\xff" * 0xC000)
    top = 0
    for m in re.finditer(r"^0x([0-9a-f]+) (\d+) :", text, re.MULTILINE):
        lid = int(m.group(1), 16)
        table[lid] = int(m.group(2))
        top = max(top, lid)
    return bytes(table[:top + 1])


def test_ibroute_lfts_route_every_pair(net: str, workdir: Path) -> None:
    topo = netfile.load(NET)
    seen = discovered(net, "Hca1", workdir)
    lids = lids_of(seen)
    lfts = {sw.node_guid: lft(run(net, "Hca1", "ibroute", str(lids[sw.name]), cwd=workdir))
            for sw in topo.switches}
    assert all(len(t) > max(lids.values()) for t in lfts.values())
    by_guid = {n.port_guid(0 if n.kind == NodeType.SWITCH else 1): lids[n.name]
               for n in topo.nodes}
    report = verify_routes(SubnetGraph.from_topology(topo), lfts, by_guid)
    assert report.ok and report.pairs == 4 * 5


def join(client: RawClient, sm_lid: int, port_guid: int) -> MCMemberRecord:
    rec = MCMemberRecord(mgid=broadcast_mgid(), qkey=0x0B1B, pkey=0xFFFF, join_state=1,
                         port_gid=DEFAULT_GID_PREFIX.to_bytes(8, "big")
                         + port_guid.to_bytes(8, "big"))
    mask = MCMemberRecord.component_mask("mgid", "port_gid", "qkey", "pkey", "join_state")
    head, answer = client.mad(sm_lid, build_sa_mad(Method.SET, SaAttr.MC_MEMBER_RECORD,
                                                   tid=0x5000 + port_guid, data=rec.encode(),
                                                   component_mask=mask))
    assert head.status == 0 and answer[3] == Method.GET_RESP
    return MCMemberRecord.decode(answer, 56)


def mft_ports(text: str, mlid: int) -> set[int]:
    """The ports ``ibroute -M`` marks for ``mlid``: an "x" under each port's column."""
    lines = text.splitlines()
    header = next(line for line in lines if "Ports:" in line)
    start = header.index(":") + 1
    columns = {m.start() + start: int(m.group()) for m in re.finditer(r"\d+", header[start:])}
    row = next(line for line in lines if line.startswith(f"{mlid:#x}"))
    return {port for col, port in columns.items() if col < len(row) and row[col] == "x"}


def test_ibroute_shows_the_broadcast_mft_once_two_ports_joined(net: str, workdir: Path) -> None:
    lids = lids_of(discovered(net, "Hca1", workdir))
    base = os.getpid() * 10
    clients = [RawClient(net, "Hca3", base + 1), RawClient(net, "Hca4", base + 2)]
    try:
        for c, guid in zip(clients, (0x100007, 0x10000A), strict=True):
            assert join(c, lids["Switch1"], guid).mlid == 0xC000
        deadline = time.monotonic() + 10
        while True:
            out = run(net, "Hca1", "ibroute", "-M", str(lids["Switch1"]), cwd=workdir)
            if "0xc000" in out or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        for c in clients:
            c.close()
    assert "1 valid mlids dumped" in out
    members = mft_ports(out, 0xC000)
    assert 2 in members  # Hca3's port on Switch1
    assert members & {3, 5}  # towards Switch2 and Hca4


# --- perfquery ------------------------------------------------------------------------------


def test_perfquery_counters_grow_with_traffic(net: str, workdir: Path) -> None:
    lids = lids_of(discovered(net, "Hca1", workdir))

    def xmit() -> int:
        out = run(net, "Hca1", "perfquery", str(lids["Switch1"]), "2", cwd=workdir)
        return int(field(out, "PortXmitPkts"))

    before = xmit()
    for _ in range(3):  # MADs to Hca3 leave Switch1 through port 2
        run(net, "Hca1", "smpquery", "nodeinfo", str(lids["Hca3"]), cwd=workdir)
    assert xmit() >= before + 3
    ext = run(net, "Hca1", "perfquery", "-x", str(lids["Switch1"]), "2", cwd=workdir)
    assert int(field(ext, "PortXmitPkts")) > 0


# --- through the daemon: ipoib up --detach, ipoib diag ----------------------------------------

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / ".venv" / "bin" / "ipoib"
IPOIB = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ipoib"]


def ipoib(*args: str, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IPOIB, *args], capture_output=True, text=True, timeout=timeout,
                          check=False, cwd=cwd)


@needs_root
def test_ipoib_diag_against_a_running_daemon(tmp_path: Path, prefix: str, run_dir: RunDir,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    require(*TOOLS)
    monkeypatch.setenv(PREFIX_ENV, prefix)
    path = tmp_path / "line.net"
    path.write_text(netfile.dumps(topogen.line(2, 2)))
    up = ipoib("up", str(path), "--detach", cwd=tmp_path)
    assert up.returncode == 0, up.stderr
    try:
        status = ipoib("diag", "--env", cwd=tmp_path)
        assert "IBSIM_SOCKNAME=" in status.stdout and "SIM_HOST=hca-1" in status.stdout
        stat = ipoib("diag", "ibstat", cwd=tmp_path)
        assert stat.returncode == 0 and "State: Active" in stat.stdout, stat.stderr
        disc = netfile.loads(ipoib("diag", "ibnetdiscover", cwd=tmp_path).stdout)
        assert describe(disc) == describe(netfile.load(path))
        lids = lids_of(disc)
        sw = lids["sw-1"]
        mft = ipoib("diag", "ibroute", "-M", str(sw), cwd=tmp_path)
        assert mft_ports(mft.stdout, 0xC000) >= {1, 2}  # both hosts of sw-1 joined

        def data() -> int:
            out = ipoib("diag", "perfquery", "-x", str(lids["hca-1"]), "1", cwd=tmp_path)
            assert out.returncode == 0, out.stderr
            return int(field(out.stdout, "PortXmitData"))

        before = data()
        ping = ipoib("exec", "hca-1", "--", "ping", "-c", "3", "-i", "0.2", "-s", "1000",
                     "10.10.0.4", cwd=tmp_path)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert data() - before >= 3 * 1000 // 4  # three 1000-byte pings, in dwords
        bad = ipoib("diag", "--host", "nobody", "ibstat", cwd=tmp_path)
        assert bad.returncode != 0
    finally:
        down = ipoib("down", cwd=tmp_path)
        assert down.returncode == 0, down.stderr
