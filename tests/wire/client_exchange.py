"""Reader for ``shared/vectors/opensm/client_exchange_hca*.txt`` (a raw ibsim client's log).

Each exchange shows the request MAD's first 128 bytes only (the rest is printed as `` ...``)
and the reply's ``length`` valid bytes; see the vectors README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_DUMP = re.compile(r"^([0-9a-f]{4}): ((?:[0-9a-f]{2} ?)+)$")
_REPLY = re.compile(r"^-- reply: (.*)$")


@dataclass(frozen=True)
class Exchange:
    """One request/reply pair: ``request`` holds only the bytes the log shows."""

    title: str
    request: bytes
    reply_meta: dict[str, int]
    reply: bytes


def read_exchanges(path: Path) -> tuple[list[str], list[Exchange]]:
    """The control-channel lines before the first exchange, and the exchanges in order."""
    preamble: list[str] = []
    out: list[Exchange] = []
    title = ""
    section = ""
    parts: dict[str, bytearray] = {}
    meta: dict[str, int] = {}

    def flush() -> None:
        if title:
            out.append(Exchange(title, bytes(parts.get("sent MAD", b"")), dict(meta),
                                bytes(parts.get("reply MAD", b""))))

    for line in path.read_text().splitlines():
        if line.startswith("=== "):
            flush()
            title, section, parts, meta = line[4:], "", {}, {}
            continue
        if not title:
            preamble.append(line)
            continue
        m = _REPLY.match(line)
        if m:
            meta = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
            section = "reply header"
            continue
        if line.startswith("-- "):
            section = line[3:].rstrip(":")
            continue
        d = _DUMP.match(line.strip())
        if d and section in ("sent MAD", "reply MAD"):
            parts.setdefault(section, bytearray()).extend(bytes.fromhex(d.group(2)))
    flush()
    return preamble, out
