"""PathRecord (IBA 15.2.5.16): paths read off the routes the LFTs actually hold.

The answer for a (source, destination) pair is what OpenSM's ``osm_sa_path_record.c`` gives:

- endpoints from SGID/DGID (by port GUID) or SLID/DLID; one fixed end iterates the other over
  every endport, none iterates all pairs (in OpenSM's GUID table order); SubnAdmGet stops at
  the first path; NumbPath caps a GetTable (0 asks for nothing);
- the route is walked switch by switch through the SM's LFTs: MTU is the smallest MTUCap and
  rate the slowest active link on the way, source and destination ports included;
- MTU, rate and PacketLifeTime selectors filter or adjust (``<`` picks the next lower value),
  P_Key must be shared by both ends (else the first common one is used), SL comes from the
  request or the partition, PacketLifeTime is the subnet timeout (0 to itself);
- Reversible is set when the way back works too; a request that asks for a reversible path
  gets none when it does not;
- a multicast DGID answers from the group (MLID, its MTU, rate, P_Key, SL, TClass, HopLimit).

Statuses: an invalid rate or MTU code under its selector is ERR_REQ_INVALID; unknown
endpoints give no records (SubnAdmGet then answers ERR_NO_RECORDS, GetTable an empty table).
"""

from __future__ import annotations

from collections.abc import Iterator

from ...wire.enums import NodeType
from ...wire.gid import make_gid
from ...wire.mad import Method
from ...wire.sa import PathRecord, SaStatus
from ..graph import opensm_order
from .view import (
    SaSource,
    common_pkey,
    mtu_valid,
    partition_sl,
    port_rate,
    rate_gbps,
    rate_valid,
    share_this_pkey,
)

CM = {name: PathRecord.component_mask(name) for name in (
    "dgid", "sgid", "dlid", "slid", "raw_traffic", "hop_limit", "tclass", "reversible",
    "numb_path", "pkey", "sl", "mtu_selector", "mtu", "rate_selector", "rate",
    "packet_life_time_selector", "packet_life_time", "flow_label")}

MAX_HOPS = 64
MAX_RECORDS = 16384
"""A GetTable stops collecting here (what one RMPP transfer can carry)."""

SELECT_EXACTLY = 2
End = tuple[int, int]
"""An endport: (node GUID, port number)."""


def _route_port(src: SaSource, guid: int, dlid: int) -> int | None:
    lft = src.lfts.get(guid)
    if lft is None or dlid >= len(lft):
        return None
    port = lft[dlid]
    node = src.subnet.graph.nodes[guid] if src.subnet else None
    if node is None or port > node.nports:
        return None
    return port


def walk(src: SaSource, a: End, b: End, dlid: int) -> tuple[int, int, int] | None:
    """(MTU, rate, switch hops) from endport ``a`` to endport ``b`` addressed as ``dlid``."""
    sub = src.subnet
    if sub is None:
        return None
    nodes = sub.graph.nodes
    p: End = a
    first = nodes[a[0]].ports[a[1]]
    mtu, rate = first.mtu_cap, port_rate(first)
    if nodes[a[0]].kind == NodeType.SWITCH:
        out = _route_port(src, a[0], dlid)
        if out is None:
            return None
        p = (a[0], out)
    dest: End = b
    if nodes[b[0]].kind == NodeType.SWITCH:
        out = _route_port(src, b[0], dlid)
        if out is None:
            return None
        dest = (b[0], out)

    def narrow(where: End) -> None:
        nonlocal mtu, rate
        port = nodes[where[0]].ports.get(where[1])
        if port is None:
            return
        mtu = min(mtu, port.mtu_cap)
        r = port_rate(port)
        if rate_gbps(r) < rate_gbps(rate):
            rate = r

    hops = 0
    while p != dest:
        port = nodes[p[0]].ports.get(p[1])
        remote = port.neighbour if port is not None else None
        if remote is None or remote[0] not in nodes:
            return None
        p = remote
        if p == dest:
            break
        if nodes[p[0]].kind != NodeType.SWITCH:
            return None
        narrow(p)
        out = _route_port(src, p[0], dlid)
        if out is None:
            return None
        p = (p[0], out)
        narrow(p)
        hops += 1
        if hops > MAX_HOPS:
            return None
    narrow(p)
    return mtu, rate, hops


