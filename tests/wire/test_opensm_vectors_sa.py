"""SA records against real OpenSM 3.3.23 bytes and saquery's own printout of them.

Each vector pair is a saquery request and OpenSM's GetTableResp, traced through umad2sim
(shared/vectors/opensm/README.md). We decode the records, check every value saquery printed,
and re-encode to the same bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ipoib.wire.enums import NodeType, Selector
from ipoib.wire.gid import gid_to_str, parse_gid
from ipoib.wire.ipoib import broadcast_mgid
from ipoib.wire.layout import Record
from ipoib.wire.mad import SA_DATA_OFFSET as SA_DATA_AT
from ipoib.wire.mad import ClassPortInfo, RmppHeader, SaMad, sa_data
from ipoib.wire.sa import (
    MCMemberRecord,
    NodeRecord,
    PathRecord,
    SaAttr,
    attribute_offset,
    pack_records,
    unpack_records,
)
from tests.vectors import SimRecord, read_hex


def sa_fields(mad: bytes) -> tuple[int, int, int]:
    """(AttributeID, AttributeOffset, ComponentMask) of an SA MAD (wire-formats.md §5.1)."""
    v = SaMad.decode(mad)
    return v.header.attr_id, v.sa.attribute_offset, v.sa.component_mask


def printed(path: Path) -> dict[str, str]:
    """saquery's ``name.......value`` lines, as a dict (first occurrence wins)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(\S.*?)\.{3,}(.*)$", line)
        if m:
            out.setdefault(m.group(1), m.group(2).strip())
    return out


def exchange(vectors_dir: Path, name: str) -> tuple[SimRecord, SimRecord]:
    recs = read_hex(vectors_dir / f"{name}.hex")
    req = next(r for r in recs if r.sent)
    resp = next(r for r in recs if not r.sent and r.mad[12:16] == req.mad[12:16])
    return req, resp


# -- PathRecord --------------------------------------------------------------------------


def test_path_record_request(vectors_dir: Path) -> None:
    req, _ = exchange(vectors_dir, "saquery_pr")
    mad = req.valid
    attr, _, mask = sa_fields(mad)
    assert attr == SaAttr.PATH_RECORD
    assert mask == 0x1030 == PathRecord.component_mask("dlid", "slid", "numb_path")
    assert PathRecord.components(mask) == ["dlid", "slid", "numb_path"]
    pr = PathRecord.decode(mad, SA_DATA_AT)
    assert (pr.dlid, pr.slid, pr.numb_path, pr.reversible) == (2, 4, 0x7F, 0)
    assert pr.dgid == bytes(16)
    assert pr.encode() == mad[SA_DATA_AT : SA_DATA_AT + 64]


def test_path_record_response(vectors_dir: Path) -> None:
    _, resp = exchange(vectors_dir, "saquery_pr")
    mad = resp.valid
    attr, attr_offset, mask = sa_fields(mad)
    assert (attr, attr_offset, mask) == (SaAttr.PATH_RECORD, 8, 0x1030)
    assert attr_offset == attribute_offset(PathRecord)
    table = unpack_records(PathRecord, sa_data(mad), attr_offset)
    assert not table.truncated
    [pr] = table.records
    assert pr.dgid == parse_gid("fe80::10:1")
    assert pr.sgid == parse_gid("fe80::10:4")
    assert (pr.dlid, pr.slid, pr.reversible, pr.numb_path) == (2, 4, 1, 0)
    assert pr.pkey == 0xFFFF
    assert (pr.mtu_selector, pr.mtu) == (Selector.EXACTLY, 4)
    assert (pr.rate_selector, pr.rate) == (Selector.EXACTLY, 3)
    assert (pr.packet_life_time_selector, pr.packet_life_time) == (Selector.EXACTLY, 0x12)
    assert pr.service_id == 0
    assert pack_records([pr]) == sa_data(mad)


def test_path_record_matches_saquery_printout(vectors_dir: Path) -> None:
    _, resp = exchange(vectors_dir, "saquery_pr")
    pr = PathRecord.decode(resp.valid, SA_DATA_AT)
    p = printed(vectors_dir / "saquery_pr.txt")
    raw = pr.encode()
    assert int(p["service_id"], 16) == pr.service_id
    assert p["dgid"] == gid_to_str(pr.dgid)
    assert p["sgid"] == gid_to_str(pr.sgid)
    assert int(p["dlid"]) == pr.dlid
    assert int(p["slid"]) == pr.slid
    hop_flow_raw = (
        pr.raw_traffic << 31 | pr.reserved_44 << 28 | pr.flow_label << 8 | pr.hop_limit
    )
    assert int(p["hop_flow_raw"], 16) == hop_flow_raw
    assert int(p["tclass"], 16) == pr.tclass
    assert int(p["num_path_revers"], 16) == pr.reversible << 7 | pr.numb_path
    assert int(p["pkey"], 16) == pr.pkey
    assert int(p["qos_class"], 16) == pr.qos_class
    assert int(p["sl"], 16) == pr.sl
    assert int(p["mtu"], 16) == pr.mtu_selector << 6 | pr.mtu
    assert int(p["rate"], 16) == pr.rate_selector << 6 | pr.rate
    assert int(p["pkt_life"], 16) == pr.packet_life_time_selector << 6 | pr.packet_life_time
    assert int(p["preference"], 16) == pr.preference
    assert int(p["resv2"], 16) == int.from_bytes(raw[58:64], "big")


