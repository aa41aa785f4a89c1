"""The IP/UDP/ICMP/IGMP/MLD slice the driver reads and writes (wire/ip.py)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire import ip
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.ip import GroupRecord, GroupRecordType, IgmpType, IpProto, MldType

LL_A = IPv6Address("fe80::202:c903:0:1001")


def naive_checksum(data: bytes) -> int:
    """RFC 1071 the slow way: add 16-bit words, fold carries, complement."""
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += data[i] << 8 | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# --------------------------------------------------------------------------- checksums

# A well-known IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) with checksum 0xb861.
KNOWN_V4 = bytes.fromhex("45000073000040004011b861c0a80001c0a800c7")


def test_known_ipv4_header_checksum() -> None:
    assert ip.internet_checksum(KNOWN_V4) == 0
    zeroed = KNOWN_V4[:10] + b"\0\0" + KNOWN_V4[12:]
    assert ip.internet_checksum(zeroed) == 0xB861


@given(st.binary(max_size=300))
def test_checksum_matches_the_naive_sum(data: bytes) -> None:
    assert ip.internet_checksum(data) == naive_checksum(data)


@pytest.mark.parametrize("data, want", [(b"", 0xFFFF), (b"\0\0", 0xFFFF), (b"\xff\xff", 0),
                                        (b"\xff\xff\xff\xff", 0), (b"\x01", 0xFEFF)])
def test_checksum_edge_cases(data: bytes, want: int) -> None:
    assert ip.internet_checksum(data) == want == naive_checksum(data)


def test_ipv6_pseudo_header_layout() -> None:
    ph = ip.pseudo_header("fe80::1", "ff02::1", 58, 32)
    assert ph == (IPv6Address("fe80::1").packed + IPv6Address("ff02::1").packed
                  + bytes.fromhex("00000020 000000 3a"))
    assert ip.pseudo_header("10.0.0.1", "10.0.0.2", 17, 9) == bytes.fromhex(
        "0a000001 0a000002 00 11 0009")


# --------------------------------------------------------------------------- IPv4


def test_build_and_parse_ipv4() -> None:
    pkt = ip.build_ipv4("10.0.0.1", "10.0.0.2", IpProto.UDP, b"hello", ttl=7, tos=0x10,
                        identification=0x1234, dont_fragment=True)
    assert naive_checksum(pkt[:20]) == 0
    assert pkt[:4] == bytes.fromhex("4510 0019")
    assert pkt[6] == 0x40  # DF
    p = ip.parse_ipv4(pkt + b"trailer", verify_checksum=True)
    assert (p.version, p.src, p.dst, p.protocol) == (
        4, IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"), 17)
    assert p.payload == b"hello" and p.hop_limit == 7 and not p.fragment
    assert ip.parse_ip(pkt) == p


def test_ipv4_options_are_skipped() -> None:
    pkt = ip.build_ipv4("10.0.0.1", "224.0.0.22", IpProto.IGMP, b"x" * 8, ttl=1,
                        options=ip.ROUTER_ALERT_V4)
    assert pkt[0] == 0x46 and pkt[20:24] == ip.ROUTER_ALERT_V4
    assert ip.parse_ipv4(pkt, verify_checksum=True).payload == b"x" * 8


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b"\x55" + b[1:], "version"),
    (lambda b: b"\x44" + b[1:], "ihl"),
    (lambda b: b[:2] + b"\x00\x13" + b[4:], "total_length"),
    (lambda b: b[:2] + b"\x01\x00" + b[4:], "length"),
    (lambda b: b[:10] + b"\x00\x00" + b[12:], "checksum"),
    (lambda b: b[:19], "length"),
])
def test_ipv4_errors(mutate, field) -> None:  # type: ignore[no-untyped-def]
    pkt = ip.build_ipv4("10.0.0.1", "10.0.0.2", 17, b"abc")
    with pytest.raises(DecodeError) as e:
        ip.parse_ipv4(mutate(pkt), verify_checksum=True)
    assert e.value.field == field


def test_non_first_fragment_is_flagged() -> None:
    pkt = bytearray(ip.build_ipv4("10.0.0.1", "10.0.0.2", 2, b"\0" * 8))
    pkt[7] = 1  # fragment offset 1
    assert ip.parse_ipv4(bytes(pkt)).fragment
    assert ip.parse_membership(bytes(pkt)) is None


# --------------------------------------------------------------------------- IPv6


def test_build_and_parse_ipv6() -> None:
    pkt = ip.build_ipv6(LL_A, "ff02::1", IpProto.UDP, b"abc", hop_limit=255,
                        traffic_class=0xAB, flow_label=0xCDEF1)
    assert pkt[:4] == bytes.fromhex("6abcdef1")
    assert pkt[4:8] == bytes.fromhex("0003 11 ff")
    p = ip.parse_ipv6(pkt)
    assert (p.version, p.src, p.dst, p.protocol, p.payload, p.hop_limit) == (
        6, LL_A, IPv6Address("ff02::1"), 17, b"abc", 255)


def test_ipv6_extension_headers_are_walked() -> None:
    hbh = bytes.fromhex("3a00 0502 0000 0100")  # router alert (MLD) + PadN
    dst = bytes.fromhex("2c01") + bytes(14)  # destination options, 16 bytes -> fragment
    frag = bytes.fromhex("3a00 0001 12345678")  # offset 0, more fragments
    body = b"\x80\x00\x00\x00"
    pkt = ip.build_ipv6(LL_A, "ff02::1", IpProto.HOPOPTS, hbh + body)
    p = ip.parse_ipv6(pkt)
    assert p.protocol == IpProto.ICMPV6 and p.payload == body and not p.fragment
    hbh2 = bytes.fromhex("3c00 0502 0000 0100")
    p2 = ip.parse_ipv6(ip.build_ipv6(LL_A, "ff02::1", 0, hbh2 + dst + frag + body))
    assert p2.protocol == IpProto.ICMPV6 and p2.payload == body and not p2.fragment
    later = bytes.fromhex("3a00 0009 12345678")  # offset 1
    p3 = ip.parse_ipv6(ip.build_ipv6(LL_A, "ff02::1", IpProto.FRAGMENT, later + body))
    assert p3.fragment


@pytest.mark.parametrize("pkt", [
    ip.build_ipv6(LL_A, "ff02::1", 0, b"\x3a\x01" + bytes(6)),  # HBH says 16 bytes, has 8
    ip.build_ipv6(LL_A, "ff02::1", 0, b"\x3a"),
    ip.build_ipv6(LL_A, "ff02::1", 17, b"abc")[:-1],  # shorter than payload_length
    b"\x40" + bytes(39),  # version 4 in an IPv6 parse
])
def test_ipv6_errors(pkt: bytes) -> None:
    with pytest.raises(DecodeError):
        ip.parse_ipv6(pkt)


def test_peek_destination() -> None:
    v4 = ip.build_ipv4("10.0.0.1", "10.0.0.2", 17, b"")
    v6 = ip.build_ipv6(LL_A, "fe80::2", 17, b"")
    assert ip.peek_destination(v4) == (0x0800, bytes.fromhex("0a000002"))
    assert ip.peek_destination(v6) == (0x86DD, IPv6Address("fe80::2").packed)
    for bad in (b"", v4[:19], v6[:39], b"\x50" + bytes(40)):
        with pytest.raises(DecodeError):
            ip.peek_destination(bad)


def test_address_errors_are_encode_errors() -> None:
    with pytest.raises(EncodeError):
        ip.build_ipv4("fe80::1", "10.0.0.1", 17, b"")
    with pytest.raises(EncodeError):
        ip.build_ipv6(b"\0" * 4, "fe80::1", 17, b"")
    with pytest.raises(EncodeError):
        ip.build_ipv4("10.0.0.1", "10.0.0.2", 17, b"", options=bytes(44))


# --------------------------------------------------------------------------- UDP, ICMP


@pytest.mark.parametrize("src, dst", [("10.0.0.1", "10.0.0.2"), (LL_A, "ff02::1:2")])
def test_udp(src: str, dst: str) -> None:
    seg = ip.build_udp(src, dst, 68, 67, b"payload")
    assert seg[:6] == bytes.fromhex("0044 0043 000f")
    proto = 17
    assert naive_checksum(ip.pseudo_header(src, dst, proto, len(seg)) + seg) == 0
    h, payload = ip.parse_udp(seg + b"pad")
    assert (h.sport, h.dport, h.length, payload) == (68, 67, 15, b"payload")
    p = ip.parse_ip(ip.udp_packet(src, dst, 68, 67, b"payload", ttl=9))
    assert p.protocol == 17 and p.payload == seg and p.hop_limit == 9


def test_udp_errors() -> None:
    seg = ip.build_udp("10.0.0.1", "10.0.0.2", 1, 2, b"abc")
    with pytest.raises(DecodeError):
        ip.parse_udp(seg[:-1])
    with pytest.raises(DecodeError):
        ip.parse_udp(seg[:4] + b"\x00\x07" + seg[6:])


def test_icmp_checksums() -> None:
    echo = ip.build_icmpv4(8, 0, bytes.fromhex("12340001") + b"ping")
    assert naive_checksum(echo) == 0
    m = ip.build_icmpv6(LL_A, "fe80::2", 128, 0, bytes.fromhex("12340001"))
    ph = ip.pseudo_header(LL_A, "fe80::2", 58, len(m))
    assert naive_checksum(ph + m) == 0
    assert ip.icmpv6_checksum_ok(LL_A, "fe80::2", m)
    assert not ip.icmpv6_checksum_ok(LL_A, "fe80::3", m)
    assert not ip.icmpv6_checksum_ok(LL_A, "fe80::2", m[:3])
    h, rest = ip.parse_icmp(m)
    assert (h.type, h.code, rest) == (128, 0, bytes.fromhex("12340001"))


# --------------------------------------------------------------------------- IGMP


def test_igmpv2_report_and_leave() -> None:
    rep = ip.parse_igmp(bytes.fromhex("16 00 fa04 e00000fb"))
    assert (rep.version, rep.joined, rep.left) == (2, [IPv4Address("224.0.0.251")], [])
    leave = ip.parse_igmp(ip.build_igmpv2(IgmpType.V2_LEAVE, "239.1.2.3"))
    assert (leave.version, leave.joined, leave.left) == (2, [], [IPv4Address("239.1.2.3")])
    assert ip.parse_igmp(bytes.fromhex("12 00 0000 e0000001")).version == 1
    assert naive_checksum(ip.build_igmpv2(IgmpType.V2_REPORT, "224.0.0.251")) == 0


def test_igmpv3_report_hand_bytes() -> None:
    # two records: EXCLUDE {} for 224.0.0.251 (join), TO_IN {} for 239.1.2.3 (leave),
    # then ALLOW {10.0.0.9} for 232.1.1.1 (SSM join) with one aux word
    msg = bytes.fromhex(
        "22 00 0000 0000 0003"
        "04 00 0000 e00000fb"
        "03 00 0000 ef010203"
        "05 01 0001 e8010101 0a000009 deadbeef"
    )
    r = ip.parse_igmp(msg)
    assert r.version == 3 and r.type == IgmpType.V3_REPORT
    assert r.joined == [IPv4Address("224.0.0.251"), IPv4Address("232.1.1.1")]
    assert r.left == [IPv4Address("239.1.2.3")]
    assert r.records[2].sources == (IPv4Address("10.0.0.9"),)


def test_igmpv3_builder_matches_parser() -> None:
    recs = [GroupRecord(GroupRecordType.CHANGE_TO_EXCLUDE, IPv4Address("239.255.255.250")),
            GroupRecord(GroupRecordType.MODE_IS_INCLUDE, IPv4Address("232.0.0.1"),
                        (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")))]
    m = ip.build_igmpv3_report(recs)
    assert naive_checksum(m) == 0
    assert ip.parse_igmp(m).records == tuple(recs)


def test_record_semantics() -> None:
    g = IPv4Address("239.0.0.1")
    s = (IPv4Address("10.0.0.1"),)
    want = {1: (False, True), 2: (True, True), 3: (False, True), 4: (True, True),
            5: (None, True), 6: (None, None)}
    for t, (empty, with_src) in want.items():
        assert GroupRecord(t, g).joined is empty
        assert GroupRecord(t, g, s).joined is with_src


def test_igmp_query_and_unknown_types_carry_no_records() -> None:
    q = ip.parse_igmp(bytes.fromhex("11 64 0000 00000000"))
    assert (q.version, q.records) == (0, ())
    assert ip.parse_igmp(bytes.fromhex("13 00 0000 00000000")).records == ()


@pytest.mark.parametrize("msg", [
    bytes.fromhex("16 00 0000 e000"),
    bytes.fromhex("22 00 0000 0000 0001 04 00 0000"),
    bytes.fromhex("22 00 0000 0000 0001 04 00 0001 e00000fb"),  # source missing
    bytes.fromhex("22 00 0000 0000 0001 04 01 0000 e00000fb"),  # aux word missing
])
def test_igmp_truncated(msg: bytes) -> None:
    with pytest.raises(DecodeError):
        ip.parse_igmp(msg)


# --------------------------------------------------------------------------- MLD

SN_1001 = IPv6Address("ff02::1:ff00:1001")


def linux_mldv2_packet(records_hex: str, count: int) -> bytes:
    """An MLDv2 report as Linux sends it: HBH router alert, then ICMPv6 type 143."""
    body = bytes.fromhex(f"8f 00 0000 0000 {count:04x}" + records_hex)
    body = ip.build_icmpv6(LL_A, ip.MLDV2_ROUTERS, 143, 0, body[4:])
    hbh = bytes.fromhex("3a00 0502 0000 0100")
    return ip.build_ipv6(LL_A, ip.MLDV2_ROUTERS, IpProto.HOPOPTS, hbh + body, hop_limit=1)


def test_mldv2_report_in_a_packet() -> None:
    pkt = linux_mldv2_packet(
        "04 00 0000 ff0200000000000000000001ff001001"
        "03 00 0000 ff050000000000000000000000010003", 2)
    r = ip.parse_membership(pkt)
    assert r is not None and (r.type, r.version) == (MldType.V2_REPORT, 2)
    assert r.joined == [SN_1001] and r.left == [IPv6Address("ff05::1:3")]


def test_mldv1_report_and_done() -> None:
    rep = ip.build_mld(LL_A, SN_1001, MldType.V1_REPORT, SN_1001)
    assert ip.icmpv6_checksum_ok(LL_A, SN_1001, rep) and len(rep) == 24
    assert ip.parse_mld(rep).joined == [SN_1001]
    done = ip.build_mld(LL_A, "ff02::2", MldType.V1_DONE, SN_1001)
    r = ip.parse_mld(done)
    assert (r.version, r.left) == (1, [SN_1001])


def test_mldv2_builder_matches_parser() -> None:
    recs = [GroupRecord(GroupRecordType.MODE_IS_EXCLUDE, SN_1001),
            GroupRecord(GroupRecordType.ALLOW_NEW_SOURCES, IPv6Address("ff3e::8000:1"),
                        (IPv6Address("2001:db8::1"),))]
    m = ip.build_mldv2_report(LL_A, recs)
    assert ip.icmpv6_checksum_ok(LL_A, ip.MLDV2_ROUTERS, m)
    assert ip.parse_mld(m).records == tuple(recs)


def test_membership_of_other_packets_is_none() -> None:
    echo = ip.build_icmpv6(LL_A, "fe80::2", 128, 0, b"\0\0\0\0")
    assert ip.parse_membership(ip.build_ipv6(LL_A, "fe80::2", 58, echo)) is None
    assert ip.parse_membership(ip.build_ipv4("10.0.0.1", "10.0.0.2", 17, b"")) is None
    igmp = ip.build_igmpv2(IgmpType.V2_REPORT, "239.1.1.1")
    pkt = ip.build_ipv4("10.0.0.1", "239.1.1.1", IpProto.IGMP, igmp, ttl=1,
                        options=ip.ROUTER_ALERT_V4)
    r = ip.parse_membership(pkt)
    assert r is not None and r.joined == [IPv4Address("239.1.1.1")]
    q = ip.build_mld(LL_A, "ff02::1", MldType.QUERY, "::")
    r = ip.parse_membership(ip.build_ipv6(LL_A, "ff02::1", 58, q))
    assert r is not None and r.records == ()


# --------------------------------------------------------------------------- robustness

DECODERS = [ip.parse_ip, ip.parse_ipv4, ip.parse_ipv6, ip.parse_udp, ip.parse_icmp,
            ip.parse_igmp, ip.parse_mld, ip.parse_membership, ip.peek_destination]


@pytest.mark.parametrize("decode", DECODERS, ids=lambda f: f.__name__)
@given(buf=st.binary(max_size=120))
def test_random_input_raises_only_decode_error(decode, buf: bytes) -> None:  # type: ignore[no-untyped-def]
    try:
        decode(buf)
    except DecodeError:
        pass


VALID = [
    ip.build_ipv4("10.0.0.1", "224.0.0.22", IpProto.IGMP,
                  ip.build_igmpv3_report([GroupRecord(4, IPv4Address("239.9.9.9"),
                                                      (IPv4Address("1.2.3.4"),))])),
    linux_mldv2_packet("04 00 0000 ff0200000000000000000001ff001001", 1),
    ip.udp_packet(LL_A, "ff02::1:2", 546, 547, b"dhcpv6"),
]


@given(st.sampled_from(VALID), st.data())
def test_truncated_and_mutated_packets(pkt: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(pkt)))
    at = data.draw(st.integers(0, len(pkt) - 1))
    byte = data.draw(st.integers(0, 255))
    for buf in (pkt[:cut], pkt[:at] + bytes((byte,)) + pkt[at + 1:], pkt + b"\0" * 7):
        try:
            ip.parse_membership(buf)
        except DecodeError:
            pass
