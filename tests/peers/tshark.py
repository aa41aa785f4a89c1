"""Run tshark on a capture and get one dict of field values per packet.

Peer tests use this to check our bytes against Wireshark's dissectors (wire-formats.md §8)::

    rows = tshark_fields(path, ["infiniband.lrh.dlid", "infiniband.bth.destqp"])
    assert rows[0]["infiniband.lrh.dlid"] == "3"

Every row also carries ``frame.protocols``, ``_ws.col.Info``, ``_ws.malformed`` and
``_ws.expert.message``, the fields every peer test checks. A field that occurs several times
in one packet comes back comma-joined; an absent field is ``""``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

TSHARK = shutil.which("tshark") or "/usr/bin/tshark"

ALWAYS = ("frame.protocols", "_ws.col.Info", "_ws.malformed", "_ws.expert.message")
"""Fields included in every row."""

SEP = "\t"

EXPECTED_NOTES = ('"Time To Live" != 1',)
"""Expert notes good packets may get: IPv4 TTL above 1 to 224.0.0.x (wire-formats.md §8.6)."""


def have_tshark() -> bool:
    """True when a tshark binary can be run."""
    return os.access(TSHARK, os.X_OK)


def require_tshark() -> None:
    """Skip the calling test when tshark is not installed."""
    if not have_tshark():
        pytest.skip("tshark is not installed")


def tshark_fields(
    pcap: Path | str, fields: Sequence[str] = (), *, options: Sequence[str] = (),
    display_filter: str | None = None, timeout: float = 60.0,
) -> list[dict[str, str]]:
    """Dissect ``pcap`` and return, per packet, ``{field: value}`` for ``fields`` + ALWAYS.

    ``options`` are extra tshark arguments (for example ``-o`` preferences). tshark's exit
    status must be 0; its stderr is part of the error otherwise.
    """
    names = list(dict.fromkeys([*ALWAYS, *fields]))
    cmd = [TSHARK, "-n", "-r", str(pcap), *options, "-T", "fields", "-E", "header=n",
           "-E", f"separator={SEP}", "-E", "occurrence=a", "-E", "aggregator=,",
           "-E", "quote=n"]
    if display_filter:
        cmd += ["-Y", display_filter]
    for n in names:
        cmd += ["-e", n]
    env = dict(os.environ, LC_ALL="C")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"tshark exited {proc.returncode}: {proc.stderr.strip()}")
    rows = []
    for line in proc.stdout.splitlines():
        values = line.split(SEP)
        values += [""] * (len(names) - len(values))
        rows.append(dict(zip(names, values, strict=True)))
    return rows


def clean(row: dict[str, str]) -> list[str]:
    """Problems tshark reported for one packet: malformed, bad LRH length, expert notes
    other than the ones wire-formats.md §8.6 lists as expected for good packets."""
    problems = []
    if row.get("_ws.malformed"):
        problems.append(f"malformed: {row['_ws.malformed']}")
    if "Invalid Packet Length" in row.get("_ws.col.Info", ""):
        problems.append(f"info: {row['_ws.col.Info']}")
    for msg in filter(None, row.get("_ws.expert.message", "").split(",")):
        if not any(note in msg for note in EXPECTED_NOTES):
            problems.append(f"expert: {msg}")
    return problems
