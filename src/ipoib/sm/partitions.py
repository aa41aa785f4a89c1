"""Partitions: a subset of OpenSM's ``partitions.conf``, turned into P_Key tables and the IPoIB
broadcast groups the SA pre-creates (IBA 10.9 partitioning; RFC 4391 §5; OpenSM's
``doc/partition-config.txt``).

The file is a list of statements, each ended by ``;`` (a final one may omit it)::

    Name[=PKey][,flag[=value]]... : member[=full|limited|both], member... ;

- ``#`` starts a comment. The part up to ``:`` must be on the statement's first line; the
  member list may wrap over any number of lines. Several statements may share a line.
- A name alone gets the next free P_Key counting from 1 (or joins an earlier partition of that
  name); a P_Key alone (first character a digit) is unnamed. Only the low 15 bits count.
  Statements with the same P_Key merge.
- Flags: ``ipoib``; ``mtu``, ``rate``, ``scope`` (IBA codes: mtu=4 is 2048, rate=3 is
  10 Gb/s, scope=2 link-local; ``scope`` may repeat); ``sl``; ``Q_Key``, ``TClass``,
  ``FlowLabel``; ``defmember=full|limited|both``. The group parameters come from the first
  ``ipoib`` statement of a partition.
- Members: port GUIDs (``0x...`` or decimal), ``ALL``, ``ALL_CAS``, ``ALL_SWITCHES``,
  ``ALL_ROUTERS``, ``SELF`` (the SM's port), ``NONE``. Membership words may be abbreviated
  (``limi``); without one a member gets the statement's ``defmember`` (default limited).
  ``both`` counts as full (OpenSM without ``allow_both_pkeys``). A port named again takes
  the later membership. GUIDs not in the subnet are ignored until they appear.

As in OpenSM: the Default partition 0x7fff always exists and the SM's port is a full member;
without a file every port is a full member, with one every port starts as a limited member.
Partitions left without members are dropped. Unless QoS is on, ``sl`` is forced to 0, as
OpenSM does. Unlike OpenSM, the Default partition always gets its IPoIB broadcast group, and
anything OpenSM would skip with a warning (unknown flag, bad value, bad membership word,
``mgid=`` groups) is an error here: :class:`PartitionsError` names the line and what was
expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..wire.enums import Mtu, NodeType, Rate
from .graph import SubnetGraph

DEFAULT_PKEY = 0x7FFF
"""The Default partition's P_Key (its full-member form is 0xFFFF)."""

FULL_MEMBER = 0x8000
"""The membership bit of a P_Key table entry (IBA 10.9.1)."""

IPOIB_QKEY = 0x0B1B
"""OpenSM's Q_Key for IPoIB broadcast groups (``OSM_IPOIB_BROADCAST_MGRP_QKEY``)."""

DEFAULT_MTU = int(Mtu.MTU_2048)
DEFAULT_RATE = int(Rate.R10)
DEFAULT_SCOPE = 2
"""Link-local multicast scope."""

_KEYWORDS = {
    "ALL": None,
    "ALL_CAS": NodeType.CA,
    "ALL_SWITCHES": NodeType.SWITCH,
    "ALL_ROUTERS": NodeType.ROUTER,
}


class PartitionsError(ValueError):
    """A partitions file statement that does not parse: names the line and what was expected."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"partitions line {line}: {message}")


@dataclass(frozen=True, slots=True)
class IpoibGroup:
    """An IPoIB broadcast group to pre-create (MCMemberRecord fields, IBA 15.2.5.17)."""

    pkey: int
    """The partition's P_Key with the full-member bit set, as in the MGID."""
    scope: int = DEFAULT_SCOPE
    qkey: int = IPOIB_QKEY
    mtu: int = DEFAULT_MTU
    rate: int = DEFAULT_RATE
    sl: int = 0
    tclass: int = 0
    flow_label: int = 0

    @property
    def hop_limit(self) -> int:
        """0 for a link-local group, 0xFF otherwise (OpenSM)."""
        return 0 if self.scope == DEFAULT_SCOPE else 0xFF

    @property
    def mgid(self) -> bytes:
        """ff1S:401b:PPPP::ffff:ffff (RFC 4391 §4, wire-formats.md §7.3)."""
        return (
            bytes((0xFF, 0x10 | self.scope, 0x40, 0x1B))
            + self.pkey.to_bytes(2, "big")
            + bytes(6)
            + b"\xff\xff\xff\xff"
        )


@dataclass(slots=True)
class Partition:
    """One partition after merging its statements; members are port GUIDs."""

    name: str
    pkey: int
    ipoib: bool = False
    groups: tuple[IpoibGroup, ...] = ()
    sl: int = 0
    full: set[int] = field(default_factory=set)
    limited: set[int] = field(default_factory=set)

    def add(self, guid: int, full: bool) -> None:
        """Make ``guid`` a member, replacing any earlier membership."""
        (self.limited if full else self.full).discard(guid)
        (self.full if full else self.limited).add(guid)


