"""IPoIB hosts with the real OpenSM as their subnet manager, and OpenSM beside our own SM.

One daemon (``ipoib up --sm opensm --detach``) runs the demo fabric, an 8-HCA two-level fat
tree, with Debian's OpenSM attached at its first node through the ibsim protocol; the tests
use it through the command line only, as a user would. The hosts must come up in the
broadcast group OpenSM created, resolve paths through OpenSM's SA, carry ping and iperf3
across leaves, and survive OpenSM being killed and started again under traffic.

The side-by-side tests serve one topology twice (``python -m ipoib.ibsim``), once with our
embedded SM and once with OpenSM, and ask both the same questions: LFTs read back with
ibroute must route every HCA pair; PathRecords, NodeRecords and the broadcast group must be
the same apart from LIDs. The one difference found (the path rate) is checked for what it is
and explained in docs/opensm.md.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from ipoib.fabric import netfile, topogen
from ipoib.fabric.topology import Topology
from ipoib.host import control
from ipoib.host.state import RunDir, proc_start
from ipoib.sm.graph import SubnetGraph
from ipoib.sm.verify import verify_routes
from ipoib.wire.enums import NodeType, Rate
from ipoib.wire.gid import DEFAULT_GID_PREFIX
from ipoib.wire.mad import Method, build_sa_mad
from ipoib.wire.sa import PathRecord, SaAttr

from ..host.helpers import ip_netns_list
from .test_diags import discovered, field, join, lft, lids_of
from .umad import RawClient, opensm, require, serve, tool

A, B = "hca-1", "hca-8"  # on different leaf switches: every packet crosses three switches
C, D = "hca-3", "hca-6"  # another pair on different leaves, left alone until a test needs it
SM_NODE = "sw-l1-1"  # the first node of fat_tree(8): where OpenSM attaches by default
QKEY = 0x0B1B
BROADCAST = "ff12:401b:ffff:0:0:0:ffff:ffff"
_seq = itertools.count()
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (namespaces, TUN)")


class Run:
    """A daemon of this module, driven through ``python -m ipoib`` with its own run
    directory and namespace prefix."""

    def __init__(self, tmp: Path) -> None:
        n = next(_seq)
        self.prefix = f"ipoib-o{os.getpid()}x{n}-"
        self.run_dir = tmp / f"run{n}"
        self.env = dict(os.environ, IPOIB_RUN_DIR=str(self.run_dir),
                        IPOIB_NETNS_PREFIX=self.prefix)
        self.cwd = tmp

    def ipoib(self, *args: str, check: bool = True, timeout: float = 90
              ) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([sys.executable, "-m", "ipoib", *args], env=self.env, text=True,
                           capture_output=True, timeout=timeout, check=False, cwd=self.cwd)
        if check:
            assert p.returncode == 0, f"ipoib {' '.join(args)}: {p.stdout}{p.stderr}"
        return p

    def exec(self, host: str, *cmd: str, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        return self.ipoib("exec", host, "--", *cmd, check=check)

    def popen(self, host: str, *cmd: str) -> subprocess.Popen[str]:
        return subprocess.Popen([sys.executable, "-m", "ipoib", "exec", host, "--", *cmd],
                                env=self.env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def show(self, view: str, host: str | None = None) -> Any:
        return json.loads(self.ipoib("show", view, *([host] if host else []), "--json").stdout)

    def diag(self, *argv: str) -> str:
        return self.ipoib("diag", *argv).stdout

    def request(self, cmd: str) -> Any:
        """A control command no ``show`` view prints (``status``, ``ibsim``)."""
        return control.request(RunDir(self.run_dir).socket_path, cmd).data

    def ip(self, host: str) -> str:
        row = next(h for h in self.show("hosts") if h["host"] == host)
        return str(row["ipv4"]).split("/")[0]

    def gid(self, host: str) -> str:
        return str(next(h for h in self.show("hosts") if h["host"] == host)["gid"])

    def down(self) -> None:
        """Stop the daemon; nothing of this run may be left: no namespace, no OpenSM."""
        self.ipoib("down", check=False)
        left = [n for n in ip_netns_list() if n.startswith(self.prefix)]
        assert not left, f"namespaces left behind: {left}"
        assert not our_opensms(self.run_dir), "an OpenSM outlived its daemon"


def our_opensms(run_dir: Path) -> list[int]:
    """Live OpenSM processes whose log is in ``run_dir`` (zombies are gone already)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if state != b"Z" and cmd and cmd[0].endswith(b"opensm") \
                and any(str(run_dir).encode() in c for c in cmd):
            found.append(int(entry.name))
    return found


