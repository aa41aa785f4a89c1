"""MCMemberRecord (IBA 15.2.5.17): multicast groups, joins, leaves and queries.

Rules follow OpenSM's ``osm_sa_mcmember_record.c`` and ``osm_multicast.c``:

- **Set (join)** needs MGID, PortGID and JoinState in the mask (else
  ERR_REQ_INSUFFICIENT_COMPONENTS). The port must be known and share a P_Key with the
  requester when joining for another port (proxy). Joining an existing group needs only that
  mask, which is the IPoIB broadcast join; MTU and rate selectors given must match the group,
  and the port must be able to carry the group's MTU and rate. Join states OR together.
- **Creating** a group (unknown MGID) needs a FullMember or SendOnlyFullMember join (the
  latter is what ClassPortInfo CapabilityMask2 bit 12 advertises) and Q_Key, TClass, P_Key,
  FlowLabel and SL in the mask; a zero MGID gets one made up (ff1S:a01b:prefix:n). MTU and
  rate default to the port's, or follow the selectors. The MLID is the requested one if free,
  else the lowest free from 0xC000 (ERR_NO_RESOURCES when none is left).
- **Delete (leave)** clears the given JoinState bits, which must all be set; the member goes
  when none is left, and the group when its last full member goes, unless the SM pre-created
  it (the IPoIB broadcast groups).
- **Get/GetTable** match groups on the masked fields; the requester must be in the group's
  partition. A trusted request (the SM_Key) without PortGID lists every member; otherwise one
  record per group, and an untrusted requester sees PortGID, JoinState and ProxyJoin as 0.

Statuses otherwise are ERR_REQ_INVALID, as OpenSM gives them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ...wire.gid import make_gid
from ...wire.mad import Method
from ...wire.sa import JoinState, MCMemberRecord, SaStatus
from ..partitions import IpoibGroup
from .view import (
    SaSource,
    common_pkey,
    has_pkey,
    mtu_valid,
    port_rate,
    rate_gbps,
    rate_valid,
)

CM = {name: MCMemberRecord.component_mask(name) for name in (
    "mgid", "port_gid", "qkey", "mlid", "mtu_selector", "mtu", "tclass", "pkey",
    "rate_selector", "rate", "packet_life_time_selector", "packet_life_time", "sl",
    "flow_label", "hop_limit", "scope", "join_state", "proxy_join")}

JOIN_MASK = CM["mgid"] | CM["port_gid"] | CM["join_state"]
CREATE_MASK = JOIN_MASK | CM["qkey"] | CM["tclass"] | CM["pkey"] | CM["flow_label"] | CM["sl"]
FULL_STATES = JoinState.FULL | JoinState.SENDONLY_FULL
MLID_BASE = 0xC000
MLID_COUNT = 1024
"""MLIDs handed out: 0xC000 .. 0xC3FF, what an ibsim switch's MFT holds."""
SELECT_EXACTLY = 2
MGID_SA_SIGNATURE = 0xA01B
IPOIB_SIGNATURES = (0x401B, 0x601B)
LINK_LOCAL = 2

End = tuple[int, int]


@dataclass(slots=True)
class Member:
    """One port's membership: its JoinState bits, the PortGID it joined with, proxy flag."""

    join_state: int
    port_gid: bytes
    proxy: bool = False


@dataclass(slots=True)
class Group:
    """A multicast group and its members (keyed by port GUID)."""

    mgid: bytes
    mlid: int
    qkey: int
    mtu: int
    rate: int
    pkt_life: int
    pkey: int
    sl: int = 0
    tclass: int = 0
    flow_label: int = 0
    hop_limit: int = 0
    well_known: bool = False
    members: dict[int, Member] = field(default_factory=dict)

    @property
    def scope(self) -> int:
        """The MGID's scope nibble."""
        return self.mgid[1] & 0xF

    @property
    def full_members(self) -> int:
        """Members that keep the group alive (FullMember or SendOnlyFullMember)."""
        return sum(1 for m in self.members.values() if m.join_state & FULL_STATES)

    def record(self, *, port_gid: bytes = bytes(16), join_state: int = 0,
               proxy: int = 0) -> MCMemberRecord:
        """The group as an MCMemberRecord (selectors "exactly", as OpenSM stores them)."""
        return MCMemberRecord(
            mgid=self.mgid, port_gid=port_gid, qkey=self.qkey, mlid=self.mlid,
            mtu_selector=SELECT_EXACTLY, mtu=self.mtu, tclass=self.tclass, pkey=self.pkey,
            rate_selector=SELECT_EXACTLY, rate=self.rate,
            packet_life_time_selector=SELECT_EXACTLY, packet_life_time=self.pkt_life,
            sl=self.sl, flow_label=self.flow_label, hop_limit=self.hop_limit,
            scope=self.scope, join_state=join_state, proxy_join=proxy,
        )