@dataclass(frozen=True, slots=True)
class Statement:
    """One parsed statement: the header, its flags and the member tokens with their lines."""

    line: int
    name: str
    pkey: int | None
    flags: tuple[tuple[str, str | None, int], ...]
    members: tuple[tuple[str, str | None, int], ...]


@dataclass(slots=True)
class PartitionPlan:
    """The partitions in force, each endport's wanted P_Keys, and the groups to pre-create."""

    partitions: list[Partition]
    pkeys: dict[int, list[int]]
    """Port GUID → P_Key entries (0x8000 set for full members): Default first, then by P_Key."""
    groups: list[IpoibGroup]


def parse_partitions(text: str) -> list[Statement]:
    """Split a partitions file into statements; raises :class:`PartitionsError`."""
    out: list[Statement] = []
    current: list[tuple[int, str]] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        rest = raw.split("#", 1)[0]
        while True:
            head, sep, rest = rest.partition(";")
            if head.strip() or (sep and current):
                current.append((no, head))
            if not sep:
                break
            if current:
                out.append(_statement(current))
            current = []
    if current:
        out.append(_statement(current))
    return out


def _statement(pieces: list[tuple[int, str]]) -> Statement:
    first_line, first = pieces[0]
    header, colon, tail = first.partition(":")
    if not colon:
        raise PartitionsError(
            first_line, "expected 'Name=PKey[,flags] :' before the member list, on one line"
        )
    parts = [p.strip() for p in header.split(",")]
    name, eq, key = (s.strip() for s in parts[0].partition("="))
    if not eq and name[:1].isdigit():
        name, key = "", name
    pkey = None
    if key:
        value = _int(key)
        if value is None or not 0 <= value <= 0xFFFF:
            raise PartitionsError(first_line, f"expected a P_Key such as 0x7fff, not {key!r}")
        pkey = value & 0x7FFF or None
    elif eq:
        raise PartitionsError(first_line, "expected a P_Key after '='")
    flags: list[tuple[str, str | None, int]] = []
    for part in parts[1:]:
        flag, eq, setting = (s.strip() for s in part.partition("="))
        if not flag:
            raise PartitionsError(first_line, "expected a flag name between commas")
        flags.append((flag, setting if eq else None, first_line))
    members: list[tuple[str, str | None, int]] = []
    for line, text in [(first_line, tail), *pieces[1:]]:
        for token in text.split(","):
            member, eq, how = (s.strip() for s in token.partition("="))
            if member == "mgid":
                raise PartitionsError(line, "per-partition mgid= groups are not supported")
            if member or eq:
                members.append((member, how if eq else None, line))
    return Statement(first_line, name, pkey, tuple(flags), tuple(members))


def _int(word: str) -> int | None:
    try:
        return int(word, 16) if word.lower().startswith("0x") else int(word, 10)
    except ValueError:
        return None


def _membership(word: str, line: int) -> str:
    for full_word in ("full", "limited", "both"):
        if word and full_word.startswith(word):
            return full_word
    raise PartitionsError(line, f"expected full, limited or both, not {word!r}")


@dataclass(slots=True)
class _Flags:
    ipoib: bool = False
    mtu: int = DEFAULT_MTU
    rate: int = DEFAULT_RATE
    sl: int = 0
    scopes: list[int] = field(default_factory=list)
    qkey: int = IPOIB_QKEY
    tclass: int = 0
    flow_label: int = 0
    defmember: str = "limited"


_RATES = frozenset(r.value for r in Rate)

_RANGES: dict[str, tuple[int, int, str]] = {
    "mtu": (1, 5, "an MTU code 1..5 (4 = 2048)"),
    "rate": (2, max(Rate), "a rate code such as 3 (10 Gb/s)"),
    "sl": (0, 15, "an SL 0..15"),
    "scope": (1, 15, "a scope 1..15 (2 = link-local)"),
    "Q_Key": (1, 0xFFFFFFFF, "a non-zero 32-bit Q_Key"),
    "TClass": (0, 255, "a traffic class 0..255"),
    "FlowLabel": (0, 0xFFFFF, "a 20-bit flow label"),
}


def _flags(statement: Statement) -> _Flags:
    out = _Flags()
    for flag, value, line in statement.flags:
        if flag == "ipoib":
            out.ipoib = True
        elif flag == "defmember":
            out.defmember = _membership(value or "", line)
        elif flag in _RANGES:
            lo, hi, what = _RANGES[flag]
            number = _int(value or "")
            if number is None or not lo <= number <= hi or (flag == "rate" and number
                                                            not in _RATES):
                raise PartitionsError(line, f"{flag} expects {what}, not {value!r}")
            if flag == "scope":
                out.scopes.append(number)
            else:
                setattr(out, {"Q_Key": "qkey", "TClass": "tclass",
                              "FlowLabel": "flow_label"}.get(flag, flag), number)
        else:
            raise PartitionsError(
                line, f"unknown flag {flag!r}: expected ipoib, mtu, rate, sl, scope, Q_Key, "
                "TClass, FlowLabel or defmember"
            )
    return out


