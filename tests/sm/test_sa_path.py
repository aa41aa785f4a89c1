"""PathRecord queries over QP1: answers follow the programmed routes and OpenSM's statuses."""

from __future__ import annotations

import pytest

from ipoib.fabric import netfile, topogen
from ipoib.fabric.fabric import Fabric
from ipoib.sm.agent import SmBinding
from ipoib.sm.verify import trace
from ipoib.wire.gid import make_gid
from ipoib.wire.mad import Method, SaMad
from ipoib.wire.sa import (
    IPOIB_PATH_REC_MASK,
    PathRecord,
    SaAttr,
    SaStatus,
    unpack_records,
)

from .bringup import (
    NET_EXAMPLES,
    SaClient,
    bring_up,
    fabric_lids,
    packet_arrives,
    rmpp_table,
    route_report,
    ud,
)

PREFIX = 0xFE80_0000_0000_0000
M = {n: PathRecord.component_mask(n) for n in (
    "dgid", "sgid", "dlid", "slid", "numb_path", "pkey", "mtu_selector", "mtu",
    "rate_selector", "rate", "reversible", "sl", "packet_life_time_selector",
    "packet_life_time")}


@pytest.fixture(scope="module")
def tree() -> tuple[Fabric, SmBinding]:
    return bring_up(topogen.fat_tree(72))


def _port_gid(fabric: Fabric, name: str) -> bytes:
    return make_gid(PREFIX, fabric.node(name).ports[1].guid)


def _query(client: SaClient, sm_lid: int, rec: PathRecord, mask: int,
           method: int = Method.GET) -> SaMad:
    (rx,) = client.request(sm_lid, method, SaAttr.PATH_RECORD, rec.encode(), mask=mask)
    return SaMad.decode(rx.mad)


def test_ipoib_query_gives_the_route_a_packet_takes(tree: tuple[Fabric, SmBinding]) -> None:
    fabric, binding = tree
    sm = binding.sm
    names = [n.name for n in fabric.cas]
    client_name = names[0]
    client = SaClient(fabric, client_name)
    src = ud(fabric, client_name)
    graph_report = route_report(fabric)
    assert graph_report.ok
    from ipoib.sm.graph import SubnetGraph
    graph = SubnetGraph.from_topology(fabric.topology)
    lfts = {sw.guid: bytes(sw.lft[:sw.top + 1]) for sw in fabric.switches}
    lids = fabric_lids(fabric)
    for far in (names[1], names[40], names[-1]):
        req = PathRecord(sgid=_port_gid(fabric, client_name), dgid=_port_gid(fabric, far),
                         numb_path=1, pkey=0xFFFF)
        resp = _query(client, sm.sm_lid, req, IPOIB_PATH_REC_MASK)
        assert resp.header.method == Method.GET_RESP and resp.header.status == 0
        assert resp.sa.attribute_offset == 8
        pr = PathRecord.decode(resp.data)
        dst = ud(fabric, far)
        assert (pr.dlid, pr.slid) == (dst.lid, src.lid)
        assert (pr.mtu_selector, pr.mtu, pr.rate_selector, pr.rate) == (2, 4, 2, 3)
        assert (pr.packet_life_time_selector, pr.packet_life_time) == (2, 18)
        assert pr.pkey == 0xFFFF and pr.sl == 0 and pr.reversible == 1 and pr.hop_limit == 0
        # the DLID the SA gave carries a packet there, along the walked route
        assert packet_arrives(fabric, src, dst, far.encode())
        path = trace(graph, lfts, lids, (fabric.node(client_name).guid, 1), pr.dlid)
        assert path.outcome == "delivered"
        mtus = [fabric.by_guid[g].ports[p].mtu_cap for g, p in path.hops]
        assert pr.mtu == min([4, *mtus])


def test_path_to_a_switch_is_limited_by_its_management_port(
        tree: tuple[Fabric, SmBinding]) -> None:
    fabric, binding = tree
    client = SaClient(fabric, "hca-3")
    sw = fabric.switches[-1]
    req = PathRecord(dlid=sw.ports[0].lid, slid=fabric.node("hca-3").ports[1].lid)
    pr = PathRecord.decode(_query(client, binding.sm.sm_lid, req, M["dlid"] | M["slid"]).data)
    assert pr.dlid == sw.ports[0].lid
    assert pr.mtu == sw.ports[0].mtu_cap  # port 0's MTUCap (ibsim: 1024) bounds it
    assert pr.dgid == make_gid(PREFIX, sw.guid)


