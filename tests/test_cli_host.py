"""``ipoib up | exec | show | down`` as a user runs them: real processes, namespaces, TUNs.

Each test has its own run directory ($IPOIB_RUN_DIR) and namespace prefix
($IPOIB_NETNS_PREFIX), so it can run beside a user's daemon; afterwards nothing with the
prefix may be left (checked with ``ip netns list``) and no daemon may be running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ipoib.fabric import netfile, topogen
from ipoib.host.netns import PREFIX_ENV
from ipoib.host.state import RunDir
from tests.host.helpers import ip_netns_list, needs_root, prefix, run_dir

__all__ = ["prefix", "run_dir"]

pytestmark = needs_root

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".venv" / "bin" / "ipoib"
IPOIB = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ipoib"]


def ipoib(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IPOIB, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def one_line_error(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode != 0, r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ipoib: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def _pid_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def fabric(tmp_path: Path, prefix: str, run_dir: RunDir,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A 2-switch line with 4 HCAs; the run's environment; a daemon never left running."""
    monkeypatch.setenv(PREFIX_ENV, prefix)
    path = tmp_path / "line.net"
    path.write_text(netfile.dumps(topogen.line(2, 2)))
    yield path
    state = run_dir.load()
    if run_dir.daemon_alive() or state is not None:
        ipoib("down")
        if state is not None:
            assert _pid_gone(state.pid), "the daemon outlived `ipoib down`"


def _hosts(r: subprocess.CompletedProcess[str]) -> list[list[str]]:
    return [line.split() for line in r.stdout.splitlines() if line.startswith("hca-")]


def test_up_detached_exec_show_down(fabric: Path, prefix: str, run_dir: RunDir) -> None:
    r = ipoib("up", str(fabric), "--detach")
    assert r.returncode == 0, r.stderr
    rows = _hosts(r)
    assert [(h[0], h[1], h[2], h[-1]) for h in rows] == [
        (f"hca-{i}", f"{prefix}hca-{i}", f"10.10.0.{i}/16", "up") for i in range(1, 5)]
    assert sorted(n for n in ip_netns_list() if n.startswith(prefix)) == [
        f"{prefix}hca-{i}" for i in range(1, 5)]
    state = run_dir.load()
    assert state is not None and run_dir.daemon_alive()

    ping = ipoib("exec", "hca-1", "--", "ping", "-c", "2", "-i", "0.05", "-W", "2", "10.10.0.4")
    assert ping.returncode == 0, ping.stdout + ping.stderr
    hosts = json.loads(ipoib("show", "hosts", "--json").stdout)
    assert [h["ipv4"] for h in hosts] == [f"10.10.0.{i}/16" for i in range(1, 5)]
    assert all(h["mtu"] == 2044 and h["carrier"] for h in hosts)
    ll = hosts[2]["ipv6"].split("/")[0]
    assert ll.startswith("fe80::")
    ping6 = ipoib("exec", "10.10.0.2", "--", "ping", "-6", "-c", "1", "-W", "2", f"{ll}%ib0")
    assert ping6.returncode == 0, ping6.stdout + ping6.stderr
    one = ipoib("show", "hosts", "hca-3")
    assert one.returncode == 0 and [h[0] for h in _hosts(one)] == ["hca-3"]
    assert ipoib("exec", "hca-2", "--", "sh", "-c", "exit 7").returncode == 7
    # /sys is the namespace's, as under ip netns exec: only its own interfaces
    sysnet = ipoib("exec", "hca-2", "--", "sh", "-c",
                   "ls /sys/class/net; cat /sys/class/net/ib0/mtu")
    assert sysnet.stdout.split() == ["ib0", "lo", "2044"], sysnet.stdout + sysnet.stderr
    assert "ib0" not in os.listdir("/sys/class/net")  # the remount did not leak out
    one_line_error(ipoib("exec", "hca-2", "--", "no-such-command-here"), "command not found")

    sleeper = subprocess.Popen([*IPOIB, "exec", "hca-4", "--", "sleep", "60"])
    try:
        time.sleep(0.2)
        down = ipoib("down")
        assert down.returncode == 0, down.stderr
        assert f"pid {state.pid}" in down.stdout
        assert sleeper.wait(10) != 0  # killed with its namespace
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
    assert not [n for n in ip_netns_list() if n.startswith(prefix)]
    assert _pid_gone(state.pid) and not run_dir.path.exists()
    one_line_error(ipoib("down"), "no daemon is running")