def dotted(text: str, name: str) -> str:
    """A value saquery prints as ``name.....value`` (the dots required: ``sl`` is not
    ``slid``)."""
    m = re.search(rf"^\s*{re.escape(name)}\.+(\S+)$", text, re.MULTILINE)
    assert m, f"no {name} in:\n{text}"
    return m.group(1)


def wait_for(what: str, check: Any, timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


@pytest.fixture(scope="module")
def osm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The demo fabric up with OpenSM as its SM."""
    if os.geteuid() != 0:
        pytest.skip("needs root (namespaces, TUN)")
    require("opensm", "saquery", "ibroute", "sminfo", "iperf3")
    tmp = tmp_path_factory.mktemp("osm")
    net = tmp / "ft8.net"
    net.write_text(netfile.dumps(topogen.fat_tree(8)))
    run = Run(tmp)
    run.ipoib("up", str(net), "--sm", "opensm", "--detach", timeout=120)
    try:
        yield run
    finally:
        run.down()


# --- hosts under OpenSM ------------------------------------------------------------------


def test_hosts_come_up_with_opensm_as_master(osm: Run) -> None:
    hosts = osm.show("hosts")
    assert len(hosts) == 8 and all(h["carrier"] for h in hosts)
    sm = osm.show("sm")
    assert sm["sm"] == "opensm" and sm["state"] == "up" and sm["node"] == SM_NODE
    pid = sm["pid"]
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmd[:4] == [b"/usr/sbin/opensm", b"-d2", b"-f",
                       str(osm.run_dir / "opensm" / "opensm.log").encode()]
    env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    sockname = osm.request("status")["ibsim"]
    assert {f"IBSIM_SOCKNAME={sockname}".encode(), f"SIM_HOST={SM_NODE}".encode()} <= set(env)
    assert any(e.startswith(b"LD_PRELOAD=") and b"libumad2sim" in e for e in env)
    # recorded in the run state, so that `ipoib down` finds it even after a SIGKILL
    state = json.loads((osm.run_dir / "state.json").read_text())
    assert [pid, proc_start(pid)] in state["children"]
    text = osm.ipoib("show", "hosts").stdout
    assert text.rstrip().splitlines()[-1] == (f"SM: opensm pid {pid} at {SM_NODE} (up), "
                                              f"log {osm.run_dir / 'opensm' / 'opensm.log'}")
    assert osm.request("status")["sm"]["pid"] == pid
    # the master SM is OpenSM's port (sw-l1-1 port 0), and every host knows it as such
    info = osm.diag("sminfo")
    m = re.search(r"sm lid (\d+) sm guid (0x[0-9a-f]+).*SMINFO_MASTER", info)
    assert m and int(m.group(2), 16) == 0x200000, info
    assert {h["sm_lid"] for h in hosts} == {int(m.group(1))}
    # and ours is not running
    assert osm.ipoib("show", "lids", check=False).returncode != 0


def test_hosts_joined_the_broadcast_group_opensm_made(osm: Run) -> None:
    assert {h["qkey"] for h in osm.show("hosts")} == {QKEY}
    for host, groups in osm.show("mcast").items():
        bcast = [g for g in groups if g["mgid"] == BROADCAST]
        assert bcast and bcast[0]["complete"] and bcast[0]["mlid"] == 0xC000, (host, groups)
    # OpenSM made the group when the first host joined
    log = (osm.run_dir / "opensm" / "opensm.log").read_text()
    assert '"New mcast group created", MGID:ff12:401b:ffff::ffff:ffff' in log
    mc = osm.diag("saquery", "-g")  # answered by OpenSM's SA, the only SA there is
    assert field(mc, "MGID") == "ff12:401b:ffff::ffff:ffff"
    assert field(mc, "Mlid") == "0xC000" and field(mc, "pkey") == "0xFFFF"
    assert field(mc, "Mtu") == "0x84" and field(mc, "SL") == "0x0"
    # OpenSM wrote the MFT: its own switch sends the group to both its hosts and up to a
    # spine
    m = re.search(r"sm lid (\d+)", osm.diag("sminfo"))
    assert m
    mft = osm.diag("ibroute", "-M", m.group(1))
    row = next(line for line in mft.splitlines() if line.startswith("0xc000"))
    assert row.count("x") >= 3, mft


def test_ping_and_iperf3_across_leaves(osm: Run) -> None:
    out = osm.exec(A, "ping", "-c", "3", "-i", "0.2", osm.ip(B)).stdout
    assert " 0% packet loss" in out
    server = osm.popen(B, "iperf3", "-s", "-1")
    try:
        for _ in range(25):
            time.sleep(0.2)
            p = osm.exec(A, "iperf3", "-c", osm.ip(B), "-t", "2", "-J", check=False)
            if p.returncode == 0:
                break
        assert p.returncode == 0, p.stdout[-500:] + p.stderr
        assert json.loads(p.stdout)["end"]["sum_received"]["bytes"] > 1_000_000
    finally:
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_path_records_come_from_opensms_sa(osm: Run) -> None:
    before_sm = osm.request("ibsim")["stats"].get("to_sm", 0)
    before = osm.show("sa", C)[C].get("sent_path", 0)
    out = osm.exec(C, "ping", "-c", "2", "-i", "0.2", osm.ip(D)).stdout
    assert " 0% packet loss" in out
    assert osm.show("sa", C)[C].get("sent_path", 0) > before
    assert osm.request("ibsim")["stats"].get("to_sm", 0) > before_sm  # went to OpenSM
    gid = ip_address(osm.gid(D))
    path = next(p for p in osm.show("path", C)[C] if ip_address(p["gid"]) == gid)
    lids = {h["host"]: h["lid"] for h in osm.show("hosts")}
    pr = osm.diag("saquery", "-p", "--src-to-dst", f"{lids[C]}:{lids[D]}")
    assert int(dotted(pr, "dlid")) == path["dlid"] == lids[D]
    assert int(dotted(pr, "sl"), 16) == path["sl"]
    assert int(dotted(pr, "mtu"), 16) & 0x3F == path["mtu"]
    assert int(dotted(pr, "rate"), 16) & 0x3F == path["rate"]


def _ping_replies(text: str) -> list[float]:
    return [float(m.group(1)) for m in re.finditer(r"^\[(\d+\.\d+)\] \d+ bytes from", text,
                                                   re.MULTILINE)]


def test_opensm_killed_and_restarted_under_traffic(osm: Run,
                                                   record_property: Any) -> None:
    first = osm.show("sm")
    leaves = {h: osm.show("sa", h)[h].get("sent_leave", 0) for h in (A, B)}
    ping = osm.popen(A, "ping", "-D", "-i", "0.2", osm.ip(B))  # until SIGINT
    try:
        time.sleep(1.5)
        killed = time.time()
        os.kill(first["pid"], signal.SIGKILL)
        sm = wait_for("OpenSM to be started again and up",
                      lambda: (s := osm.show("sm"))["restarts"] >= 1 and s["state"] == "up"
                      and s)
        assert sm["pid"] != first["pid"] and sm["last_exit"] == -signal.SIGKILL
        # the new OpenSM set ClientReregister: each host left and joined its groups again
        # (a LIGHT flush; the master SM's LID did not change, so nothing else causes one)
        wait_for("the hosts to rejoin",
                 lambda: all(osm.show("sa", h)[h].get("sent_leave", 0) > leaves[h]
                             for h in (A, B)))
        wait_for("carrier", lambda: all(h["carrier"] for h in osm.show("hosts")))
        rejoined = time.time()
        time.sleep(1.5)
        ping.send_signal(signal.SIGINT)  # `ipoib exec` became ping: it prints and exits
        out, _ = ping.communicate(timeout=30)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait()
    replies = _ping_replies(out)
    assert [t for t in replies if t > rejoined], "no replies after OpenSM came back:\n" + out
    gaps = [b - a for a, b in itertools.pairwise(replies)]
    record_property("opensm_restart_rejoin_s", round(rejoined - killed, 2))
    record_property("ping_max_gap_s", round(max(gaps), 2))
    print(f"OpenSM killed, back and hosts rejoined after {rejoined - killed:.2f} s; "
          f"{len(replies)} replies, largest gap between replies {max(gaps):.2f} s")
    # the new OpenSM's MFTs carry the broadcast group: two hosts that never talked resolve
    # each other by ARP (broadcast) and ping
    out = osm.exec("hca-2", "ping", "-c", "2", "-i", "0.2", osm.ip("hca-7")).stdout
    assert " 0% packet loss" in out
    assert osm.show("sm")["restarts"] == sm["restarts"]  # and it stayed up


# --- failure and cleanup, each with its own small daemon -----------------------------------

LONELY = """\
Switch\t4 "sw"
[1]\t"h1"[1]
[2]\t"h2"[1]

Ca\t1 "h1"
[1]\t"sw"[1]

Ca\t1 "h2"
[1]\t"sw"[2]

Ca\t1 "h3"
"""


@needs_root
def test_no_subnet_up_is_a_one_line_error_and_leaves_nothing(tmp_path: Path) -> None:
    require("opensm")
    net = tmp_path / "lonely.net"
    net.write_text(LONELY)  # h3 is not cabled: an OpenSM there never gets a subnet up
    run = Run(tmp_path)
    try:
        p = run.ipoib("up", str(net), "--sm", "opensm", "--sm-node", "h3", "--hosts", "h1,h2",
                      "--detach", "--wait", "2", check=False)
        assert p.returncode != 0
        msg = p.stderr.strip()
        assert len(msg.splitlines()) == 1, msg
        assert "OpenSM did not report SUBNET UP within 2 s" in msg
        assert str(run.run_dir / "opensm" / "opensm.log") in msg and "SM port is down" in msg
    finally:
        run.down()


@needs_root
def test_sm_node_partitions_and_a_sigkilled_daemon_leaves_no_opensm(tmp_path: Path) -> None:
    require("opensm", "smpquery")
    net = tmp_path / "line.net"
    net.write_text(netfile.dumps(topogen.line(2, 2)))
    (tmp_path / "partitions.conf").write_text(
        "Default=0x7fff, ipoib : ALL=full ;\nstorage=0x8001, ipoib : ALL=full ;\n")
    run = Run(tmp_path)
    try:
        run.ipoib("up", str(net), "--sm", "opensm", "--sm-node", "hca-2", "--partitions",
                  "partitions.conf", "--detach")
        sm = run.show("sm")
        assert sm["node"] == "hca-2" and our_opensms(run.run_dir) == [sm["pid"]]
        assert re.search(r"sm lid \d+ sm guid 0x100003", run.diag("sminfo"))  # hca-2's port
        hosts = {h["host"]: h for h in run.show("hosts")}
        pkeys = run.diag("smpquery", "pkeys", str(hosts["hca-4"]["lid"]), "1")
        assert re.search(r"^\s+0: 0xffff 0x8001 ", pkeys, re.MULTILINE), pkeys
        daemon = run.request("status")["pid"]
        os.kill(daemon, signal.SIGKILL)
        wait_for("OpenSM to follow its daemon", lambda: not our_opensms(run.run_dir),
                 timeout=10)
        down = run.ipoib("down")
        assert "cleaned up after a daemon that died" in down.stdout
    finally:
        run.down()


# --- side by side: our SM and OpenSM on the same topology ----------------------------------

SPEED_WIDTH_RATE = {("2.5 Gbps", "4X"): Rate.R10, ("5.0 Gbps", "4X"): Rate.R20,
                    ("10.0 Gbps", "4X"): Rate.R40}
"""PathRecord rate for a 4x link at LinkSpeedActive (IBA 15.2.5.16)."""


def _gid(guid: int) -> bytes:
    return DEFAULT_GID_PREFIX.to_bytes(8, "big") + guid.to_bytes(8, "big")


def _sm_lid(name: str, cwd: Path) -> int:
    out = tool(name, "hca-1", "sminfo", cwd=cwd).stdout
    m = re.search(r"sm lid (\d+)", out)
    assert m, out
    return int(m.group(1))


def _survey(name: str, topo: Topology, cwd: Path, ident: int) -> dict[str, Any]:
    """What one SM's subnet answers: LFTs, PathRecords of every HCA pair, NodeRecord,
    the broadcast group, the joins of two ports, the link rate, saquery's texts."""
    seen = discovered(name, "hca-1", cwd)
    lids = lids_of(seen)
    sm_lid = _sm_lid(name, cwd)
    lfts = {sw.node_guid: lft(tool(name, "hca-1", "ibroute", str(lids[sw.name]),
                                   cwd=cwd).stdout) for sw in topo.switches}
    by_guid = {n.port_guid(0 if n.kind == NodeType.SWITCH else 1): lids[n.name]
               for n in topo.nodes}
    report = verify_routes(SubnetGraph.from_topology(topo), lfts, by_guid)
    paths: dict[tuple[str, str], PathRecord] = {}
    client = RawClient(name, "hca-1", ident)
    joins = []
    try:
        mask = PathRecord.component_mask("sgid", "dgid", "reversible", "numb_path")
        for n, (a, b) in enumerate(itertools.permutations(topo.cas, 2)):
            q = PathRecord(sgid=_gid(a.port_guid(1)), dgid=_gid(b.port_guid(1)),
                           reversible=1, numb_path=1)
            head, mad = client.mad(sm_lid, build_sa_mad(Method.GET, SaAttr.PATH_RECORD,
                                                        tid=0x100 + n, data=q.encode(),
                                                        component_mask=mask))
            assert head.status == 0 and mad[3] == Method.GET_RESP and mad[4:6] == b"\0\0"
            paths[(a.name, b.name)] = PathRecord.decode(mad, 56)
        for host in (C, D):
            joins.append(join(client, sm_lid, topo.node(host).port_guid(1)))
    finally:
        client.close()
    pi = tool(name, "hca-1", "smpquery", "portinfo", str(lids["hca-1"]), "1", cwd=cwd).stdout
    return {
        "lids": lids, "routes": report, "paths": paths, "joins": joins,
        "rate": _link_rate(pi),
        "group": tool(name, "hca-1", "saquery", "-g", cwd=cwd).stdout,
        "members": tool(name, "hca-1", "saquery", "-m", "--smkey", "1", cwd=cwd).stdout,
        "node": tool(name, "hca-1", "saquery", "NR", str(lids[B]), cwd=cwd).stdout,
        "pr_text": tool(name, "hca-1", "saquery", "-p", "--src-to-dst",
                        f"{lids[A]}:{lids[B]}", cwd=cwd).stdout,
    }


def _link_rate(portinfo: str) -> Rate:
    speed = re.search(r"^LinkSpeedActive:\.*(.+)$", portinfo, re.MULTILINE)
    width = re.search(r"^LinkWidthActive:\.*(.+)$", portinfo, re.MULTILINE)
    assert speed and width, portinfo
    return SPEED_WIDTH_RATE[(speed.group(1).strip(), width.group(1).strip())]


def _without_lids(text: str) -> str:
    return re.sub(r"^(\s*(?:s|d)?lid\.*)\d+$", r"\1<lid>", text, flags=re.MULTILINE)


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory
                 ) -> tuple[Topology, dict[str, Any], dict[str, Any]]:
    require("opensm", "ibnetdiscover", "saquery", "ibroute", "smpquery", "sminfo")
    tmp = tmp_path_factory.mktemp("sbs")
    net = tmp / "ft8.net"
    topo = topogen.fat_tree(8)
    net.write_text(netfile.dumps(topo))
    ident = os.getpid() * 10
    with serve(net, tmp, sm="embedded") as name:
        ours = _survey(name, topo, tmp, ident + 1)
    with serve(net, tmp, sm="none") as name, opensm(name, tmp / "osm", timeout=60):
        theirs = _survey(name, topo, tmp, ident + 2)
    return topo, ours, theirs