class McastGroups:
    """Every multicast group the SA knows, by MGID; ``dirty`` when MFTs need reprogramming."""

    def __init__(self) -> None:
        self._by_mgid: dict[bytes, Group] = {}
        self.dirty = False
        self._mgid_counter = 0

    def __len__(self) -> int:
        return len(self._by_mgid)

    def get(self, mgid: bytes) -> Group | None:
        """The group with ``mgid``."""
        return self._by_mgid.get(bytes(mgid))

    def groups(self) -> list[Group]:
        """All groups in MGID order (OpenSM's table order)."""
        return [self._by_mgid[k] for k in sorted(self._by_mgid)]

    def by_mlid(self, mlid: int) -> Group | None:
        """The group using ``mlid``."""
        return next((g for g in self._by_mgid.values() if g.mlid == mlid), None)

    def new_mlid(self, requested: int = 0) -> int:
        """The requested MLID if free and in range, else the lowest free one (0: none)."""
        used = {g.mlid for g in self._by_mgid.values()}
        if MLID_BASE <= requested < MLID_BASE + MLID_COUNT and requested not in used:
            return requested
        for mlid in range(MLID_BASE, MLID_BASE + MLID_COUNT):
            if mlid not in used:
                return mlid
        return 0

    def add(self, group: Group) -> Group:
        """Register a new group."""
        self._by_mgid[bytes(group.mgid)] = group
        self.dirty = True
        return group

    def remove(self, group: Group) -> None:
        """Delete a group (its MLID becomes free)."""
        self._by_mgid.pop(bytes(group.mgid), None)
        self.dirty = True

    def sync(self, wanted: Iterable[IpoibGroup], present: set[int], pkt_life: int) -> None:
        """After a sweep: pre-create the partitions' IPoIB groups, drop vanished members."""
        for spec in wanted:
            if self.get(spec.mgid) is None:
                self.add(Group(
                    mgid=spec.mgid, mlid=self.new_mlid(), qkey=spec.qkey, mtu=spec.mtu,
                    rate=spec.rate, pkt_life=pkt_life, pkey=spec.pkey, sl=spec.sl,
                    tclass=spec.tclass, flow_label=spec.flow_label, hop_limit=spec.hop_limit,
                    well_known=True,
                ))
        for group in self.groups():
            gone = [g for g in group.members if g not in present]
            for guid in gone:
                del group.members[guid]
                self.dirty = True
            if gone and not group.full_members and not group.well_known:
                self.remove(group)

    def next_sa_mgid(self, scope: int, prefix: int) -> bytes:
        """A fresh SA-assigned MGID ff1S:a01b:<prefix>:<n> (OpenSM ``build_new_mgid``)."""
        while True:
            n = self._mgid_counter
            self._mgid_counter = (n + 1) & 0xFFFFFFFF
            mgid = (bytes((0xFF, 0x10 | scope)) + MGID_SA_SIGNATURE.to_bytes(2, "big")
                    + prefix.to_bytes(8, "big")[:6] + n.to_bytes(4, "little") + bytes(2))
            if self.get(mgid) is None:
                return mgid


def valid_requested_mgid(mgid: bytes) -> bool:
    """OpenSM's ``validate_requested_mgid`` (o15-0.1.5)."""
    if mgid[0] != 0xFF:
        return False
    signature = int.from_bytes(mgid[2:4], "big")
    if signature in IPOIB_SIGNATURES:
        return True
    if mgid[1] & 0xE0:
        return False
    return not (signature == MGID_SA_SIGNATURE and mgid[1] & 0x0F == LINK_LOCAL)


def _selectors_match(group: Group, rec: MCMemberRecord, mask: int) -> bool:
    """MTU and rate selectors of a join or query against the group."""
    if mask & CM["mtu_selector"]:
        sel, want, have = rec.mtu_selector, rec.mtu, group.mtu
        if (sel == 0 and have <= want) or (sel == 1 and have >= want) or (
                sel == 2 and have != want):
            return False
    if mask & CM["rate_selector"]:
        sel, w, h = rec.rate_selector, rate_gbps(rec.rate), rate_gbps(group.rate)
        if (sel == 0 and h <= w) or (sel == 1 and h >= w) or (sel == 2 and h != w):
            return False
    return True