def _adjust(selector: int, wanted: int, have: int) -> int | None:
    """MTU / lifetime selectors on ordered codes: the value to use, or None."""
    if selector == 0:
        return have if have > wanted else None
    if selector == 1:
        if have < wanted:
            return have
        return wanted - 1 if wanted > 1 else None
    if selector == 2:
        return wanted if have >= wanted else None
    return have


def _rate_below(code: int) -> int:
    slower = [c for c in range(2, 23) if 0 < rate_gbps(c) < rate_gbps(code)]
    return max(slower, key=rate_gbps, default=0)


def _adjust_rate(selector: int, wanted: int, have: int) -> int | None:
    w, h = rate_gbps(wanted), rate_gbps(have)
    if selector == 0:
        return have if h > w else None
    if selector == 1:
        if h < w:
            return have
        return _rate_below(wanted) or None
    if selector == 2:
        return wanted if h == w else None
    return have


def _params(src: SaSource, req: PathRecord, mask: int, a: End, b: End, dlid: int
            ) -> tuple[int, int, int, int, int] | None:
    """(mtu, rate, lifetime, pkey, sl) for one direction, or None (no path)."""
    sub = src.subnet
    assert sub is not None
    found = walk(src, a, b, dlid)
    if found is None:
        return None
    mtu, rate, _hops = found
    life = 0 if a == b else src.config.subnet_timeout
    if mask & CM["mtu_selector"] and mask & CM["mtu"]:
        got = _adjust(req.mtu_selector, req.mtu, mtu)
        if got is None:
            return None
        mtu = got
    if mask & CM["rate_selector"] and mask & CM["rate"]:
        got = _adjust_rate(req.rate_selector, req.rate, rate)
        if got is None:
            return None
        rate = got
    if mask & CM["packet_life_time_selector"] and mask & CM["packet_life_time"]:
        got = _adjust(req.packet_life_time_selector, req.packet_life_time, life)
        if got is None:
            return None
        life = got
    if mask & CM["raw_traffic"] and req.raw_traffic:
        pkey = common_pkey(sub, a, b)
    elif mask & CM["pkey"]:
        pkey = req.pkey
        if not share_this_pkey(sub, a, b, pkey):
            return None
    else:
        pkey = common_pkey(sub, a, b)
        if not pkey:
            return None
    sl = req.sl if mask & CM["sl"] else partition_sl(src.partition_plan, pkey)
    if mask & CM["raw_traffic"] and req.raw_traffic:
        pkey = 0
    return mtu, rate, life, pkey, sl


def _endports(src: SaSource) -> list[tuple[int, End]]:
    """(LID, endport) for every endport with a LID, in OpenSM's port table order."""
    sub = src.subnet
    assert sub is not None
    out = []
    for node, port in sub.graph.endports:
        lid = src.lids.get(port.guid, 0)
        if lid:
            out.append((port.guid, lid, (node.guid, port.num)))
    out.sort(key=lambda t: opensm_order(t[0]))
    return [(lid, end) for _g, lid, end in out]


def _pair(src: SaSource, req: PathRecord, mask: int, method: int, requester: End,
          a: End, b: End) -> PathRecord | None:
    sub = src.subnet
    assert sub is not None
    if not (common_pkey(sub, requester, a) and common_pkey(sub, requester, b)
            and common_pkey(sub, a, b)):
        return None
    a_port = sub.graph.nodes[a[0]].ports[a[1]]
    b_port = sub.graph.nodes[b[0]].ports[b[1]]
    dlid = req.dlid if mask & CM["dlid"] else src.lids.get(b_port.guid, 0)
    slid = req.slid if mask & CM["slid"] else src.lids.get(a_port.guid, 0)
    if not slid or not dlid:
        return None
    if method != Method.GET and mask & CM["numb_path"] and req.numb_path == 0:
        return None
    there = _params(src, req, mask, a, b, dlid)
    if there is None:
        return None
    reversible = _params(src, req, mask, b, a, slid) is not None
    if mask & CM["reversible"] and req.reversible and not reversible:
        return None
    mtu, rate, life, pkey, sl = there
    prefix = src.config.subnet_prefix
    return PathRecord(
        dgid=make_gid(prefix, b_port.guid), sgid=make_gid(prefix, a_port.guid), dlid=dlid,
        slid=slid, reversible=int(reversible), pkey=pkey, sl=sl,
        mtu_selector=SELECT_EXACTLY, mtu=mtu, rate_selector=SELECT_EXACTLY, rate=rate,
        packet_life_time_selector=SELECT_EXACTLY, packet_life_time=life,
    )