def plan_partitions(
    text: str | None, graph: SubnetGraph, sm_port_guid: int, *, qos: bool = False
) -> PartitionPlan:
    """Resolve a partitions file (None: no file) against the subnet's endports."""
    endports = [(node.kind, port.guid) for node, port in graph.endports]
    default = Partition("Default", DEFAULT_PKEY)
    for _kind, guid in endports:
        default.add(guid, full=text is None)
    default.add(sm_port_guid, full=True)
    table: dict[int, Partition] = {DEFAULT_PKEY: default}
    counter = 0
    for st in parse_partitions(text or ""):
        flags = _flags(st)
        prtn = table.get(st.pkey) if st.pkey is not None else None
        if prtn is None and st.pkey is None and st.name:
            prtn = next((p for p in table.values() if p.name == st.name), None)
        if prtn is None:
            pkey = st.pkey
            while pkey is None:
                counter += 1
                if counter >= DEFAULT_PKEY:
                    raise PartitionsError(st.line, "no P_Key left to give this partition")
                pkey = None if counter in table else counter
            prtn = table[pkey] = Partition(st.name or f"{pkey:04x}", pkey)
        sl = flags.sl if qos else 0
        prtn.sl = sl
        if flags.ipoib and not prtn.ipoib:
            prtn.ipoib = True
            prtn.groups = _groups(prtn.pkey, flags, sl)
        for member, how, line in st.members:
            _add_member(prtn, member, how, line, flags.defmember, endports, sm_port_guid)
    if not default.ipoib:
        default.ipoib = True
        default.groups = _groups(DEFAULT_PKEY, _Flags(), 0)
    kept = [p for p in table.values() if p.full or p.limited]
    kept.sort(key=lambda p: (p.pkey != DEFAULT_PKEY, p.pkey))
    pkeys: dict[int, list[int]] = {}
    for prtn in kept:
        for guid in sorted(prtn.full):
            pkeys.setdefault(guid, []).append(prtn.pkey | FULL_MEMBER)
        for guid in sorted(prtn.limited):
            pkeys.setdefault(guid, []).append(prtn.pkey)
    for entries in pkeys.values():
        entries.sort(key=lambda e: (e & 0x7FFF != DEFAULT_PKEY, e & 0x7FFF))
    groups = [g for p in kept if p.ipoib for g in p.groups]
    return PartitionPlan(kept, pkeys, groups)


def _groups(pkey: int, flags: _Flags, sl: int) -> tuple[IpoibGroup, ...]:
    return tuple(
        IpoibGroup(
            pkey=pkey | FULL_MEMBER, scope=scope, qkey=flags.qkey, mtu=flags.mtu,
            rate=flags.rate, sl=sl, tclass=flags.tclass, flow_label=flags.flow_label,
        )
        for scope in (flags.scopes or [DEFAULT_SCOPE])
    )


def _add_member(
    prtn: Partition,
    member: str,
    how: str | None,
    line: int,
    default: str,
    endports: list[tuple[NodeType, int]],
    sm_port_guid: int,
) -> None:
    if not member:
        raise PartitionsError(line, "expected a port GUID or keyword before '='")
    full = (default if how is None else _membership(how, line)) != "limited"
    if member == "NONE":
        return
    if member in _KEYWORDS:
        kind = _KEYWORDS[member]
        for node_kind, guid in endports:
            if kind is None or node_kind == kind:
                prtn.add(guid, full)
        return
    if member == "SELF":
        prtn.add(sm_port_guid, full)
        return
    guid = _int(member) or 0
    if not 0 < guid < 1 << 64:
        raise PartitionsError(
            line, f"expected a port GUID (0x...) or ALL, ALL_CAS, ALL_SWITCHES, ALL_ROUTERS, "
            f"SELF, NONE, not {member!r}"
        )
    if any(g == guid for _kind, g in endports):
        prtn.add(guid, full)


def place_pkeys(
    wanted: Sequence[int], current: Sequence[int] = (), size: int | None = None
) -> tuple[list[int], list[int]]:
    """A port's new P_KeyTable (IBA 14.2.5.7) and the wanted entries that did not fit.

    Entries already in ``current`` keep their index (with the membership bit updated), as
    OpenSM keeps them, so a host's P_Key index stays valid; unwanted ones are cleared to 0;
    new ones take the free slots in order. ``size`` is the table capacity (PartitionCap).
    """
    width = size if size is not None else max(len(current), len(wanted))
    table = [0] * width
    where = {e & 0x7FFF: i for i, e in enumerate(current[:width]) if e & 0x7FFF}
    left: list[int] = []
    for entry in wanted:
        i = where.get(entry & 0x7FFF)
        if i is not None:
            table[i] = entry
        else:
            left.append(entry)
    spill: list[int] = []
    free = (i for i, e in enumerate(table) if not e)
    for entry in left:
        i = next(free, None)
        if i is None:
            spill.append(entry)
        else:
            table[i] = entry
    return table, spill