def test_selectors_filter_and_adjust(tree: tuple[Fabric, SmBinding]) -> None:
    fabric, binding = tree
    lid = binding.sm.sm_lid
    client = SaClient(fabric, "hca-1")
    base = PathRecord(sgid=_port_gid(fabric, "hca-1"), dgid=_port_gid(fabric, "hca-50"))
    ends = M["sgid"] | M["dgid"]
    sel = M["mtu_selector"] | M["mtu"]
    below = _query(client, lid, base.replace(mtu_selector=1, mtu=4), ends | sel)
    assert PathRecord.decode(below.data).mtu == 3  # "less than 2048": 1024
    above = _query(client, lid, base.replace(mtu_selector=0, mtu=4), ends | sel)
    assert above.header.status == SaStatus.ERR_NO_RECORDS
    exact = _query(client, lid, base.replace(mtu_selector=2, mtu=3), ends | sel)
    assert PathRecord.decode(exact.data).mtu == 3
    rsel = M["rate_selector"] | M["rate"]
    fast = _query(client, lid, base.replace(rate_selector=2, rate=7), ends | rsel)  # 40 Gb/s
    assert fast.header.status == SaStatus.ERR_NO_RECORDS
    slow = _query(client, lid, base.replace(rate_selector=1, rate=3), ends | rsel)
    assert PathRecord.decode(slow.data).rate == 5  # next below 10 Gb/s: 5 Gb/s
    bad = _query(client, lid, base.replace(mtu_selector=2, mtu=7), ends | sel)
    assert bad.header.status == SaStatus.ERR_REQ_INVALID
    bad_rate = _query(client, lid, base.replace(rate_selector=2, rate=40), ends | rsel)
    assert bad_rate.header.status == SaStatus.ERR_REQ_INVALID
    life = _query(client, lid, base.replace(packet_life_time_selector=1,
                                            packet_life_time=10),
                  ends | M["packet_life_time_selector"] | M["packet_life_time"])
    assert PathRecord.decode(life.data).packet_life_time == 9
    sl = _query(client, lid, base.replace(sl=5), ends | M["sl"])
    assert PathRecord.decode(sl.data).sl == 5


def test_statuses_for_unknown_ends_and_tables(tree: tuple[Fabric, SmBinding]) -> None:
    fabric, binding = tree
    lid = binding.sm.sm_lid
    client = SaClient(fabric, "hca-1")
    me = _port_gid(fabric, "hca-1")
    unknown = PathRecord(sgid=me, dgid=make_gid(PREFIX, 0xDEAD))
    get = _query(client, lid, unknown, M["sgid"] | M["dgid"])
    assert get.header.status == SaStatus.ERR_NO_RECORDS
    table = _query(client, lid, unknown, M["sgid"] | M["dgid"], Method.GET_TABLE)
    assert table.header.method == Method.GET_TABLE_RESP and table.header.status == 0
    assert table.sa.attribute_offset == 0 and not any(table.data)
    off_subnet = PathRecord(sgid=me, dgid=make_gid(0x1234_0000_0000_0000, 5))
    assert _query(client, lid, off_subnet, M["sgid"] | M["dgid"]).header.status == \
        SaStatus.ERR_NO_RECORDS
    zero = _query(client, lid, PathRecord(sgid=me, dgid=_port_gid(fabric, "hca-2"),
                                          numb_path=0),
                  M["sgid"] | M["dgid"] | M["numb_path"], Method.GET_TABLE)
    assert zero.sa.attribute_offset == 0
    foreign = PathRecord(sgid=me, dgid=_port_gid(fabric, "hca-2"), pkey=0x8123)
    assert _query(client, lid, foreign, M["sgid"] | M["dgid"] | M["pkey"]).header.status \
        == SaStatus.ERR_NO_RECORDS
    (rx,) = client.request(lid, Method.SET, SaAttr.PATH_RECORD, unknown.encode(),
                           mask=M["sgid"])
    assert SaMad.decode(rx.mad).header.status == 0x000C


def test_half_and_world_queries(tree: tuple[Fabric, SmBinding]) -> None:
    fabric, binding = tree
    lid = binding.sm.sm_lid
    client = SaClient(fabric, "hca-1")
    half = PathRecord(sgid=_port_gid(fabric, "hca-1"), numb_path=1)
    status, data, offset = rmpp_table(client, lid, Method.GET_TABLE, SaAttr.PATH_RECORD,
                                      half.encode(), mask=M["sgid"] | M["numb_path"])
    recs = unpack_records(PathRecord, data, offset).records
    assert status == 0 and len(recs) == len(fabric_lids(fabric))  # one per endport
    assert {r.dlid for r in recs} == set(fabric_lids(fabric).values())
    assert {r.slid for r in recs} == {fabric.node("hca-1").ports[1].lid}
    get = _query(client, lid, PathRecord(), 0)
    assert get.header.status == 0  # SubnAdmGet stops at the first path
    assert PathRecord.decode(get.data).dlid in fabric_lids(fabric).values()


def test_vector_query_by_lids_on_the_ibsim_example() -> None:
    fabric, _binding = bring_up(netfile.load(NET_EXAMPLES / "net.2sw2path4hca"))
    client = SaClient(fabric, "Hca2")
    req = PathRecord(dlid=2, slid=4, numb_path=0x7F)
    resp = _query(client, 1, req, M["dlid"] | M["slid"] | M["numb_path"], Method.GET_TABLE)
    (pr,) = unpack_records(PathRecord, resp.data, resp.sa.attribute_offset, 1).records
    assert pr.dgid == make_gid(PREFIX, 0x100001) and pr.sgid == make_gid(PREFIX, 0x100004)
    assert pr.reversible == 1 and pr.numb_path == 0


def test_multicast_dgid_answers_from_the_group(tree: tuple[Fabric, SmBinding]) -> None:
    fabric, binding = tree
    client = SaClient(fabric, "hca-1")
    group = binding.sm.groups.groups()[0]
    req = PathRecord(dgid=group.mgid, pkey=0xFFFF)
    pr = PathRecord.decode(_query(client, binding.sm.sm_lid, req, M["dgid"] | M["pkey"]).data)
    assert (pr.dlid, pr.dgid, pr.mtu, pr.rate, pr.pkey) == (0xC000, group.mgid, 4, 3, 0xFFFF)
    wrong = _query(client, binding.sm.sm_lid, req.replace(pkey=0x8001), M["dgid"] | M["pkey"])
    assert wrong.header.status == SaStatus.ERR_NO_RECORDS