def test_foreground_up_with_picked_hosts_stops_on_sigterm(fabric: Path, prefix: str) -> None:
    p = subprocess.Popen([*IPOIB, "up", str(fabric), "--hosts", "hca-1,hca-4", "--no-tso"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None
        lines: list[str] = []
        while not lines or "serving" not in lines[-1]:
            line = p.stdout.readline()
            assert line, p.stderr.read() if p.stderr else ""
            lines.append(line)
        rows = [line.split() for line in lines if line.startswith("hca-")]
        # addresses follow the topology's order, not the picked subset's
        assert [(h[0], h[2]) for h in rows] == [("hca-1", "10.10.0.1/16"),
                                                ("hca-4", "10.10.0.4/16")]
        r = ipoib("exec", "hca-4", "--", "ping", "-c", "1", "-W", "2", "10.10.0.1")
        assert r.returncode == 0, r.stdout + r.stderr
        # --no-tso: TCP leaves hca-4's stack as MTU-sized segments, none for the HCA to cut
        server = subprocess.Popen([*IPOIB, "exec", "hca-1", "--", "iperf3", "-s", "-1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(20):
                time.sleep(0.2)
                if ipoib("exec", "hca-4", "--", "iperf3", "-c", "10.10.0.1",
                         "-t", "1").returncode == 0:  # timed: -n ends before all is sent
                    break
        finally:
            server.wait(timeout=10)
        c = json.loads(ipoib("show", "counters", "hca-4", "--json").stdout)["hca-4"]
        assert c["tx_packets"] > 150 and c["tx_tso_packets"] == 0, c
        one_line_error(ipoib("up", str(fabric), "--detach"), "already running")
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert "stopped; removed 2 namespace(s)" in out
    assert not [n for n in ip_netns_list() if n.startswith(prefix)]


def test_a_sigkilled_daemon_is_cleaned_by_down(fabric: Path, prefix: str,
                                               run_dir: RunDir) -> None:
    r = ipoib("up", str(fabric), "--detach", "--hosts", "hca-2", "--hosts", "hca-3")
    assert r.returncode == 0, r.stderr
    state = run_dir.load()
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    assert _pid_gone(state.pid)
    left = sorted(n for n in ip_netns_list() if n.startswith(prefix))
    assert left == [f"{prefix}hca-2", f"{prefix}hca-3"]
    one_line_error(ipoib("show", "hosts"), "no daemon is running")
    one_line_error(ipoib("exec", "hca-2", "--", "true"), "no daemon is running")
    # a new `up` cleans the dead daemon's leftovers first
    again = ipoib("up", str(fabric), "--detach", "--hosts", "hca-1")
    assert again.returncode == 0, again.stderr
    assert f"cleaned up after a daemon that died (pid {state.pid})" in again.stderr
    assert sorted(n for n in ip_netns_list() if n.startswith(prefix)) == [f"{prefix}hca-1"]
    state = run_dir.load()
    assert state is not None
    os.kill(state.pid, signal.SIGKILL)
    assert _pid_gone(state.pid)
    down = ipoib("down")
    assert down.returncode == 0, down.stderr
    assert "cleaned up after a daemon that died" in down.stdout
    assert f"namespace {prefix}hca-1" in down.stdout
    assert not [n for n in ip_netns_list() if n.startswith(prefix)]
    assert not run_dir.path.exists()


def test_errors_are_one_readable_line(fabric: Path, prefix: str, tmp_path: Path) -> None:
    not_root = subprocess.run(["unshare", "--user", *IPOIB, "up", str(fabric)],
                              capture_output=True, text=True, timeout=60, check=False)
    one_line_error(not_root, "must be run as root")
    bad = tmp_path / "bad.net"
    bad.write_text('Switch 4 "s1"\n[1] "h1"[1]\n')
    one_line_error(ipoib("up", str(bad)), f"{bad}:2:")
    one_line_error(ipoib("up", str(tmp_path / "missing.net")))
    one_line_error(ipoib("up", str(fabric), "--hosts", "hca-9"), "no HCA named 'hca-9'")
    one_line_error(ipoib("up", str(fabric), "--subnet", "10.0.0.0/30"), "room for 2")
    one_line_error(ipoib("down"), "no daemon is running")
    one_line_error(ipoib("show", "hosts"), "no daemon is running")
    one_line_error(ipoib("exec", "hca-1", "--", "true"), "no daemon is running")

    taken = f"{prefix}hca-3"
    subprocess.run(["ip", "netns", "add", taken], check=True)
    try:
        one_line_error(ipoib("up", str(fabric), "--detach"), taken, "already exists")
        assert [n for n in ip_netns_list() if n.startswith(prefix)] == [taken]
    finally:
        subprocess.run(["ip", "netns", "delete", taken], check=True)

    assert ipoib("up", str(fabric), "--detach", "--hosts", "hca-1").returncode == 0
    one_line_error(ipoib("up", str(fabric)), "already running")
    one_line_error(ipoib("exec", "hca-2", "--", "true"), "no host 'hca-2'")
    one_line_error(ipoib("show", "hosts", "hca-4"), "no host 'hca-4'")
    one_line_error(ipoib("exec", "hca-1"), "needs a command")
    assert ipoib("down").returncode == 0
