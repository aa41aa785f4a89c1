"""SMP attribute records, table conveniences, AttributeModifier encodings and traps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.enums import Mtu, NodeType, PhysState, PortState
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.layout import Record
from ipoib.wire.mad import Method, Notice, NoticeType, build_smp, smp_data
from ipoib.wire.smp import (
    AM_SM_SUPPORTS_EXTENDED_SPEEDS,
    ATTRIBUTE_RECORDS,
    GuidInfo,
    LftBlock,
    MftBlock,
    NodeDescription,
    NodeInfo,
    PKeyTable,
    PortCap,
    PortInfo,
    SlToVlTable,
    SmInfo,
    SmInfoAttrMod,
    SmpAttr,
    SmState,
    SwitchInfo,
    Trap128,
    Trap144,
    VlArbTable,
    decode_attribute,
    encode_attribute,
    lft_block_of,
    mft_am,
    mft_location,
    parse_mft_am,
    parse_pkey_table_am,
    parse_sl_to_vl_am,
    parse_vl_arb_am,
    pkey_base,
    pkey_table_am,
    port_info_am,
    port_info_port,
    sl_to_vl_am,
    trap_128,
    trap_144,
    vl_arb_am,
)
from tests.wire.records import decoded_or_refused

# Templates from ibsim's sim_net.c (reference/ibsim-protocol.md §10): what ibsim's SMA
# starts from. They pin the bit positions of every PortInfo nibble ibsim fills.
HCAPORT = bytes.fromhex(
    "0000000000000000fe80000000000000000200010040c04800000ff90103030212520011404000080804ff10"
    "000000000000201f000000000000000004300101")
SMAPORT = bytes.fromhex(
    "0000000000000000fe80000000000000000100010000c04800000ff900030301145200111040000808030040"
    "000000000000011f080000000000000004300000")
HCANODEINFO = bytes.fromhex(
    "010101020002c90001136e400002c90001136e400002c90001136e4100405a44000000a1010002c9")
SWITCHINFO = bytes.fromhex("c0000000040000040000000000000040") + b"\x30" + bytes(47)


def test_attribute_ids() -> None:
    assert [int(a) for a in SmpAttr] == [0x02, 0x10, 0x11, 0x12, 0x14, 0x15, 0x16, 0x17, 0x18,
                                         0x19, 0x1B, 0x20, 0xFF90]


def test_record_sizes_fit_the_smp_data_area() -> None:
    sizes = {cls.NAME: cls.SIZE for cls in ATTRIBUTE_RECORDS.values()}
    assert sizes == {
        "NodeDescription": 64, "NodeInfo": 40, "SwitchInfo": 64, "GUIDInfo": 64, "PortInfo": 64,
        "P_KeyTable": 64, "SLtoVLMappingTable": 8, "VLArbitrationTable": 64,
        "LinearForwardingTable": 64, "MulticastForwardingTable": 64, "SMInfo": 21,
    }


def test_nodeinfo_ibsim_template() -> None:
    ni = NodeInfo.decode(HCANODEINFO)
    assert (ni.base_version, ni.class_version, ni.node_type, ni.num_ports) == (
        1, 1, NodeType.CA, 2)
    assert (ni.system_image_guid, ni.node_guid, ni.port_guid) == (
        0x0002C90001136E40, 0x0002C90001136E40, 0x0002C90001136E41)
    assert (ni.partition_cap, ni.device_id, ni.revision, ni.local_port_num, ni.vendor_id) == (
        64, 0x5A44, 0xA1, 1, 0x0002C9)
    assert ni.encode() == HCANODEINFO


def test_portinfo_ibsim_hca_template() -> None:
    pi = PortInfo.decode(HCAPORT)
    assert (pi.gid_prefix, pi.lid, pi.master_sm_lid) == (0xFE80 << 48, 2, 1)
    assert pi.capability_mask == 0x0040C048 and pi.mkey_lease_period == 0x0FF9
    assert (pi.local_port_num, pi.link_width_enabled, pi.link_width_supported,
            pi.link_width_active) == (1, 3, 3, 2)
    assert (pi.link_speed_supported, pi.port_state, pi.port_physical_state,
            pi.link_down_default_state) == (1, PortState.INIT, PhysState.LINK_UP, 2)
    assert (pi.link_speed_active, pi.link_speed_enabled, pi.neighbor_mtu, pi.vl_cap) == (
        1, 1, Mtu.MTU_2048, 4)
    assert (pi.vl_arbitration_high_cap, pi.vl_arbitration_low_cap, pi.mtu_cap) == (8, 8, 4)
    assert (pi.vl_stall_count, pi.hoq_life, pi.operational_vls) == (7, 31, 1)
    assert (pi.guid_cap, pi.subnet_timeout, pi.capability_mask2) == (32, 31, 0x0430)
    assert (pi.link_speed_ext_supported, pi.link_speed_ext_enabled) == (1, 1)
    assert pi.encode() == HCAPORT


def test_portinfo_ibsim_switch_port0_template() -> None:
    pi = PortInfo.decode(SMAPORT)
    assert (pi.lid, pi.local_port_num, pi.port_state, pi.neighbor_mtu, pi.mtu_cap) == (
        1, 0, PortState.ACTIVE, 1, 3)
    assert (pi.operational_vls, pi.guid_cap, pi.resp_time_value, pi.subnet_timeout) == (
        4, 1, 8, 31)
    assert pi.encode() == SMAPORT


def test_portinfo_every_subbyte_field_lands_where_the_table_says() -> None:
    # one field at a time at its maximum: exactly the documented bits light up
    cases = {
        "link_speed_supported": (32, 0xF0), "port_state": (32, 0x0F),
        "port_physical_state": (33, 0xF0), "link_down_default_state": (33, 0x0F),
        "mkey_protect_bits": (34, 0xC0), "lmc": (34, 0x07),
        "link_speed_active": (35, 0xF0), "link_speed_enabled": (35, 0x0F),
        "neighbor_mtu": (36, 0xF0), "master_sm_sl": (36, 0x0F),
        "vl_cap": (37, 0xF0), "init_type": (37, 0x0F),
        "init_type_reply": (41, 0xF0), "mtu_cap": (41, 0x0F),
        "vl_stall_count": (42, 0xE0), "hoq_life": (42, 0x1F),
        "operational_vls": (43, 0xF0), "partition_enforcement_inbound": (43, 0x08),
        "partition_enforcement_outbound": (43, 0x04), "filter_raw_inbound": (43, 0x02),
        "filter_raw_outbound": (43, 0x01), "client_reregister": (51, 0x80),
        "multicast_pkey_trap_suppression_enabled": (51, 0x40), "subnet_timeout": (51, 0x1F),
        "resp_time_value": (52, 0x1F), "local_phy_errors": (53, 0xF0),
        "overrun_errors": (53, 0x0F), "link_speed_ext_active": (62, 0xF0),
        "link_speed_ext_supported": (62, 0x0F), "link_speed_ext_enabled": (63, 0x1F),
    }
    for name, (byte, mask) in cases.items():
        b = PortInfo(**{name: PortInfo.BY_NAME[name].mask}).encode()
        expected = bytearray(64)
        expected[byte] = mask
        assert b == bytes(expected), name
    b = PortInfo(link_round_trip_latency=0xFFFFFF).encode()
    assert b[56:60] == b"\x00\xff\xff\xff"


def test_port_capabilities() -> None:
    caps = PortCap(0x0050C048)
    assert caps == (PortCap.IS_TRAP_SUPPORTED | PortCap.IS_SL_MAPPING_SUPPORTED
                    | PortCap.IS_EXTENDED_SPEEDS_SUPPORTED
                    | PortCap.IS_CAPABILITY_MASK2_SUPPORTED | PortCap.IS_VENDOR_CLASS_SUPPORTED
                    | PortCap.IS_CAPABILITY_MASK_NOTICE_SUPPORTED)
    assert int(PortCap.IS_SM) == 0x2


def test_switchinfo_ibsim_template() -> None:
    si = SwitchInfo.decode(SWITCHINFO)
    assert (si.linear_fdb_cap, si.multicast_fdb_cap, si.linear_fdb_top) == (0xC000, 1024, 4)
    assert (si.partition_enforcement_cap, si.filter_raw_inbound_cap,
            si.filter_raw_outbound_cap, si.inbound_enforcement_cap) == (64, 1, 1, 0)
    assert si.encode() == SWITCHINFO
    b = SwitchInfo(life_time_value=0x1F, port_state_change=1,
                   optimized_sl_to_vl_mapping_programming=3, enhanced_port0=1).encode()
    assert (b[11], b[16]) == (0xFF, 0x08)
    assert SwitchInfo(port_state_change=1).encode()[11] == 0x04


def test_node_description_text() -> None:
    nd = NodeDescription(node_string="Hca1 HCA-1")
    b = nd.encode()
    assert b == b"Hca1 HCA-1".ljust(64, b"\0")
    assert NodeDescription.decode(b) == nd
    with pytest.raises(EncodeError):
        NodeDescription(node_string="x" * 65).encode()


def test_guid_info_block() -> None:
    gi = GuidInfo.from_guids([0x100007])
    assert gi.guids == (0x100007,) + (0,) * 7
    assert gi.encode()[:8] == (0x100007).to_bytes(8, "big")
    with pytest.raises(EncodeError):
        GuidInfo.from_guids([0] * 9)


def test_pkey_table_block() -> None:
    table = PKeyTable.from_entries([0xFFFF, 0x8001])
    assert table.encode()[:6] == b"\xff\xff\x80\x01\x00\x00"
    assert table.entries[:3] == (0xFFFF, 0x8001, 0) and len(table.entries) == 32
    table = table.with_entry(31, 0x7FFF)
    assert table.encode()[62:] == b"\x7f\xff"
    assert pkey_base(0x8001) == pkey_base(0x0001) == 1
    with pytest.raises(EncodeError):
        table.with_entry(32, 1)
    with pytest.raises(EncodeError):
        PKeyTable.from_entries([0x10000])


def test_sl_to_vl_table() -> None:
    table = SlToVlTable.decode(bytes.fromhex("0123456789abcde7"))  # ibsim's default
    assert table.vls == (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 7)
    assert SlToVlTable.from_vls(table.vls) == table
    with pytest.raises(EncodeError):
        SlToVlTable.from_vls([0] * 15)


def test_vl_arbitration_table() -> None:
    table = VlArbTable.from_entries([(0, 64), (1, 32), (15, 255)])
    assert table.encode()[:6] == bytes((0, 64, 1, 32, 15, 255))
    assert table.entries[:4] == ((0, 64), (1, 32), (15, 255), (0, 0))
    # the reserved high nibble of the VL byte is ignored on decode
    assert VlArbTable.decode(b"\xf3\x07" + bytes(62)).entries[0] == (3, 7)
    with pytest.raises(EncodeError):
        VlArbTable.from_entries([(16, 1)])


def test_forwarding_table_blocks() -> None:
    lft = LftBlock.from_ports([0xFF, 0, 1, 3])
    assert lft.ports[:5] == (0xFF, 0, 1, 3, 0xFF) and len(lft.ports) == 64
    assert lft_block_of(1) == (0, 1) and lft_block_of(64 * 767 + 63) == (767, 63)
    # OpenSM's broadcast group on net.2sw2path4hca: MLID 0xC000 -> ports 2 and 3
    mft = MftBlock.from_masks([0x000C])
    assert mft.encode()[:4] == b"\x00\x0c\x00\x00" and mft.masks[0] == 0b1100
    assert mft_location(0xC000) == (0, 0) and mft_location(0xC021) == (1, 1)
    with pytest.raises(EncodeError):
        mft_location(0xBFFF)
    with pytest.raises(EncodeError):
        lft_block_of(0xC000)


def test_sminfo() -> None:
    sm = SmInfo(guid=0x200000, sm_key=1, act_count=7, priority=15, sm_state=SmState.MASTER)
    b = sm.encode()
    assert b.hex() == "0000000000200000" "0000000000000001" "00000007" "f3"
    assert SmInfo.decode(b) == sm
    assert [int(s) for s in SmState] == [0, 1, 2, 3]
    assert [int(m) for m in SmInfoAttrMod] == [1, 2, 3, 4, 5]


def test_attribute_modifiers() -> None:
    assert pkey_table_am(1, 5) == 0x0005_0001 and parse_pkey_table_am(0x0005_0001) == (1, 5)
    assert mft_am(2, 1) == 0x1000_0002 and parse_mft_am(0x1000_0002) == (2, 1)
    assert vl_arb_am(3, 4) == 0x0003_0004 and parse_vl_arb_am(0x0003_0004) == (3, 4)
    assert sl_to_vl_am(2, 5) == 0x0205 and parse_sl_to_vl_am(0x0205) == (2, 5)
    assert port_info_am(3, sm_supports_extended_speeds=True) == 0x8000_0003
    assert port_info_port(0x8000_0005) == 5 and AM_SM_SUPPORTS_EXTENDED_SPEEDS == 1 << 31
    bad: list[Callable[[], int]] = [
        lambda: mft_am(512), lambda: mft_am(0, 16), lambda: pkey_table_am(1 << 16),
        lambda: sl_to_vl_am(256, 0), lambda: port_info_am(256), lambda: vl_arb_am(-1)]
    for call in bad:
        with pytest.raises(EncodeError):
            call()


@given(block=st.integers(0, 511), position=st.integers(0, 15), port=st.integers(0, 0xFFFF),
       a=st.integers(0, 255), b=st.integers(0, 255))
def test_attribute_modifiers_round_trip(block: int, position: int, port: int, a: int,
                                        b: int) -> None:
    assert parse_mft_am(mft_am(block, position)) == (block, position)
    assert parse_pkey_table_am(pkey_table_am(block, port)) == (block, port)
    assert parse_vl_arb_am(vl_arb_am(block, port)) == (block, port)
    assert parse_sl_to_vl_am(sl_to_vl_am(a, b)) == (a, b)
    assert port_info_port(port_info_am(a, sm_supports_extended_speeds=bool(b & 1))) == a


# --- traps ---------------------------------------------------------------------------------


def test_trap_128() -> None:
    n = trap_128(issuer_lid=3)
    b = n.smp_data()
    assert b[:12].hex() == "81000002" "0080" "0003" "0000" "0003"
    assert not any(b[12:])
    assert n.details(Trap128).lidaddr == 3


def test_trap_144_change_flags() -> None:
    n = trap_144(5, 0x0050C048, other_local_changes=1, node_description_change=1)
    b = n.smp_data()
    assert b[:10].hex() == "84000001" "0090" "0005" "0000"
    assert b[10:24].hex() == "0000" "0005" "00" "01" "0050c048" "0001" "0000"
    flags = {"node_description_change": 0x01, "link_width_enabled_change": 0x02,
             "link_speed_enabled_change": 0x04, "sm_priority_change": 0x08,
             "hierarchy_info_change": 0x10, "capability_mask2_change": 0x20}
    for name, value in flags.items():  # OpenSM's TRAP_144_MASK_* values
        assert Trap144(**{name: 1}).encode()[10:12] == value.to_bytes(2, "big"), name
    assert Trap144(capability_mask2=0x1234).encode()[12:14] == b"\x12\x34"
    assert n.notice_type == NoticeType.INFO and n.trap_number == 144
    # an SMA sends it in a SubnTrap; the SM decodes it back from the SMP data area
    mad = build_smp(Method.TRAP, SmpAttr.NOTICE, 0, 0, encode_attribute(n))
    back = decode_attribute(SmpAttr.NOTICE, smp_data(mad))
    assert isinstance(back, Notice) and back.details(Trap144).capability_mask == 0x0050C048


def test_decode_attribute_refuses_what_has_no_layout() -> None:
    with pytest.raises(DecodeError) as err:
        decode_attribute(SmpAttr.VENDOR_EXT_PORT_INFO, bytes(64))
    assert (err.value.field, err.value.offset) == ("attr_id", 16)


# --- property tests ------------------------------------------------------------------------

SMP_RECORDS: list[type[Record]] = [*ATTRIBUTE_RECORDS.values(), Trap128, Trap144]


@pytest.mark.parametrize("cls", SMP_RECORDS, ids=lambda c: c.NAME)
@given(data=st.data())
def test_records_decode_any_bytes_or_raise_decode_error(cls: type[Record],
                                                        data: st.DataObject) -> None:
    buf = data.draw(st.binary(max_size=cls.SIZE + 8))
    rec = decoded_or_refused(cls, buf)
    reserved = (NodeDescription, PortInfo, SwitchInfo, SmInfo, Trap128, Trap144)
    if rec is not None and cls not in reserved:
        assert rec.encode() == buf[: cls.SIZE]  # no reserved bits: exact


@given(attr_id=st.integers(0, 0xFFFF), data=st.binary(max_size=80))
def test_decode_attribute_raises_only_decode_error(attr_id: int, data: bytes) -> None:
    try:
        rec = decode_attribute(attr_id, data)
    except DecodeError:
        return
    assert len(encode_attribute(rec)) == 64
