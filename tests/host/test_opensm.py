"""OpenSM's process management (:mod:`ipoib.host.opensm`), with a stand-in binary.

The real OpenSM runs in tests/peers/test_opensm_hosts.py; here a few lines of shell play it
(log "SUBNET UP", exit, never come up, ...), so each way a run can go is tested quickly and
deterministically: the gate holds the process until it is recorded, a daemon killed with
SIGKILL takes it along, a dead one is restarted, a stuck one is reported with its log's tail.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipoib.host.opensm import (
    GATE_EXIT,
    OpenSm,
    OpenSmConfig,
    OpenSmError,
    environment,
    launch_argv,
    log_tail,
)
from ipoib.host.state import proc_start

UP = """#!/bin/sh
# a stand-in OpenSM: -f LOG is $3; says SUBNET UP, then serves until killed
log="$3"
echo "Nov 24 02:26:50 100394 [BEC976C0] 0x02 -> OpenSM 3.3.23 (stand-in)" >> "$log"
echo "Nov 24 02:26:50 100395 [BEC976C0] 0x02 -> SUBNET UP" >> "$log"
echo "pid $$ preload=$LD_PRELOAD sim_host=$SIM_HOST" > "$(dirname "$log")/env.$$"
exec sleep 60
"""
STUCK = """#!/bin/sh
echo "Nov 24 02:26:50 100394 [BEC976C0] 0x02 -> SM port is down" >> "$3"
exec sleep 60
"""
DIES = """#!/bin/sh
echo "Nov 24 02:26:50 100394 [BEC976C0] 0x01 -> ERR 0001: no local ports" >> "$3"
exit 3
"""


def stand_in(tmp_path: Path, script: str) -> OpenSmConfig:
    binary = tmp_path / "opensm"
    binary.write_text(script)
    binary.chmod(0o755)
    preload = tmp_path / "preload.so"
    preload.write_bytes(b"")  # ld.so warns about it and goes on
    return OpenSmConfig("ipoib-test", "sw-1", tmp_path / "osm", binary=str(binary),
                        umad2sim=str(preload), timeout=5.0)


def gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if proc_start(pid) is None:
            return True
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                return True
        time.sleep(0.02)
    return False


def test_environment_preloads_only_opensm(tmp_path: Path) -> None:
    cfg = stand_in(tmp_path, UP)
    env = environment(cfg, {"LD_PRELOAD": "/x.so", "IBSIM_SERVER_NAME": "h", "PATH": "/bin"})
    assert "LD_PRELOAD" not in env and "IBSIM_SERVER_NAME" not in env
    assert env["IBSIM_SOCKNAME"] == "ipoib-test" and env["SIM_HOST"] == "sw-1"
    assert env["OSM_CACHE_DIR"] == env["OSM_TMP_DIR"] == str(cfg.cache)
    argv = launch_argv(cfg)
    assert f"LD_PRELOAD={cfg.umad2sim}" in argv
    assert argv[argv.index(f"LD_PRELOAD={cfg.umad2sim}") + 1] == cfg.binary
    assert argv[-3:] == ["-d2", "-f", str(cfg.log)]


def test_log_tail_is_one_line_without_stamps(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_text("Nov 24 02:26:50 100394 [BEC976C0] 0x02 -> first\n\n"
                   "Nov 24 02:26:50 100395 [BEC976C0] 0x01 -> ERR 0A01: second\nthird\n")
    assert log_tail(log) == "first | ERR 0A01: second | third"
    assert log_tail(tmp_path / "none", log, lines=1) == "third"
    assert log_tail(tmp_path / "none") == "(no output)"
    assert len(log_tail(log, limit=10)) == 13


def test_the_gate_holds_the_process_until_it_is_recorded(tmp_path: Path) -> None:
    cfg = stand_in(tmp_path, UP)
    seen: list[tuple[int, bool, int | None]] = []

    def record(pid: int) -> None:
        time.sleep(0.2)  # the stand-in would have written its log by now, were it running
        seen.append((pid, cfg.log.exists(), proc_start(pid)))

    osm = OpenSm(cfg, record=record)
    osm.prepare()
    pid = osm.spawn()
    try:
        assert seen == [(pid, False, proc_start(pid))]
        deadline = time.monotonic() + 5
        while osm.state != "up":
            assert time.monotonic() < deadline
            osm.check()
            time.sleep(0.02)
        # the same process (pid and start time, as the run state has them) became OpenSM,
        # with the preload and SIM_HOST set for it alone
        env = (cfg.workdir / f"env.{pid}").read_text()
        assert f"preload={cfg.umad2sim}" in env and "sim_host=sw-1" in env
        assert proc_start(pid) == seen[0][2]
    finally:
        osm.stop()
    assert gone(pid)


def test_a_failed_record_kills_the_held_process(tmp_path: Path) -> None:
    cfg = stand_in(tmp_path, UP)
    pids: list[int] = []

    def record(pid: int) -> None:
        pids.append(pid)
        raise OSError("disk full")

    osm = OpenSm(cfg, record=record)
    osm.prepare()
    with pytest.raises(OSError):
        osm.spawn()
    assert gone(pids[0]) and not cfg.log.exists()


def test_a_gate_never_opened_runs_nothing(tmp_path: Path) -> None:
    cfg = stand_in(tmp_path, UP)
    cfg.cache.mkdir(parents=True)
    proc = subprocess.Popen(launch_argv(cfg), env=environment(cfg), cwd=cfg.workdir,
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.close()  # as when the daemon dies before opening it
    assert proc.wait(timeout=5) == GATE_EXIT
    assert not cfg.log.exists()


_DAEMON = """
import sys, time
from pathlib import Path
from ipoib.host.opensm import OpenSm, OpenSmConfig
cfg = OpenSmConfig("ipoib-test", "sw-1", Path(sys.argv[1]), binary=sys.argv[2],
                   umad2sim=sys.argv[3])
