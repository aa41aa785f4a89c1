"""Run state and cleanup: the lock, what is recorded before it is made, undoing it all."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ipoib.host import control, netns
from ipoib.host.relay import relay_daemon
from ipoib.host.state import AlreadyRunning, RunDir, RunState, cleanup, proc_start
from tests.host.helpers import ROOT, ip_netns_list, needs_root, run_in

HOLD_LOCK = """
import sys, time
from ipoib.host.state import RunDir
RunDir(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
"""

SETUP_THEN_HANG = """
import sys, time
from ipoib.host.relay import relay_daemon
from ipoib.host.state import RunDir
rd = RunDir(sys.argv[1])
rd.acquire()
relay_daemon(sys.argv[2], run_dir=rd).setup()
print("made", flush=True)
time.sleep(60)
"""


def _start(script: str, *args: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE,
                         text=True, cwd=ROOT)
    assert p.stdout is not None and p.stdout.readline().strip() in ("locked", "made")
    return p


def test_state_round_trips_and_finds_hosts() -> None:
    s = RunState(pid=12, started=1.5, topology="f.net", control="/x/control.sock",
                 namespaces=["ipoib-a"], tuns=[["ipoib-a", "ib0"]], children=[[99, 1234]],
                 hosts=[{"host": "hca-1", "netns": "ipoib-a", "ipv4": "10.10.0.1/16",
                         "ipv6": "fe80::1/64"}])
    back = RunState.from_json(s.to_json())
    assert back == s
    for key in ("hca-1", "ipoib-a", "10.10.0.1", "fe80::1"):
        assert back.find_host(key) is s.hosts[0] or back.find_host(key) == s.hosts[0]
    assert back.find_host("10.10.0.2") is None
    with pytest.raises(netns.HostError):
        RunState.from_json('{"started": 1}')


def test_the_lock_says_who_runs_and_dies_with_its_holder(tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run")
    assert not rd.daemon_alive()
    holder = _start(HOLD_LOCK, str(rd.path))
    try:
        rd.save(RunState(pid=holder.pid, started=0.0))
        assert rd.daemon_alive()
        with pytest.raises(AlreadyRunning) as e:
            rd.acquire()
        assert f"pid {holder.pid}" in str(e.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not rd.daemon_alive()
    rd.acquire()
    try:
        assert rd.holding and rd.daemon_alive()
        other = RunDir(rd.path)
        assert other.daemon_alive() and not other.wait_acquire(0.1)
    finally:
        rd.release()
    rd.remove()
    assert not rd.path.exists()


def test_cleanup_signals_only_children_it_recorded_with_their_start_time() -> None:
    mine = subprocess.Popen(["sleep", "60"])
    reused = subprocess.Popen(["sleep", "60"])
    try:
        start = proc_start(mine.pid)
        assert start is not None
        state = RunState(pid=1, started=0.0,
                         children=[[mine.pid, start], [reused.pid, start - 1]])
        done = cleanup(state, grace=0.5)
        assert done == [f"process {mine.pid}"]
        assert mine.wait(5) is not None and reused.poll() is None
    finally:
        for p in (mine, reused):
            p.kill()
            p.wait()


@needs_root
def test_cleanup_removes_recorded_namespaces_only(prefix: str, tmp_path: Path) -> None:
    ours, theirs = f"{prefix}ours", f"{prefix}theirs"
    netns.create(ours)
    netns.create(theirs)
    try:
        rd = RunDir(tmp_path / "run")
        state = RunState(pid=1, started=0.0, namespaces=[ours, f"{prefix}never-made"])
        rd.save(state)
        assert cleanup(state, rd) == [f"namespace {ours}"]
        assert not netns.exists(ours) and netns.exists(theirs)
        assert not rd.state_path.exists()
    finally:
        netns.delete(theirs)
        netns.delete(ours)


@needs_root
def test_a_daemon_killed_after_setup_is_cleaned_from_its_state(prefix: str,
                                                               tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run")
    p = _start(SETUP_THEN_HANG, str(rd.path), prefix)
    p.send_signal(signal.SIGKILL)
    p.wait()
    made = [n for n in ip_netns_list() if n.startswith(prefix)]
    assert sorted(made) == [f"{prefix}relay-a", f"{prefix}relay-b"]
    assert not rd.daemon_alive()
    state = rd.load()
    assert state is not None and state.pid == p.pid
    assert sorted(state.namespaces) == sorted(made)
    assert len(state.tuns) == 2 and len(state.hosts) == 2
    cleanup(state, rd)
    assert not [n for n in ip_netns_list() if n.startswith(prefix)]


@needs_root
def test_setup_refuses_a_taken_name_before_making_anything(prefix: str,
                                                           tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run")
    taken = f"{prefix}relay-b"
    subprocess.run(["ip", "netns", "add", taken], check=True)
    try:
        d = relay_daemon(prefix, run_dir=rd)
        with pytest.raises(netns.NamespaceTaken):
            d.setup()
        assert d.teardown() == []
        assert not netns.exists(f"{prefix}relay-a") and netns.exists(taken)
        assert rd.load() is None
    finally:
        subprocess.run(["ip", "netns", "delete", taken], check=True)


@needs_root
def test_daemon_serves_pings_and_stops_on_the_stop_command(prefix: str,
                                                           tmp_path: Path) -> None:
    rd = RunDir(tmp_path / "run")
    rd.acquire()
    d = relay_daemon(prefix, run_dir=rd)
    ready: list[list[dict[str, object]]] = []
    removed: list[str] = []
    t = threading.Thread(target=lambda: removed.extend(d.run(ready.append)), daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 10
        while not ready:
            assert time.monotonic() < deadline and t.is_alive()
            time.sleep(0.01)
        assert [r["carrier"] for r in ready[0]] == [True, True]
        hosts = control.request(rd.socket_path, "hosts", host="relay-b")
        assert [r["ipv4"] for r in hosts.data] == ["10.77.0.2/24"]
        assert "relay-b" in (hosts.text or "")
        r = run_in(f"{prefix}relay-a", "ping", "-c", "2", "-i", "0.05", "-W", "2", "10.77.0.2")
        assert r.returncode == 0, r.stdout
        status = control.request(rd.socket_path, "status").data
        assert status["ready"] is True and status["runtime"]["from_hosts"] >= 2
        control.request(rd.socket_path, "stop")
        t.join(10)
        assert not t.is_alive()
        assert sorted(removed) == [f"namespace {prefix}relay-a", f"namespace {prefix}relay-b"]
        assert rd.load() is None and not rd.socket_path.exists()
    finally:
        if t.is_alive():
            d.stop()
            t.join(10)
        rd.release()
