"""``ipoib sweep``: summaries, JSON, exit statuses, one-line errors, progress display."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipoib.cli import main
from ipoib.commands import sweep
from ipoib.fabric import netfile, topogen

NET = Path("/usr/share/doc/ibsim-utils/net-examples")

# Switch B is reachable only through HCA X, and CAs do not forward directed-route SMPs:
# the SM on switch A never sees B or HCA Y, so their ports stay INIT.
ISLAND = """\
Switch 2 "SwA"
[1] "HcaX"[1]

Switch 2 "SwB"
[1] "HcaX"[2]
[2] "HcaY"[1]

Hca 2 "HcaX"
[1] "SwA"[1]
[2] "SwB"[1]

Hca 1 "HcaY"
[1] "SwB"[2]
"""


def test_summary_of_an_ibsim_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", str(NET / "net.2sw2path4hca")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith("net.2sw2path4hca: OK")
    assert "Switch1 port 0, LID 1, routing minhop" in out
    assert "ports ACTIVE      12/12 cabled ports" in out
    assert "LIDs assigned     6 (1..6)" in out
    assert "PortInfo Set" in out and "LFT Set" in out
    assert "0 unreachable, 0 looping" in out


def test_json_summary_of_a_fat_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ft.net"
    path.write_text(netfile.dumps(topogen.fat_tree(72)))
    assert main(["sweep", str(path), "--json", "--routing", "updn", "--sm-node", "hca-3"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["ok"] and s["subnet_up"] and s["routing"] == "updn" and s["sm_node"] == "hca-3"
    assert s["ports_active"] == s["ports_linked"] > 0
    assert s["hcas"] == 72 and s["hca_ports_active"] == 72
    assert s["lids_assigned"] == s["hcas"] + s["switches"]
    assert s["routes"]["unreachable"] == s["routes"]["loops"] == 0
    assert s["routes"]["max_hops"] == 4 and sum(s["routes"]["hops"].values()) == \
        s["routes"]["pairs"]
    assert s["smps_sent"] == sum(s["smps_by_attribute"].values())
    bal = s["uplink_balance"]
    assert bal["ports"] > 0 and bal["min"] <= bal["mean"] <= bal["max"]


def test_unreachable_part_exits_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "island.net"
    path.write_text(ISLAND)
    assert main(["sweep", str(path)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEMS" in out.splitlines()[0]
    assert "ports ACTIVE      2/6 cabled ports" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["sweep", "/nonexistent/net"], "cannot read"),
    (["sweep", str(NET / "net"), "--sm-node", "nosuch"], "no such node"),
])
def test_errors_are_one_line(argv: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_routing_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["sweep", str(NET / "net"), "--routing", "lash"])
    assert "invalid choice" in capsys.readouterr().err


def test_progress_shows_on_slow_bring_ups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sweep, "PROGRESS_AFTER", 0.0)
    path = tmp_path / "ft.net"
    path.write_text(netfile.dumps(topogen.fat_tree(216)))
    assert main(["sweep", str(path)]) == 0
    err = capsys.readouterr().err
    assert "nodes discovered" in err and "LFT blocks written" in err