def _endpoint(src: SaSource, req: PathRecord, mask: int, gid_bit: str, lid_bit: str
              ) -> tuple[bool, End | None]:
    """(ok, endport) from a GID or LID component; ok False means "no records"."""
    sub = src.subnet
    assert sub is not None
    gid = req.sgid if gid_bit == "sgid" else req.dgid
    lid = req.slid if lid_bit == "slid" else req.dlid
    if mask & CM[gid_bit]:
        prefix = int.from_bytes(gid[:8], "big")
        link_local = prefix >> 54 == 0xFE80 >> 6
        if not link_local and prefix != src.config.subnet_prefix:
            return False, None  # ERR_REQ_INVALID_GID in OpenSM's log; no records
        where = sub.endport(int.from_bytes(gid[8:], "big"))
        return where is not None, where
    if mask & CM[lid_bit]:
        where = src.by_lid.get(lid)
        return (where is not None), where
    return True, None


def _multicast(src: SaSource, req: PathRecord, mask: int, method: int) -> list[PathRecord]:
    group = src.groups.get(req.dgid)
    sub = src.subnet
    if group is None or sub is None:
        return []
    if mask & CM["dlid"] and group.mlid != req.dlid:
        return []
    senders = []
    if mask & CM["sgid"]:
        senders.append(sub.endport(int.from_bytes(req.sgid[8:], "big")))
    if mask & CM["slid"]:
        senders.append(src.by_lid.get(req.slid))
    for where in senders:
        port = sub.graph.nodes[where[0]].ports.get(where[1]) if where else None
        if port is None or port.guid not in group.members:
            return []
    if mask & CM["pkey"] and req.pkey != group.pkey:
        return []
    if mask & CM["sl"] and req.sl != group.sl:
        return []
    if mask & CM["numb_path"] and method != Method.GET and req.numb_path == 0:
        return []
    if mask & CM["flow_label"] and req.flow_label != group.flow_label:
        return []
    if mask & CM["hop_limit"] and req.hop_limit != group.hop_limit:
        return []
    if mask & CM["tclass"] and req.tclass != group.tclass:
        return []
    hop = group.hop_limit if group.scope == 2 else 0xFF
    return [req.replace(
        dgid=group.mgid, dlid=group.mlid, tclass=group.tclass, reversible=0, numb_path=1,
        pkey=group.pkey, qos_class=0, sl=group.sl, raw_traffic=0, reserved_44=0,
        flow_label=group.flow_label, hop_limit=hop, mtu_selector=SELECT_EXACTLY,
        mtu=group.mtu, rate_selector=SELECT_EXACTLY, rate=group.rate,
        packet_life_time_selector=SELECT_EXACTLY, packet_life_time=group.pkt_life,
    )]


def path_records(src: SaSource, req: PathRecord, mask: int, method: int, requester: End
                 ) -> list[PathRecord] | int:
    """The PathRecords answering ``req`` under ``mask``, or an SA status."""
    if method not in (Method.GET, Method.GET_TABLE):
        return 0x000C
    if mask & CM["rate_selector"] and mask & CM["rate"] and not rate_valid(req.rate):
        return SaStatus.ERR_REQ_INVALID
    if mask & CM["mtu_selector"] and mask & CM["mtu"] and not mtu_valid(req.mtu):
        return SaStatus.ERR_REQ_INVALID
    if src.subnet is None:
        return []
    if mask & CM["dgid"] and req.dgid[0] == 0xFF:
        return _multicast(src, req, mask, method)
    ok_s, a = _endpoint(src, req, mask, "sgid", "slid")
    ok_d, b = _endpoint(src, req, mask, "dgid", "dlid")
    if not ok_s or not ok_d:
        return []
    out: list[PathRecord] = []
    for x, y in _pairs(src, a, b):
        rec = _pair(src, req, mask, method, requester, x, y)
        if rec is None:
            continue
        out.append(rec)
        if method == Method.GET or len(out) >= MAX_RECORDS:
            break
    return out


def _pairs(src: SaSource, a: End | None, b: End | None) -> Iterator[tuple[End, End]]:
    if a is not None and b is not None:
        yield a, b
        return
    ends = [end for _lid, end in _endports(src)]
    if a is not None:
        for y in ends:
            yield a, y
    elif b is not None:
        for x in ends:
            yield x, b
    else:
        for y in ends:
            for x in ends:
                yield x, y
