"""``ipoib topo gen|check`` as a user runs it: a real process, its output and exit status."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ipoib.fabric import topogen
from ipoib.fabric.netfile import load, loads

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".venv" / "bin" / "ipoib"
IPOIB = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "ipoib"]


def ipoib(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*IPOIB, *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, check=False)


def test_gen_fat_tree_to_stdout_is_the_generated_topology() -> None:
    r = ipoib("topo", "gen", "fat-tree", "--hcas", "8")
    assert r.returncode == 0, r.stderr
    got, want = loads(r.stdout), topogen.fat_tree(8)
    assert (got.nodes, got.links) == (want.nodes, want.links)


@pytest.mark.parametrize("shape,args,switches,hcas", [
    ("fat-tree", ["--hcas", "108"], 9, 108),
    ("fat-tree", ["--hcas", "8", "--levels", "3"], 12, 8),
    ("line", ["--switches", "3", "--hcas-per-switch", "2"], 3, 6),
    ("ring", ["--switches", "4", "--hcas-per-switch", "1"], 4, 4),
])
def test_gen_to_file_then_check(tmp_path: Path, shape: str, args: list[str], switches: int,
                                hcas: int) -> None:
    out = tmp_path / "fabric.net"
    r = ipoib("topo", "gen", shape, *args, "-o", str(out))
    assert r.returncode == 0 and r.stdout == "", r.stderr
    topo = load(out)
    assert (len(topo.switches), len(topo.cas)) == (switches, hcas)
    r = ipoib("topo", "check", str(out))
    assert r.returncode == 0 and r.stderr == ""
    lines = r.stdout.splitlines()
    assert lines[0] == f"{out}: ok" and len(lines) <= 24
    fields = {ln.split()[0]: ln.split()[1] for ln in lines[1:6]}
    assert fields == {"switches": str(switches), "HCAs": str(hcas), "routers": "0",
                      "links": str(len(topo.links)), "ports": str(2 * len(topo.links))}
    assert "0x0000000000200000 .. " in r.stdout and "0x0000000000100000 .. " in r.stdout


def test_check_reports_file_line_and_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text('Switch 8 "sw"\n[1] "hca"[1]\n[2] "ghost"[1]\n\nCa 1 "hca"\n[1] "sw"[1]\n')
    r = ipoib("topo", "check", "bad.net", cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == 'bad.net:3: "sw"[2] is cabled to unknown node "ghost"\n'


@pytest.mark.parametrize("args", [
    ["topo", "check", "no-such-file.net"],
    ["topo", "gen", "ring", "--switches", "2", "--hcas-per-switch", "1"],
    ["topo", "gen", "fat-tree", "--hcas", "0"],
    ["topo", "gen", "fat-tree", "--hcas", "8", "-o", "/nonexistent-dir/x.net"],
])
def test_errors_are_one_line_without_traceback(tmp_path: Path, args: list[str]) -> None:
    r = ipoib(*args, cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
