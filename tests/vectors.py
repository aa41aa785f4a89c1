"""Reader for the ``.hex`` trace files in ``shared/vectors/opensm`` (real OpenSM/ibsim bytes).

Each record is one 288-byte ``struct sim_request`` datagram: a ``### write|read`` line with its
metadata, the 32-byte header and the MAD (only ``length`` bytes of it are valid).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

_HEAD = re.compile(r"^### (write|read) fd=\d+ \((?:to|from) ibsim\) (\{.*\})\s*$")
_DUMP = re.compile(r"^[0-9a-f]{4}: ((?:[0-9a-f]{2} ?)+)$")


@dataclass(frozen=True)
class SimRecord:
    """One traced datagram: ``sent`` is True for the tool's writes (requests)."""

    sent: bool
    meta: dict[str, int]
    header: bytes
    mad: bytes  # all 256 bytes as traced; only meta["length"] of them are valid

    @property
    def valid(self) -> bytes:
        """The valid bytes of the MAD."""
        return self.mad[: self.meta["length"]]


def read_hex(path: Path) -> list[SimRecord]:
    """Parse a ``.hex`` vector file into its records, in file order."""
    records: list[SimRecord] = []
    cur: tuple[bool, dict[str, int]] | None = None
    section = ""
    header = bytearray()
    mad = bytearray()

    def flush() -> None:
        if cur is not None:
            records.append(SimRecord(cur[0], cur[1], bytes(header), bytes(mad)))

    for line in path.read_text().splitlines():
        m = _HEAD.match(line)
        if m:
            flush()
            cur = (m.group(1) == "write", ast.literal_eval(m.group(2)))
            header.clear()
            mad.clear()
            section = ""
            continue
        if line.startswith("# sim_request"):
            section = "header"
        elif line.startswith("# MAD"):
            section = "mad"
        else:
            d = _DUMP.match(line.strip())
            if d and section:
                (header if section == "header" else mad).extend(bytes.fromhex(d.group(1)))
    flush()
    return records
