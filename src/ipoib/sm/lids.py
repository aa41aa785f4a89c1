"""LID assignment (IBA 14.4.7 "LID assignment"; LMC 0), stable across sweeps and restarts.

Who keeps which LID, in order of precedence:

1. the SM's own record (``previous``: the last sweep's assignment, or a guid2lid cache file
   read at start-up), for ports still present;
2. the LID the port already has (set by an earlier SM, or pre-assigned by the topology file);
3. everyone else gets the lowest free LID from 1 upward.

Ports claim in OpenSM's order: the SM's own port first, then the rest in OpenSM's table order
(:func:`~ipoib.sm.graph.opensm_order`). A claim on a LID someone already holds fails ("the
first claimant keeps it"); the loser is listed in :attr:`LidAssignment.conflicts` and gets a
free LID. LIDs remembered for ports that are gone stay reserved, so a port that comes back
gets its old LID; a present port's own LID wins over such a reservation.

The guid2lid cache file is OpenSM's format (``osm_db_pack.c``): one entry per line,
``0x<port GUID> <min LID> <max LID>``, numbers in C notation (``0x`` hex or decimal), each
entry followed by an empty line as OpenSM writes it. With LMC 0, min = max.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from .graph import Port, SubnetGraph, opensm_order

MAX_UCAST_LID = 0xBFFF
"""The highest unicast LID (IBA 4.1.3); 0xC000 and up are multicast."""


class LidFileError(ValueError):
    """A guid2lid line that does not parse: names the line and what was expected."""

    def __init__(self, line: int, text: str, expected: str) -> None:
        self.line = line
        self.text = text
        self.expected = expected
        super().__init__(f"guid2lid line {line}: {text!r}: expected {expected}")


@dataclass(frozen=True, slots=True)
class LidConflict:
    """A port whose claim on ``lid`` failed because ``holder`` (a port GUID) claimed it first."""

    guid: int
    lid: int
    holder: int


@dataclass(slots=True)
class LidAssignment:
    """The outcome of :func:`assign_lids`.

    ``lids`` maps each present endport's GUID to its LID; ``cache`` adds the reservations kept
    for absent ports and is what to save as guid2lid; ``changed`` lists the ports whose
    PortInfo LID must be set; ``conflicts`` the claims that lost.
    """

    lids: dict[int, int] = field(default_factory=dict)
    cache: dict[int, int] = field(default_factory=dict)
    changed: list[int] = field(default_factory=list)
    conflicts: list[LidConflict] = field(default_factory=list)

    @property
    def by_lid(self) -> dict[int, int]:
        """LID → port GUID for present ports."""
        return {lid: guid for guid, lid in self.lids.items()}

    @property
    def top(self) -> int:
        """The highest LID in use (0 if none): what LinearFDBTop must cover."""
        return max(self.lids.values(), default=0)


def valid_lid(lid: int) -> bool:
    """True for a unicast LID (1 .. 0xBFFF)."""
    return 1 <= lid <= MAX_UCAST_LID


def claim_order(ports: Collection[int], sm_port_guid: int | None = None) -> list[int]:
    """Port GUIDs in the order they claim LIDs: the SM's port, then OpenSM's table order."""
    rest = sorted((g for g in ports if g != sm_port_guid), key=opensm_order)
    return ([sm_port_guid] if sm_port_guid is not None and sm_port_guid in ports else []) + rest


def assign_lids(
    graph: SubnetGraph,
    previous: Mapping[int, int] | None = None,
    *,
    sm_port_guid: int | None = None,
) -> LidAssignment:
    """Give every endport of ``graph`` a unique unicast LID (LMC 0).

    ``previous`` maps port GUIDs to LIDs from an earlier sweep or a guid2lid file. Invalid
    LIDs in it are ignored. Raises ValueError if the subnet needs more than 0xBFFF LIDs.
    """
    ports: dict[int, Port] = {}
    for _node, port in graph.endports:
        ports.setdefault(port.guid, port)
    order = claim_order(ports, sm_port_guid)
    prev = {g: lid for g, lid in (previous or {}).items() if valid_lid(lid)}
    out = LidAssignment()
    holder: dict[int, int] = {}

    def claim(guid: int, lid: int) -> bool:
        owner = holder.get(lid)
        if owner is None:
            holder[lid] = guid
            out.lids[guid] = lid
            return True
        if owner != guid:
            out.conflicts.append(LidConflict(guid, lid, owner))
        return False

    for guid in order:  # 1. the SM's own record
        if guid in prev:
            claim(guid, prev[guid])
    for guid in order:  # 2. what the port already has
        lid = ports[guid].lid
        if guid not in out.lids and valid_lid(lid):
            claim(guid, lid)
    reserved = {
        lid: guid for guid, lid in prev.items() if guid not in ports and lid not in holder
    }
    free = 1
    for guid in order:  # 3. the lowest free LID
        if guid in out.lids:
            continue
        while free in holder or free in reserved:
            free += 1
        if free > MAX_UCAST_LID:
            raise ValueError(f"out of unicast LIDs: {len(ports)} ports")
        claim(guid, free)
    out.cache = {guid: lid for lid, guid in reserved.items()}
    out.cache.update(out.lids)
    out.changed = [guid for guid in order if ports[guid].lid != out.lids[guid]]
    return out


def parse_guid2lid(text: str) -> dict[int, int]:
    """Read OpenSM's guid2lid cache: port GUID → base LID (the min LID of each entry).

    Empty lines and ``#`` comments are skipped. A GUID given twice keeps its last entry, as
    OpenSM's reader does. Raises :class:`LidFileError` naming the line on anything else.
    """
    out: dict[int, int] = {}
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if len(words) != 3:
            raise LidFileError(no, raw, "'0x<port GUID> <min LID> <max LID>'")
        guid = _number(no, raw, words[0], "a port GUID such as 0x0002c90300001001")
        lo = _number(no, raw, words[1], "a min LID such as 0x0001")
        hi = _number(no, raw, words[2], "a max LID such as 0x0001")
        if not 0 < guid < 1 << 64:
            raise LidFileError(no, raw, "a non-zero 64-bit port GUID")
        if not valid_lid(lo) or not valid_lid(hi) or hi < lo:
            raise LidFileError(no, raw, f"LIDs 1..{MAX_UCAST_LID:#x} with min <= max")
        out[guid] = lo
    return out


def format_guid2lid(lids: Mapping[int, int], lmc: int = 0) -> str:
    """OpenSM's guid2lid text for ``lids`` (port GUID → base LID), sorted by GUID."""
    span = (1 << lmc) - 1
    return "".join(
        f"0x{guid:016x} 0x{lid:04x} 0x{lid + span:04x}\n\n" for guid, lid in sorted(lids.items())
    )


def _number(no: int, raw: str, word: str, expected: str) -> int:
    try:
        return int(word, 16) if word.lower().startswith("0x") else int(word, 10)
    except ValueError:
        raise LidFileError(no, raw, expected) from None