osm = OpenSm(cfg)
osm.prepare()
print(osm.spawn(), flush=True)
time.sleep(60)
"""


def test_a_daemon_killed_with_sigkill_takes_opensm_along(tmp_path: Path) -> None:
    cfg = stand_in(tmp_path, UP)
    daemon = subprocess.Popen([sys.executable, "-c", _DAEMON, str(cfg.workdir), cfg.binary,
                               cfg.umad2sim], stdout=subprocess.PIPE, text=True)
    assert daemon.stdout is not None
    pid = int(daemon.stdout.readline())
    deadline = time.monotonic() + 5
    while not cfg.log.exists():  # OpenSM is running
        assert time.monotonic() < deadline
        time.sleep(0.02)
    daemon.send_signal(signal.SIGKILL)
    daemon.wait()
    assert gone(pid), "OpenSM outlived its daemon"


def test_start_waits_for_subnet_up_and_a_dead_opensm_is_restarted(tmp_path: Path) -> None:
    cfg = stand_in(tmp_path, UP)
    recorded: list[int] = []
    exited: list[int] = []
    osm = OpenSm(cfg, record=recorded.append, on_exit=exited.append)

    async def scenario() -> None:
        await osm.start()
        assert osm.state == "up" and recorded == [osm.pid]
        first = osm.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not (osm.restarts == 1 and osm.state == "up"):
            assert time.monotonic() < deadline, osm.describe()
            await asyncio.sleep(0.05)
        assert exited == [first] and osm.last_exit == -signal.SIGKILL
        assert recorded == [first, osm.pid] and osm.pid != first

    try:
        asyncio.run(scenario())
    finally:
        osm.stop()
    assert osm.state == "stopped" and all(gone(p) for p in recorded)
    assert "1 restart(s)" in osm.summary() and str(cfg.log) in osm.summary()


def test_no_subnet_up_in_time_is_one_line_with_the_log_tail(tmp_path: Path) -> None:
    cfg = stand_in(tmp_path, STUCK)
    cfg = OpenSmConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                          "timeout": 0.3})
    osm = OpenSm(cfg)
    with pytest.raises(OpenSmError) as e:
        asyncio.run(osm.start())
    msg = str(e.value)
    assert "\n" not in msg
    assert "did not report SUBNET UP within 0.3 s" in msg and msg.endswith("SM port is down")
    assert str(cfg.log) in msg
    assert osm.pid is not None and gone(osm.pid)


def test_exit_before_subnet_up_is_reported_with_its_status(tmp_path: Path) -> None:
    osm = OpenSm(stand_in(tmp_path, DIES))
    with pytest.raises(OpenSmError, match=r"exited with status 3 before SUBNET UP .*"
                                          r"ERR 0001: no local ports$"):
        asyncio.run(osm.start())


def test_missing_binary_is_named(tmp_path: Path) -> None:
    cfg = OpenSmConfig("s", "n", tmp_path, binary=str(tmp_path / "no-opensm"))
    with pytest.raises(OpenSmError, match="apt install opensm"):
        asyncio.run(OpenSm(cfg).start())