# -- MCMemberRecord ----------------------------------------------------------------------


def test_mcmember_broadcast_group(vectors_dir: Path) -> None:
    req, resp = exchange(vectors_dir, "saquery_mcmr")
    assert sa_fields(req.valid) == (SaAttr.MC_MEMBER_RECORD, 0, 0)
    mad = resp.valid
    attr, attr_offset, _ = sa_fields(mad)
    assert (attr, attr_offset) == (SaAttr.MC_MEMBER_RECORD, 7)
    assert attr_offset == attribute_offset(MCMemberRecord)
    table = unpack_records(MCMemberRecord, sa_data(mad), attr_offset)
    assert not table.truncated
    [g] = table.records
    assert g.mgid == broadcast_mgid(0xFFFF, 2) == parse_gid("ff12:401b:ffff::ffff:ffff")
    assert g.port_gid == bytes(16)
    assert (g.qkey, g.mlid, g.pkey) == (0x0B1B, 0xC000, 0xFFFF)
    assert (g.mtu_selector, g.mtu) == (Selector.EXACTLY, 4)
    assert (g.rate_selector, g.rate) == (Selector.EXACTLY, 3)
    assert (g.packet_life_time_selector, g.packet_life_time) == (Selector.EXACTLY, 0x12)
    assert (g.tclass, g.sl, g.flow_label, g.hop_limit) == (0, 0, 0, 0)
    assert (g.scope, g.join_state, g.proxy_join) == (2, 0, 0)
    assert g.encode() == mad[SA_DATA_AT : SA_DATA_AT + 52]
    assert pack_records([g]) == sa_data(mad)

    p = printed(vectors_dir / "saquery_mcmr.txt")
    assert p["MGID"] == gid_to_str(g.mgid)
    assert int(p["Mlid"], 16) == g.mlid
    assert int(p["Mtu"], 16) == g.mtu_selector << 6 | g.mtu
    assert int(p["pkey"], 16) == g.pkey
    assert int(p["Rate"], 16) == g.rate_selector << 6 | g.rate
    assert int(p["SL"], 16) == g.sl


def test_mcmember_members_dump(vectors_dir: Path) -> None:
    recs = read_hex(vectors_dir / "saquery_mcm_members.hex")
    replies = [r.valid for r in recs if not r.sent]
    assert [sa_fields(m)[0] for m in replies] == [SaAttr.MC_MEMBER_RECORD, SaAttr.NODE_RECORD]
    mc = unpack_records(MCMemberRecord, sa_data(replies[0]), sa_fields(replies[0])[1])
    [m] = mc.records
    p = printed(vectors_dir / "saquery_mcm_members.txt")
    assert p["MGID"] == gid_to_str(m.mgid)
    assert int(p["Mlid"], 16) == m.mlid
    assert p["PortGid"] == gid_to_str(m.port_gid) == "::"  # untrusted query: PortGID hidden
    assert int(p["ScopeState"], 16) == m.scope << 4 | m.join_state
    assert int(p["ProxyJoin"], 16) == m.proxy_join
    # the NodeRecord table saquery fetched to name the member is the cut one of saquery_nr
    nr = unpack_records(NodeRecord, sa_data(replies[1]), sa_fields(replies[1])[1])
    assert nr.truncated
    assert [r.node_description for r in nr.records] == ["Hca1"]


# -- NodeRecord --------------------------------------------------------------------------


def check_node_printout(rec: NodeRecord, p: dict[str, str]) -> None:
    assert int(p["lid"]) == rec.lid
    assert int(p["reserved"], 16) == rec.reserved
    assert int(p["base_version"], 16) == rec.base_version
    assert int(p["class_version"], 16) == rec.class_version
    assert p["node_type"] == {NodeType.CA: "Channel Adapter"}[NodeType(rec.node_type)]
    assert int(p["num_ports"]) == rec.num_ports
    assert int(p["sys_guid"], 16) == rec.system_image_guid
    assert int(p["node_guid"], 16) == rec.node_guid
    assert int(p["port_guid"], 16) == rec.port_guid
    assert int(p["partition_cap"], 16) == rec.partition_cap
    assert int(p["device_id"], 16) == rec.device_id
    assert int(p["revision"], 16) == rec.revision
    assert int(p["port_num"]) == rec.local_port_num
    assert int(p["vendor_id"], 16) == rec.vendor_id
    assert p["NodeDescription"] == rec.node_description


