"""IPoIB encapsulation header, 20-byte hardware address and MGID mapping (wire-formats.md §7)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.ipoib import (
    ENCAP_ARP,
    ENCAP_IPV4,
    ENCAP_IPV6,
    EncapHeader,
    EtherType,
    HwAddr,
    broadcast_hwaddr,
    broadcast_mgid,
    interface_id,
    ipv4_hwaddr,
    ipv4_mcast_mgid,
    ipv6_mcast_hwaddr,
    ipv6_mcast_mgid,
    link_local_address,
    mcast_addr_is_valid,
    mcast_hwaddr,
    mgid_pkey,
    mgid_scope,
    pack_encap,
    unpack_encap,
)

GID_1001 = bytes.fromhex("fe800000000000000002c90300001001")
A_1001 = HwAddr(flags=0x80, qpn=0x48, gid=GID_1001)
LINUX_1001 = "80:00:00:48:fe:80:00:00:00:00:00:00:00:02:c9:03:00:00:10:01"


def g(text: str) -> bytes:
    return IPv6Address(text).packed


# --------------------------------------------------------------------------- encapsulation


def test_encap_header_layout() -> None:
    assert EncapHeader(type=EtherType.IPV6).encode() == bytes.fromhex("86dd0000")
    assert EncapHeader.decode(b"\x08\x06\xab\xcd") == EncapHeader(type=0x0806, reserved=0xABCD)
    assert (ENCAP_IPV4, ENCAP_IPV6, ENCAP_ARP) == (
        bytes.fromhex("08000000"), bytes.fromhex("86dd0000"), bytes.fromhex("08060000"))


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_fast_encap_agrees_with_record(ethertype: int, reserved: int) -> None:
    assert pack_encap(ethertype) == EncapHeader(type=ethertype).encode()
    wire = EncapHeader(type=ethertype, reserved=reserved).encode()
    assert unpack_encap(wire) == ethertype  # reserved is ignored on receive
    assert unpack_encap(b"\0" * 3 + wire, 3) == ethertype


@pytest.mark.parametrize("buf, offset", [(b"", 0), (b"\x08\x00\x00", 0), (b"\0" * 8, 6),
                                         (b"\0" * 8, -1)])
def test_encap_truncated(buf: bytes, offset: int) -> None:
    with pytest.raises(DecodeError) as e:
        unpack_encap(buf, offset)
    assert (e.value.fmt, e.value.field) == ("IPoIB", "length")


def test_encap_rejects_out_of_range() -> None:
    with pytest.raises(EncodeError):
        pack_encap(0x10000)


# --------------------------------------------------------------------------- HwAddr


def test_hwaddr_pack_and_linux_text() -> None:
    assert A_1001.pack() == bytes.fromhex("80000048") + GID_1001
    assert A_1001.pack() == A_1001.encode()
    assert str(A_1001) == LINUX_1001
    assert HwAddr.parse(LINUX_1001) == A_1001
    assert HwAddr.parse(LINUX_1001.upper()) == A_1001
    # tshark prints arp.src.hw as 40 bare hex digits
    assert HwAddr.parse("80000048fe800000000000000002c90300001001") == A_1001


def test_hwaddr_fields() -> None:
    assert A_1001.rc_capable and not A_1001.uc_capable
    assert HwAddr(flags=0x40).uc_capable
    assert not A_1001.is_multicast
    assert A_1001.guid == 0x0002C90300001001
    assert A_1001.subnet_prefix == 0xFE80_0000_0000_0000
    assert A_1001.describe() == "qpn 0x000048 gid fe80::2:c903:0:1001 [RC]"
    # hashable and compared by value: the neighbour table is keyed on it
    assert {A_1001: 1}[HwAddr.unpack(A_1001.pack())] == 1


def test_hwaddr_unpack_at_offset_and_qpn_mask() -> None:
    buf = b"xx" + bytes.fromhex("c0ffffff") + bytes(16)
    a = HwAddr.unpack(buf, 2)
    assert (a.flags, a.qpn) == (0xC0, 0xFFFFFF)


@pytest.mark.parametrize("text", [
    "", "80:00", LINUX_1001 + ":00", LINUX_1001.replace("48", "4g"),
    LINUX_1001.replace(":48:", ":048:"), "80000048fe80", "z" * 40,
])
def test_hwaddr_parse_rejects(text: str) -> None:
    with pytest.raises(DecodeError) as e:
        HwAddr.parse(text)
    assert e.value.fmt == "HwAddr"


@pytest.mark.parametrize("kw, field", [
    ({"flags": 256}, "flags"), ({"qpn": 1 << 24}, "qpn"), ({"qpn": -1}, "qpn"),
    ({"gid": b"\0" * 15}, "gid"),
])
def test_hwaddr_pack_rejects(kw: dict[str, object], field: str) -> None:
    with pytest.raises(EncodeError) as e:
        HwAddr(**kw).pack()  # type: ignore[arg-type]
    assert e.value.field == field


hwaddrs = st.builds(HwAddr, flags=st.integers(0, 255), qpn=st.integers(0, 0xFFFFFF),
                    gid=st.binary(min_size=16, max_size=16))


@given(hwaddrs)
def test_hwaddr_roundtrips(a: HwAddr) -> None:
    assert HwAddr.unpack(a.pack()) == a == HwAddr.decode(a.encode())
    assert HwAddr.parse(str(a)) == a
    assert a.is_multicast == (a.gid[0] == 0xFF)


@given(st.binary(max_size=40), st.integers(-2, 30))
def test_hwaddr_unpack_raises_only_decode_error(buf: bytes, offset: int) -> None:
    try:
        a = HwAddr.unpack(buf, offset)
    except DecodeError:
        assert offset < 0 or len(buf) - offset < 20
    else:
        assert a.pack() == buf[offset : offset + 20]


@given(st.text(max_size=70))
def test_hwaddr_parse_raises_only_decode_error(text: str) -> None:
    try:
        HwAddr.parse(text)
    except DecodeError:
        pass


# --------------------------------------------------------------------------- MGIDs

BCAST = broadcast_hwaddr()


@pytest.mark.parametrize("pkey, scope, mgid", [
    (0xFFFF, 2, "ff12:401b:ffff::ffff:ffff"),
    (0x8001, 2, "ff12:401b:8001::ffff:ffff"),
    (0x0001, 2, "ff12:401b:8001::ffff:ffff"),  # full-member bit forced
    (0x7FFF, 2, "ff12:401b:ffff::ffff:ffff"),
    (0xFFFF, 5, "ff15:401b:ffff::ffff:ffff"),
    (0x8002, 0xE, "ff1e:401b:8002::ffff:ffff"),
])
def test_broadcast_mgid(pkey: int, scope: int, mgid: str) -> None:
    assert broadcast_mgid(pkey, scope) == g(mgid)
    a = broadcast_hwaddr(pkey, scope)
    assert a.pack()[:4] == b"\x00\xff\xff\xff"
    assert a.gid == g(mgid) and a.is_multicast
    assert mgid_pkey(a.gid) == pkey | 0x8000 and mgid_scope(a.gid) == scope


def test_broadcast_hwaddr_linux_bytes() -> None:
    # Linux ipv4_bcast_addr with the P_Key in bytes 8-9
    assert broadcast_hwaddr(0x8001).pack() == bytes.fromhex(
        "00ffffff ff12401b 80010000 00000000 ffffffff")


@pytest.mark.parametrize("pkey, scope", [(0x10000, 2), (-1, 2), (0xFFFF, 16)])
def test_broadcast_mgid_rejects(pkey: int, scope: int) -> None:
    with pytest.raises(EncodeError):
        broadcast_mgid(pkey, scope)


# Every row of wire-formats.md §7.3, plus the brief's own vectors.
MAPPING = [
    ("224.1.2.3", 0xFFFF, "ff12:401b:ffff::1:203"),
    ("239.255.255.250", 0xFFFF, "ff12:401b:ffff::fff:fffa"),
    ("224.0.0.1", 0xFFFF, "ff12:401b:ffff:0000:0000:0000:0000:0001"),
    ("224.0.0.251", 0xFFFF, "ff12:401b:ffff:0000:0000:0000:0000:00fb"),
    ("239.1.2.3", 0xFFFF, "ff12:401b:ffff:0000:0000:0000:0f01:0203"),
    ("255.255.255.255", 0xFFFF, "ff12:401b:ffff:0000:0000:0000:ffff:ffff"),
    ("ff02::1", 0xFFFF, "ff12:601b:ffff:0000:0000:0000:0000:0001"),
    ("ff02::1:ff00:2002", 0xFFFF, "ff12:601b:ffff:0000:0000:0001:ff00:2002"),
    ("ff05::1:3", 0xFFFF, "ff12:601b:ffff:0000:0000:0000:0001:0003"),
    ("224.0.0.1", 0x8001, "ff12:401b:8001:0000:0000:0000:0000:0001"),
]


@pytest.mark.parametrize("group, pkey, mgid", MAPPING)
def test_mapping_table(group: str, pkey: int, mgid: str) -> None:
    bcast = broadcast_hwaddr(pkey)
    a = ipv6_mcast_hwaddr(group, bcast) if ":" in group else ipv4_hwaddr(group, bcast)
    assert a.gid == g(mgid)
    assert (a.flags, a.qpn) == (0, 0xFFFFFF)
    assert mcast_addr_is_valid(a, bcast)


def test_hwaddr_of_224_0_0_1() -> None:
    assert str(ipv4_hwaddr("224.0.0.1", BCAST)) == (
        "00:ff:ff:ff:ff:12:40:1b:ff:ff:00:00:00:00:00:00:00:00:00:01")


def test_subnet_broadcast_uses_the_broadcast_gid() -> None:
    net = IPv4Network("10.0.0.0/24")
    assert ipv4_hwaddr("10.0.0.255", BCAST, net) == BCAST
    with pytest.raises(EncodeError):  # not broadcast on a /31, and not multicast
        ipv4_hwaddr("10.0.0.1", BCAST, IPv4Network("10.0.0.0/31"))


def test_scope_and_pkey_come_from_the_broadcast_address() -> None:
    bcast = broadcast_hwaddr(0x8005, scope=5)
    assert ipv4_mcast_mgid("224.0.0.1", bcast) == g("ff15:401b:8005::1")
    # the IPv6 group's own scope (2 here, 0xe below) is not used
    assert ipv6_mcast_mgid("ff02::1", bcast) == g("ff15:601b:8005::1")
    assert ipv6_mcast_mgid("ff0e::101", bcast) == g("ff15:601b:8005::101")


@given(st.integers(0xE0000000, 0xEFFFFFFF))
def test_ipv4_mapping_keeps_the_low_28_bits(n: int) -> None:
    mgid = ipv4_mcast_mgid(IPv4Address(n), BCAST)
    assert mgid[:6] == g("ff12:401b:ffff::")[:6]
    assert mgid[6:12] == bytes(6)
    assert int.from_bytes(mgid[12:], "big") == n & 0x0FFFFFFF


@given(st.binary(min_size=15, max_size=15))
def test_ipv6_mapping_keeps_the_low_80_bits(tail: bytes) -> None:
    group = IPv6Address(b"\xff" + tail)
    assert ipv6_mcast_mgid(group, BCAST) == bytes.fromhex("ff12601bffff") + group.packed[6:]


@pytest.mark.parametrize("bad", ["10.0.0.1", "fe80::1", "255.255.255.255"])
def test_mapping_rejects_unicast(bad: str) -> None:
    with pytest.raises(EncodeError):
        if ":" in bad:
            ipv6_mcast_mgid(bad, BCAST)
        else:
            ipv4_mcast_mgid(bad, BCAST)


def test_mcast_addr_filter() -> None:
    other_pkey = ipv4_hwaddr("224.0.0.1", broadcast_hwaddr(0x8001))
    other_scope = ipv4_hwaddr("224.0.0.1", broadcast_hwaddr(scope=5))
    assert not mcast_addr_is_valid(other_pkey, BCAST)
    assert not mcast_addr_is_valid(other_scope, BCAST)
    assert not mcast_addr_is_valid(A_1001, BCAST)
    with pytest.raises(EncodeError):
        mcast_hwaddr(GID_1001)


# --------------------------------------------------------------------------- interface ID


@pytest.mark.parametrize("guid, ifid, ll", [
    (0x0002C90300001001, "0202c90300001001", "fe80::202:c903:0:1001"),
    (0x0202C90300001001, "0202c90300001001", "fe80::202:c903:0:1001"),  # OR, not XOR
    (0, "0200000000000000", "fe80::200:0:0:0"),
])
def test_interface_id(guid: int, ifid: str, ll: str) -> None:
    assert interface_id(guid).hex() == ifid
    assert link_local_address(guid) == IPv6Address(ll)


def test_interface_id_rejects_wide_guid() -> None:
    with pytest.raises(EncodeError):
        interface_id(1 << 64)


@given(st.binary(max_size=8), st.integers(-2, 10))
def test_encap_decoders_raise_only_decode_error(buf: bytes, offset: int) -> None:
    for decode in (unpack_encap, EncapHeader.decode):
        try:
            decode(buf, offset)
        except DecodeError as e:
            assert e.field == "length"
