"""SA records: component masks, matching, table stride and truncation, selector rules."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.enums import Mtu, NodeType, Rate, Selector
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.layout import INT, RAW, Record, match
from ipoib.wire.sa import (
    IPOIB_BCAST_JOIN_MASK,
    IPOIB_MCAST_JOIN_MASK,
    IPOIB_PATH_REC_MASK,
    JoinState,
    MCMemberRecord,
    NodeRecord,
    PathRecord,
    PortInfoRecord,
    SaAttr,
    SaStatus,
    attribute_offset,
    lifetime_order,
    mtu_order,
    pack_records,
    rate_order,
    selector_ok,
    unpack_records,
)

RECORDS: list[type[Record]] = [PathRecord, MCMemberRecord, NodeRecord, PortInfoRecord]


def gid(tail: int, prefix: int = 0xFE80 << 48) -> bytes:
    return (prefix << 64 | tail).to_bytes(16, "big")


# -- declarations ------------------------------------------------------------------------


def test_sizes_and_attribute_offsets() -> None:
    assert [c.SIZE for c in RECORDS] == [64, 52, 108, 68]
    assert [attribute_offset(c) for c in RECORDS] == [8, 7, 14, 9]


@pytest.mark.parametrize(("cls", "bits"), [
    (PathRecord, 23), (MCMemberRecord, 18), (NodeRecord, 15), (PortInfoRecord, 58),
])
def test_mask_bits_are_dense_and_unique(cls: type[Record], bits: int) -> None:
    cms = [s.cm for s in cls.SLOTS]
    assert None not in cms
    assert sorted(c for c in cms if c is not None) == list(range(bits))


def test_fields_sit_where_iba_puts_them() -> None:
    """Spot checks of the byte/bit positions that are easy to get wrong."""
    pr = PathRecord(
        raw_traffic=1, flow_label=0xABCDE, hop_limit=0x40, reversible=1, numb_path=0x7F,
        qos_class=0xABC, sl=0xD, mtu_selector=Selector.EXACTLY, mtu=Mtu.MTU_4096,
    ).with_service_id(0x0102030405060708).encode()
    assert pr[0:8] == bytes.fromhex("0102030405060708")
    assert pr[44:48] == bytes.fromhex("8abcde40")
    assert pr[49] == 0xFF and pr[52:54] == bytes.fromhex("abcd") and pr[54] == 0x85
    mc = MCMemberRecord(sl=0xF, flow_label=1, hop_limit=2, scope=5, join_state=8, proxy_join=1)
    assert mc.encode()[44:50] == bytes.fromhex("f0000102" "58" "80")
    pir = PortInfoRecord(
        endport_lid=0x1234, port_num=7, mkey_protect_bits=3, lmc=5, client_reregister=1,
        subnet_timeout=0x12, link_speed_ext_enabled=0x1F, resp_time_value=0x11,
    ).encode()
    assert pir[0:4] == bytes.fromhex("12340700")
    assert pir[4 + 34] == 0xC5 and pir[4 + 51] == 0x92
    assert pir[4 + 52] == 0x11 and pir[4 + 63] == 0x1F
    nr = NodeRecord(lid=3, local_port_num=1, vendor_id=0x02C9, node_description="sw").encode()
    assert nr[40:44] == bytes.fromhex("010002c9") and nr[44:47] == b"sw\0"


def test_service_id_halves() -> None:
    pr = PathRecord().with_service_id(0x1000000000000001)
    assert (pr.service_id_msb, pr.service_id_lsb, pr.service_id) == (0x10, 1, 0x1000000000000001)
    assert PathRecord.component_mask("service_id_msb", "service_id_lsb") == 0x3
    assert PathRecord.SERVICE_ID_MASK == 0x3
    with pytest.raises(EncodeError):
        pr.with_service_id(1 << 64)


def test_linux_ipoib_masks_name_the_right_fields() -> None:
    assert IPOIB_BCAST_JOIN_MASK == MCMemberRecord.component_mask(
        "mgid", "port_gid", "pkey", "join_state")
    assert IPOIB_MCAST_JOIN_MASK == MCMemberRecord.component_mask(
        "mgid", "port_gid", "qkey", "mtu_selector", "mtu", "tclass", "pkey", "rate_selector",
        "rate", "sl", "flow_label", "hop_limit", "join_state")
    assert IPOIB_PATH_REC_MASK == PathRecord.component_mask(
        "dgid", "sgid", "tclass", "numb_path", "pkey")


def test_enums() -> None:
    assert SaAttr.PATH_RECORD.value == 0x35 and SaAttr.MC_MEMBER_RECORD.value == 0x38
    assert SaAttr.INFORM_INFO_RECORD.value == 0xF3 and len(SaAttr) == 22
    assert [s.value >> 8 for s in SaStatus] == list(range(1, 9))
    assert JoinState.FULL | JoinState.SENDONLY_FULL == 0x9
    assert JoinState(0x8) is JoinState.SENDONLY_FULL


def test_port_info_record_wraps_port_info_bytes() -> None:
    pi = bytes(range(64))
    rec = PortInfoRecord.from_attributes(5, 1, pi)
    assert (rec.endport_lid, rec.port_num, rec.options) == (5, 1, 0)
    assert rec.port_info_bytes() == pi
    assert rec.lid == 0x1011 and rec.capability_mask == 0x14151617
    assert (rec.neighbor_mtu, rec.master_sm_sl) == (2, 4)  # byte 36 = 0x24
    with pytest.raises(EncodeError):
        PortInfoRecord.from_attributes(5, 1, pi[:40])
    with pytest.raises(EncodeError):
        NodeRecord.from_attributes(5, bytes(39), "x")


# -- matching ----------------------------------------------------------------------------

NODES = [
    NodeRecord(lid=1, node_type=NodeType.SWITCH, num_ports=8, node_guid=0x200000,
               port_guid=0x200000, node_description="Switch1"),
    NodeRecord(lid=2, node_type=NodeType.CA, num_ports=2, node_guid=0x100000,
               port_guid=0x100001, local_port_num=1, node_description="Hca1"),
    NodeRecord(lid=3, node_type=NodeType.SWITCH, num_ports=8, node_guid=0x200001,
               port_guid=0x200001, node_description="Switch2"),
    NodeRecord(lid=4, node_type=NodeType.CA, num_ports=2, node_guid=0x100003,
               port_guid=0x100004, local_port_num=1, node_description="Hca2"),
]


@pytest.mark.parametrize(("template", "fields", "lids"), [
    (NodeRecord(lid=999), (), [1, 2, 3, 4]),  # mask 0: everything, whatever the template says
    (NodeRecord(lid=4), ("lid",), [4]),
    (NodeRecord(lid=5), ("lid",), []),
    (NodeRecord(node_type=NodeType.CA), ("node_type",), [2, 4]),
    (NodeRecord(node_type=NodeType.SWITCH, num_ports=8), ("node_type", "num_ports"), [1, 3]),
    (NodeRecord(node_type=NodeType.SWITCH, num_ports=2), ("node_type", "num_ports"), []),
    (NodeRecord(node_description="Hca1"), ("node_description",), [2]),
    (NodeRecord(port_guid=0x100004, lid=1), ("port_guid",), [4]),
    (NodeRecord(local_port_num=0), ("local_port_num",), [1, 3]),
])
def test_node_record_match(template: NodeRecord, fields: tuple[str, ...], lids: list[int]) -> None:
    mask = NodeRecord.component_mask(*fields)
    assert [n.lid for n in NODES if match(n, template, mask)] == lids


BCAST = gid(0xFFFFFFFF, prefix=0xFF12401BFFFF0000)
GROUPS = [
    MCMemberRecord(mgid=BCAST, qkey=0xB1B, mlid=0xC000, pkey=0xFFFF, mtu=4, rate=3, scope=2),
    MCMemberRecord(mgid=gid(0xFFFFFFFF, prefix=0xFF12401B80010000), qkey=0xB1B, mlid=0xC001,
                   pkey=0x8001, mtu=4, rate=3, scope=2),
    MCMemberRecord(mgid=gid(0x1, prefix=0xFF12401BFFFF0000), qkey=0xB1B, mlid=0xC002,
                   pkey=0xFFFF, mtu=4, rate=3, scope=2),
]


@pytest.mark.parametrize(("template", "mask", "mlids"), [
    (MCMemberRecord(mgid=BCAST, port_gid=gid(7), pkey=0xFFFF, join_state=1),
     IPOIB_BCAST_JOIN_MASK & ~MCMemberRecord.component_mask("port_gid", "join_state"),
     [0xC000]),
    (MCMemberRecord(pkey=0xFFFF), MCMemberRecord.component_mask("pkey"), [0xC000, 0xC002]),
    (MCMemberRecord(pkey=0x8001, mlid=0xC000), MCMemberRecord.component_mask("pkey"), [0xC001]),
    (MCMemberRecord(qkey=0xB1B, scope=2), MCMemberRecord.component_mask("qkey", "scope"),
     [0xC000, 0xC001, 0xC002]),
    (MCMemberRecord(qkey=0x1), MCMemberRecord.component_mask("qkey"), []),
])
def test_mcmember_match(template: MCMemberRecord, mask: int, mlids: list[int]) -> None:
    assert [g.mlid for g in GROUPS if match(g, template, mask)] == mlids


def test_path_record_match_with_linux_query() -> None:
    paths = [PathRecord(dgid=gid(d), sgid=gid(s), pkey=0xFFFF, numb_path=1, dlid=d, slid=s)
             for d in (1, 4) for s in (1, 4)]
    query = PathRecord(dgid=gid(4), sgid=gid(1), pkey=0xFFFF, numb_path=1, tclass=0)
    found = [p for p in paths if match(p, query, IPOIB_PATH_REC_MASK)]
    assert [(p.dlid, p.slid) for p in found] == [(4, 1)]
    assert [p for p in paths if match(p, query.replace(pkey=0x8001), IPOIB_PATH_REC_MASK)] == []


# -- selectors ---------------------------------------------------------------------------

G, L, E, B = Selector.GREATER, Selector.LESS, Selector.EXACTLY, Selector.BEST


@pytest.mark.parametrize(("selector", "wanted", "actual", "order", "ok"), [
    # rate codes are not in speed order: code 5 (5 Gb/s) is slower than code 3 (10 Gb/s)
    (G, Rate.R10, Rate.R5, rate_order, False),
    (G, Rate.R10, Rate.R30, rate_order, True),
    (L, Rate.R10, Rate.R5, rate_order, True),
    (L, Rate.R10, Rate.R30, rate_order, False),
    (G, Rate.R40, Rate.R14, rate_order, False),  # 14 > 7 as codes, 14 < 40 Gb/s
    (L, Rate.R100, Rate.R25, rate_order, True),
    (E, Rate.R10, Rate.R10, rate_order, True),
    (E, Rate.R10, Rate.R40, rate_order, False),
    (B, Rate.R10, Rate.R2_5, rate_order, True),
    (B, Rate.R10, 0, rate_order, False),  # undefined code
    (G, 1, Rate.R10, rate_order, False),  # undefined wanted code
    (G, Mtu.MTU_2048, Mtu.MTU_4096, mtu_order, True),
    (G, Mtu.MTU_2048, Mtu.MTU_2048, mtu_order, False),
    (L, Mtu.MTU_2048, Mtu.MTU_1024, mtu_order, True),
    (E, Mtu.MTU_2048, Mtu.MTU_2048, mtu_order, True),
    (E, Mtu.MTU_2048, 6, mtu_order, False),
    (G, 0x12, 0x13, lifetime_order, True),
    (L, 0x12, 0x13, lifetime_order, False),
    (E, 0x12, 0x12, lifetime_order, True),
    (4, 0x12, 0x12, lifetime_order, False),  # not a selector
])
def test_selector_ok(selector: int, wanted: int, actual: int, order: Any, ok: bool) -> None:
    assert selector_ok(selector, wanted, actual, order) is ok


def test_orders() -> None:
    assert [mtu_order(m) for m in Mtu] == [256, 512, 1024, 2048, 4096]
    assert mtu_order(0) is None and rate_order(1) is None and lifetime_order(64) is None
    assert rate_order(Rate.R2_5) == 2.5


# -- tables ------------------------------------------------------------------------------


def test_pack_unpack_stride_and_padding() -> None:
    data = pack_records(NODES)
    assert len(data) == 4 * 112
    assert all(data[i * 112 + 108 : (i + 1) * 112] == bytes(4) for i in range(4))
    t = unpack_records(NodeRecord, data, 14)
    assert (t.records, t.truncated) == (NODES, False)
    # the last record may come without its padding
    t = unpack_records(NodeRecord, data[:-4], 14)
    assert (t.records, t.truncated) == (NODES, False)
    # one byte less cuts the last record
    t = unpack_records(NodeRecord, data[:-5], 14)
    assert (t.records, t.truncated) == (NODES[:3], True)
    # a count stops early and treats the rest as padding
    t = unpack_records(NodeRecord, data + bytes(100), 14, count=4)
    assert (t.records, t.truncated) == (NODES, False)
    assert unpack_records(NodeRecord, data, 14, count=2).records == NODES[:2]
    # a bigger stride than the record's (a newer SA) still decodes
    wide = b"".join(n.encode() + bytes(12) for n in NODES)
    assert unpack_records(NodeRecord, wide, 15).records == NODES


def test_empty_tables() -> None:
    assert pack_records([]) == b""
    t = unpack_records(PathRecord, b"", 8)
    assert (t.records, t.truncated) == ([], False)
    t = unpack_records(PathRecord, bytes(200), 0)  # OpenSM: no match -> AttributeOffset 0
    assert (t.records, t.truncated) == ([], False)
    assert unpack_records(PathRecord, bytes(200), 0, count=1).truncated


def test_bad_tables() -> None:
    with pytest.raises(DecodeError) as e:
        unpack_records(NodeRecord, bytes(300), 13)
    assert e.value.field == "AttributeOffset"
    with pytest.raises(DecodeError):
        unpack_records(NodeRecord, bytes(300), 14, count=-1)
    with pytest.raises(EncodeError):
        pack_records([NODES[0], GROUPS[0]])


# -- properties --------------------------------------------------------------------------


def records_of(cls: type[Record]) -> st.SearchStrategy[Record]:
    """Any valid record of ``cls``: every field drawn over its full range."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for s in cls.SLOTS:
        if s.kind == INT:
            fields[s.name] = st.integers(0, s.mask)
        elif s.kind == RAW:
            fields[s.name] = st.binary(min_size=s.width // 8, max_size=s.width // 8)
        else:
            fields[s.name] = st.text(st.characters(min_codepoint=1, max_codepoint=0x7E),
                                     max_size=s.width // 8)
    return st.builds(cls, **fields)


@pytest.mark.parametrize("cls", RECORDS)
@given(data=st.data())
def test_records_round_trip(cls: type[Record], data: st.DataObject) -> None:
    rec = data.draw(records_of(cls))
    raw = rec.encode()
    assert len(raw) == cls.SIZE
    assert cls.decode(raw) == rec
    mask = data.draw(st.integers(0, (1 << 64) - 1))
    assert match(rec, rec, mask)


@pytest.mark.parametrize("cls", RECORDS)
@given(blob=st.binary(max_size=140), offset=st.integers(-4, 140))
def test_decode_random_bytes_raises_only_decode_error(
    cls: type[Record], blob: bytes, offset: int
) -> None:
    try:
        rec = cls.decode(blob, offset)
    except DecodeError:
        assert offset < 0 or len(blob) - offset < cls.SIZE
        return
    assert isinstance(rec, cls)


@pytest.mark.parametrize("cls", RECORDS)
@given(
    blob=st.binary(max_size=600),
    attr_offset=st.integers(-2, 40),
    count=st.none() | st.integers(-1, 12),
)
def test_unpack_random_raises_only_decode_error(
    cls: type[Record], blob: bytes, attr_offset: int, count: int | None
) -> None:
    try:
        t = unpack_records(cls, blob, attr_offset, count)
    except DecodeError:
        return
    stride = attr_offset * 8
    assert all(isinstance(r, cls) for r in t.records)
    if attr_offset and count is None:
        assert len(t.records) * stride <= len(blob) + stride - cls.SIZE


@pytest.mark.parametrize("cls", RECORDS)
@given(data=st.data())
def test_truncated_tables_keep_whole_records(cls: type[Record], data: st.DataObject) -> None:
    recs = data.draw(st.lists(records_of(cls), max_size=6))
    packed = pack_records(recs)
    cut = data.draw(st.integers(0, len(packed)))
    t = unpack_records(cls, packed[:cut], attribute_offset(cls))
    stride = attribute_offset(cls) * 8
    whole = cut // stride + (cut % stride >= cls.SIZE)
    assert t.records == recs[:whole]
    assert t.truncated == (0 < cut % stride < cls.SIZE)
    t = unpack_records(cls, packed[:cut], attribute_offset(cls), count=len(recs))
    assert t.records == recs[:whole]
    assert t.truncated == (whole < len(recs))