def test_both_sms_route_every_hca_pair(side_by_side: tuple[Topology, dict[str, Any],
                                                           dict[str, Any]]) -> None:
    topo, ours, theirs = side_by_side
    nodes = len(topo.nodes)
    for survey in (ours, theirs):
        report = survey["routes"]
        assert report.ok, (report.unreachable_examples, report.loop_examples)
        assert report.sources == len(topo.cas) and report.pairs == len(topo.cas) * (nodes - 1)


def test_path_records_agree_apart_from_lids_and_link_rate(
        side_by_side: tuple[Topology, dict[str, Any], dict[str, Any]]) -> None:
    _, ours, theirs = side_by_side
    assert ours["paths"].keys() == theirs["paths"].keys()
    assert len(ours["paths"]) == 8 * 7
    for pair, mine in ours["paths"].items():
        other = theirs["paths"][pair]
        for survey, rec in ((ours, mine), (theirs, other)):
            assert (rec.slid, rec.dlid) == (survey["lids"][pair[0]], survey["lids"][pair[1]])
            # each SM reports the rate the links run at (docs/opensm.md: the links do not
            # run at the same rate under the two SMs)
            assert rec.rate == survey["rate"] and rec.rate_selector == 2
        same = {"slid": 0, "dlid": 0, "rate": 0}
        assert mine.replace(**same) == other.replace(**same), pair
        assert (mine.mtu, mine.sl, mine.pkey, mine.reversible, mine.hop_limit,
                mine.packet_life_time) == (4, 0, 0xFFFF, 1, 0, 18)
    # saquery prints the same, apart from LIDs and the rate line
    drop = re.compile(r"^\s*rate\.*.*$", re.MULTILINE)
    assert drop.sub("", _without_lids(ours["pr_text"])) == \
        drop.sub("", _without_lids(theirs["pr_text"]))