class McastService:
    """The MCMemberRecord methods over a :class:`McastGroups` and the SM's view."""

    def __init__(self, src: SaSource) -> None:
        self.src = src

    @property
    def groups(self) -> McastGroups:
        """The SM's group table."""
        return self.src.groups

    def handle(self, method: int, rec: MCMemberRecord, mask: int, requester: End,
               trusted: bool) -> tuple[int, list[MCMemberRecord]]:
        """(status, records) for one request; status 0 means answer with the records."""
        rate_ok = not (mask & CM["rate_selector"] and mask & CM["rate"]) or rate_valid(rec.rate)
        mtu_ok = not (mask & CM["mtu_selector"] and mask & CM["mtu"]) or mtu_valid(rec.mtu)
        if method in (Method.SET, Method.DELETE):
            if mask & JOIN_MASK != JOIN_MASK:
                return SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS, []
            if not (rate_ok and mtu_ok):
                return SaStatus.ERR_REQ_INVALID, []
            if method == Method.SET:
                return self._join(rec, mask, requester)
            return self._leave(rec, requester)
        if method in (Method.GET, Method.GET_TABLE):
            if not (rate_ok and mtu_ok):
                return SaStatus.ERR_REQ_INVALID, []
            return 0, self._query(rec, mask, requester, trusted)
        return 0x000C, []

    # -- join ---------------------------------------------------------------------------

    def _port(self, port_gid: bytes) -> tuple[End, int] | None:
        sub = self.src.subnet
        if sub is None:
            return None
        guid = int.from_bytes(port_gid[8:], "big")
        where = sub.endport(guid)
        return (where, guid) if where is not None else None

    def _join(self, rec: MCMemberRecord, mask: int, requester: End
              ) -> tuple[int, list[MCMemberRecord]]:
        sub = self.src.subnet
        found = self._port(rec.port_gid)
        if sub is None or found is None:
            return SaStatus.ERR_REQ_INVALID, []
        where, guid = found
        proxy = where != requester
        if proxy and not common_pkey(sub, where, requester):
            return SaStatus.ERR_REQ_INVALID, []
        if mask & CM["pkey"] and not rec.pkey & 0x7FFF:
            return SaStatus.ERR_REQ_INVALID, []
        join = rec.join_state
        groups = self.groups
        group = groups.get(rec.mgid)
        created = False
        if group is None:
            if not join & FULL_STATES:
                return SaStatus.ERR_REQ_INVALID, []
            if mask & CREATE_MASK != CREATE_MASK:
                return SaStatus.ERR_REQ_INSUFFICIENT_COMPONENTS, []
            made = self._create(rec, mask, where)
            if isinstance(made, int):
                return made, []
            group = made
            created = True
        port = sub.graph.nodes[where[0]].ports[where[1]]
        ok = (_selectors_match(group, rec, mask) and port.mtu_cap >= group.mtu
              and rate_gbps(port_rate(port)) >= rate_gbps(group.rate) and join != 0)
        if not ok:
            return SaStatus.ERR_REQ_INVALID, []
        member = group.members.get(guid)
        if member is not None and not self._may_modify(group, member, requester):
            return SaStatus.ERR_REQ_INVALID, []
        if created:
            groups.add(group)
        if member is None:
            member = group.members[guid] = Member(0, bytes(rec.port_gid), proxy)
        member.join_state |= join
        groups.dirty = True
        out = group.record(port_gid=rec.port_gid, join_state=member.join_state,
                           proxy=rec.proxy_join)
        return 0, [out]

    def _create(self, rec: MCMemberRecord, mask: int, where: End) -> Group | int:
        src = self.src
        sub = src.subnet
        assert sub is not None
        groups = self.groups
        mgid = bytes(rec.mgid)
        if not any(mgid):
            scope = rec.scope if mask & CM["scope"] else LINK_LOCAL
            mgid = groups.next_sa_mgid(scope, src.config.subnet_prefix)
        elif not valid_requested_mgid(mgid):
            return SaStatus.ERR_REQ_INVALID
        port = sub.graph.nodes[where[0]].ports[where[1]]
        mtu = _realize(rec.mtu_selector, rec.mtu, port.mtu_cap, mask & CM["mtu"]
                       and mask & CM["mtu_selector"], 1, 5)
        rate = _realize_rate(rec.rate_selector, rec.rate, port_rate(port),
                             mask & CM["rate"] and mask & CM["rate_selector"])
        if mtu is None or rate is None:
            return SaStatus.ERR_REQ_INVALID
        mlid = groups.new_mlid(rec.mlid)
        if not mlid:
            return SaStatus.ERR_NO_RESOURCES
        life = (rec.packet_life_time if mask & CM["packet_life_time"]
                else src.config.packet_life_time)
        return Group(
            mgid=mgid, mlid=mlid, qkey=rec.qkey, mtu=mtu, rate=rate, pkt_life=life,
            pkey=rec.pkey, sl=rec.sl, tclass=rec.tclass, flow_label=rec.flow_label,
            hop_limit=rec.hop_limit,
        )

    def _may_modify(self, group: Group, member: Member, requester: End) -> bool:
        """o15-0.2.1: only the port itself, or (proxy joins) a port of the partition."""
        sub = self.src.subnet
        assert sub is not None
        if not member.proxy:
            port = sub.graph.nodes[requester[0]].ports[requester[1]]
            return make_gid(self.src.config.subnet_prefix, port.guid)[8:] == member.port_gid[8:]
        return has_pkey(sub, requester, group.pkey)

    # -- leave --------------------------------------------------------------------------

    def _leave(self, rec: MCMemberRecord, requester: End) -> tuple[int, list[MCMemberRecord]]:
        groups = self.groups
        group = groups.get(rec.mgid)
        if group is None:
            return SaStatus.ERR_REQ_INVALID, []
        guid = int.from_bytes(rec.port_gid[8:], "big")
        member = group.members.get(guid)
        leave = rec.join_state
        if (member is None or not leave & member.join_state
                or leave | member.join_state != member.join_state
                or not self._may_modify(group, member, requester)):
            return SaStatus.ERR_REQ_INVALID, []
        was_full = bool(member.join_state & FULL_STATES)
        left = member.join_state & ~leave
        state_out = left if left else member.join_state
        if left:
            member.join_state = left
        else:
            del group.members[guid]
        groups.dirty = True
        if was_full and not left & FULL_STATES and not group.full_members and \
                not group.well_known:
            groups.remove(group)
        out = rec.replace(mtu_selector=SELECT_EXACTLY, rate_selector=SELECT_EXACTLY,
                          packet_life_time_selector=SELECT_EXACTLY, scope=group.scope,
                          join_state=state_out)
        return 0, [out]

    # -- queries ------------------------------------------------------------------------

    def _query(self, rec: MCMemberRecord, mask: int, requester: End, trusted: bool
               ) -> list[MCMemberRecord]:
        sub = self.src.subnet
        out: list[MCMemberRecord] = []
        if sub is None:
            return out
        state_mask = (0xF0 if mask & CM["scope"] else 0) | (0x0F if mask & CM["join_state"]
                                                            else 0)
        want_state = (rec.scope << 4 | rec.join_state) & state_mask
        for group in self.groups.groups():
            if mask & CM["mgid"] and bytes(rec.mgid) != group.mgid:
                continue
            if mask & CM["mlid"] and rec.mlid != group.mlid:
                continue
            if not has_pkey(sub, requester, group.pkey):
                continue
            if any(mask & CM[name] and getattr(rec, name) != value for name, value in (
                    ("qkey", group.qkey), ("pkey", group.pkey), ("tclass", group.tclass),
                    ("sl", group.sl), ("flow_label", group.flow_label),
                    ("hop_limit", group.hop_limit), ("proxy_join", 0))):
                continue
            if not _selectors_match(group, rec, mask):
                continue
            if mask & CM["port_gid"]:
                member = group.members.get(int.from_bytes(rec.port_gid[8:], "big"))
                if member is None:
                    continue
                state = group.scope << 4 | member.join_state
                if state & state_mask == want_state:
                    out.append(group.record(port_gid=member.port_gid,
                                            join_state=member.join_state,
                                            proxy=int(member.proxy)))
            elif trusted:
                for m in group.members.values():
                    if (group.scope << 4 | m.join_state) & state_mask == want_state:
                        out.append(group.record(port_gid=m.port_gid, join_state=m.join_state,
                                                proxy=int(m.proxy)))
            elif (group.scope << 4) & state_mask == want_state:
                out.append(group.record())
        if not trusted:
            out = [r.replace(port_gid=bytes(16), join_state=0, proxy_join=0) for r in out]
        return out


def _realize(sel: int, want: int, port_cap: int, given: int, lo: int, hi: int) -> int | None:
    """OpenSM's MTU choice for a new group (``mgrp_request_is_realizable``)."""
    if not given or sel == 3:
        return port_cap
    value = want
    if sel == 0:
        if port_cap and want >= port_cap:
            return None
        value = port_cap
    elif sel == 1:
        value = port_cap if port_cap and want > port_cap else want - 1
    return value if lo <= value <= hi else None


def _realize_rate(sel: int, want: int, port: int, given: int) -> int | None:
    """The same for the rate, compared by speed."""
    if not given or sel == 3:
        return port
    if sel == 0:
        return port if rate_gbps(want) < rate_gbps(port) else None
    if sel == 1:
        if rate_gbps(want) > rate_gbps(port):
            return port
        slower = [c for c in range(2, 23) if 0 < rate_gbps(c) < rate_gbps(want)]
        return max(slower, key=rate_gbps) if slower else None
    return want if rate_valid(want) else None