def test_node_record_table_cut_at_one_mad(vectors_dir: Path) -> None:
    req, resp = exchange(vectors_dir, "saquery_nr")
    assert sa_fields(req.valid) == (SaAttr.NODE_RECORD, 0, 0)
    mad = resp.valid
    assert len(mad) == 256
    attr_offset = sa_fields(mad)[1]
    assert attr_offset == attribute_offset(NodeRecord) == 14
    data = sa_data(mad)
    table = unpack_records(NodeRecord, data, attr_offset)
    assert table.truncated  # Switch1's record starts at data byte 112 and is cut at 200
    [hca1] = table.records
    check_node_printout(hca1, printed(vectors_dir / "saquery_nr.txt"))
    assert (hca1.node_type, hca1.lid, hca1.num_ports) == (NodeType.CA, 2, 2)
    assert hca1.encode() == data[:108]
    # the cut record is Switch1 (LID 1, 8 ports); a count bigger than what fits is cut too
    assert data[112:114] == b"\x00\x01" and data[119] == 8
    assert unpack_records(NodeRecord, data, attr_offset, count=6).truncated
    one = unpack_records(NodeRecord, data, attr_offset, count=1)
    assert (one.records, one.truncated) == ([hca1], False)


def test_node_record_by_lid(vectors_dir: Path) -> None:
    req, resp = exchange(vectors_dir, "saquery_nr_lid4")
    attr, _, mask = sa_fields(req.valid)
    assert (attr, mask) == (SaAttr.NODE_RECORD, 0x1)
    assert mask == NodeRecord.component_mask("lid")
    query = NodeRecord.decode(req.valid, SA_DATA_AT)
    assert query == NodeRecord(lid=4)
    mad = resp.valid
    assert len(mad) == 168
    table = unpack_records(NodeRecord, sa_data(mad), sa_fields(mad)[1])
    assert not table.truncated
    [hca2] = table.records
    check_node_printout(hca2, printed(vectors_dir / "saquery_nr_lid4.txt"))
    assert hca2.port_guid == 0x100004
    assert pack_records([hca2]) == sa_data(mad)
    # the embedded NodeInfo comes back out as the 40 bytes an SMA would send
    assert hca2.node_info_bytes() == mad[SA_DATA_AT + 4 : SA_DATA_AT + 44]
    rebuilt = NodeRecord.from_attributes(4, hca2.node_info_bytes(), "Hca2")
    assert rebuilt == hca2


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("saquery_pr", PathRecord),
        ("saquery_mcmr", MCMemberRecord),
        ("saquery_nr_lid4", NodeRecord),
    ],
)
def test_reply_reencodes_byte_exact(vectors_dir: Path, name: str, cls: type[Record]) -> None:
    _, resp = exchange(vectors_dir, name)
    data = sa_data(resp.valid)
    table = unpack_records(cls, data, sa_fields(resp.valid)[1])
    assert pack_records(table.records) == data


def test_get_table_resp_rmpp_bytes_through_umad2sim(vectors_dir: Path) -> None:
    """OpenSM leaves RMPP to the kernel: only the Active flag, which umad2sim passes on."""
    for name in ("saquery_pr", "saquery_mcmr", "saquery_nr", "saquery_nr_lid4"):
        _, resp = exchange(vectors_dir, name)
        assert SaMad.decode(resp.valid).rmpp == RmppHeader(rmpp_version=0, rmpp_flags=1)


def test_class_port_info_matches_saquery_printout(vectors_dir: Path) -> None:
    """The record itself is tested with wire/mad.py; here, against saquery's printout."""
    req, resp = exchange(vectors_dir, "saquery_cpi")
    assert sa_fields(req.valid)[0] == SaAttr.CLASS_PORT_INFO
    cpi = ClassPortInfo.decode(sa_data(resp.valid))
    p = printed(vectors_dir / "saquery_cpi.txt")
    assert int(p["Base version"]) == cpi.base_version
    assert int(p["Class version"]) == cpi.class_version
    assert int(p["Capability mask"], 16) == cpi.capability_mask
    assert int(p["Capability mask 2"], 16) == cpi.capability_mask2
    assert int(p["Response time value"], 16) == cpi.resp_time_value
    assert p["Redirect GID"] == gid_to_str(cpi.redirect_gid)
    tc_sl_fl = cpi.redirect_tc << 24 | cpi.redirect_sl << 20 | cpi.redirect_fl
    assert int(p["Redirect TC/SL/FL"], 16) == tc_sl_fl
    assert int(p["Redirect LID"]) == cpi.redirect_lid
    assert int(p["Redirect PKey"], 16) == cpi.redirect_pkey
    assert int(p["Redirect QP"], 16) == cpi.redirect_qp
    assert int(p["Redirect QKey"], 16) == cpi.redirect_qkey
    assert p["Trap GID"] == gid_to_str(cpi.trap_gid)
    assert int(p["Trap TC/SL/FL"], 16) == cpi.trap_tc << 24 | cpi.trap_sl << 20 | cpi.trap_fl
    assert int(p["Trap LID"]) == cpi.trap_lid
    assert int(p["Trap PKey"], 16) == cpi.trap_pkey
    assert int(p["Trap HL/QP"], 16) == cpi.trap_hl << 24 | cpi.trap_qp
    assert int(p["Trap QKey"], 16) == cpi.trap_qkey