def test_link_rates_differ_as_documented(
        side_by_side: tuple[Topology, dict[str, Any], dict[str, Any]]) -> None:
    """The fabric file says 4x SDR. Our SM leaves LinkSpeedEnabled alone; OpenSM writes 15
    ("all supported"), which our SMA takes literally (ibsim ignores it), so under OpenSM the
    links train to the fastest supported speed. Once the SMA keeps the cable's speed the
    two rates are equal and this test still passes."""
    _, ours, theirs = side_by_side
    assert ours["rate"] == Rate.R10
    assert theirs["rate"] in (Rate.R10, Rate.R40)


def test_broadcast_group_and_joins_agree(
        side_by_side: tuple[Topology, dict[str, Any], dict[str, Any]]) -> None:
    _, ours, theirs = side_by_side
    assert ours["group"] == theirs["group"]
    for mine, other in zip(ours["joins"], theirs["joins"], strict=True):
        assert mine == other
        assert (mine.qkey, mine.mlid, mine.mtu, mine.rate, mine.sl, mine.scope, mine.pkey,
                mine.join_state) == (QKEY, 0xC000, 4, Rate.R10, 0, 2, 0xFFFF, 1)
    assert _without_lids(ours["node"]) == _without_lids(theirs["node"])
    assert field(ours["node"], "NodeDescription") == B


def test_our_sa_lists_every_member_for_saquery(
        side_by_side: tuple[Topology, dict[str, Any], dict[str, Any]]) -> None:
    """saquery -m with OpenSM's SM_Key: our SA sends the whole table (RMPP); OpenSM's answer
    through umad2sim stops at the first 256 bytes (ibsim-protocol.md §13)."""
    topo, ours, theirs = side_by_side
    want = {f"fe80::10:{topo.node(h).port_guid(1) & 0xFFFF:x}" for h in (C, D)}
    mine = set(re.findall(r"PortGid\.+(\S+)", ours["members"]))
    assert mine == want and ours["members"].count("ScopeState..............0x21") == 2
    other = set(re.findall(r"PortGid\.+(\S+)", theirs["members"]))
    assert other and other <= want
