"""IPv6 neighbour discovery with IPoIB's 24-byte link-layer option (wire-formats.md §7.8)."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire import ip, nd
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.ipoib import HwAddr, link_local_address
from ipoib.wire.nd import NdOptType, NdType, PrefixOption

A = HwAddr(qpn=0x48, gid=bytes.fromhex("fe800000000000000002c90300001001"))
B = HwAddr(flags=0x80, qpn=0x49, gid=bytes.fromhex("fe800000000000000002c90300002002"))
LL_A = link_local_address(0x0002C90300001001)
LL_B = link_local_address(0x0002C90300002002)
SN_B = nd.solicited_node(LL_B)

OPTION_EXAMPLE = bytes.fromhex("01 03 0000 00000048 fe80000000000000 0002c90300001001")


def test_option_example() -> None:
    assert nd.lla_option(NdOptType.SOURCE_LLA, A) == OPTION_EXAMPLE
    assert len(OPTION_EXAMPLE) == 24
    o = nd.LlaOption.decode(OPTION_EXAMPLE)
    assert (o.type, o.length, HwAddr.unpack(o.address)) == (1, 3, A)


@pytest.mark.parametrize("addr, sn", [
    ("fe80::202:c903:0:2002", "ff02::1:ff00:2002"),
    ("2001:db8::abcd:ef12:3456", "ff02::1:ff12:3456"),
])
def test_solicited_node(addr: str, sn: str) -> None:
    assert nd.solicited_node(addr) == IPv6Address(sn)
    assert nd.solicited_node(IPv6Address(addr).packed) == IPv6Address(sn)


def test_neighbour_solicitation_bytes() -> None:
    m = nd.build_ns(LL_A, SN_B, LL_B, A)
    assert m[0:2] == b"\x87\x00"
    assert m[4:8] == bytes(4)
    assert m[8:24] == LL_B.packed
    assert m[24:] == OPTION_EXAMPLE
    assert ip.icmpv6_checksum_ok(LL_A, SN_B, m)
    msg = nd.parse(m, LL_A, SN_B, hop_limit=255)
    assert msg.type == NdType.NEIGHBOR_SOLICITATION and msg.target == LL_B
    assert msg.source_lladdr == A == msg.lladdr and msg.target_lladdr is None


def test_neighbour_advertisement_bytes() -> None:
    m = nd.build_na(LL_B, LL_A, LL_B, B, solicited=True, override=True)
    assert m[0:2] == b"\x88\x00" and m[4] == 0x60  # S and O
    assert m[24:26] == b"\x02\x03" and m[26:28] == b"\0\0"
    assert HwAddr.unpack(m, 28) == B
    msg = nd.parse(m, LL_B, LL_A, hop_limit=255)
    h = msg.header
    assert isinstance(h, nd.NaHeader)
    assert (h.router, h.solicited, h.override) == (0, 1, 1)
    assert msg.target_lladdr == B == msg.lladdr and msg.target == LL_B
    r = nd.parse(nd.build_na(LL_B, nd.ALL_NODES, LL_B, B, router=True, solicited=False))
    assert isinstance(r.header, nd.NaHeader) and r.header.router == 1 and m[4] & 0x80 == 0


def test_dad_probe_has_no_source_option() -> None:
    m = nd.build_ns("::", SN_B, LL_B, None)
    assert len(m) == 24
    assert nd.parse(m, "::", SN_B).source_lladdr is None
    with pytest.raises(EncodeError):
        nd.build_ns("::", SN_B, LL_B, A)
    forged = ip.build_icmpv6("::", SN_B, 135, 0, m[4:24] + OPTION_EXAMPLE)
    with pytest.raises(DecodeError) as e:
        nd.parse(forged, "::", SN_B)
    assert e.value.field == "options"


def test_solicited_na_to_multicast_is_refused() -> None:
    with pytest.raises(EncodeError):
        nd.build_na(LL_B, nd.ALL_NODES, LL_B, B, solicited=True)
    m = nd.build_na(LL_B, LL_A, LL_B, B)  # solicited, but checked against a multicast dst
    with pytest.raises(DecodeError) as e:
        nd.parse(ip.build_icmpv6(LL_B, nd.ALL_NODES, 136, 0, m[4:]), LL_B, nd.ALL_NODES)
    assert e.value.field == "solicited"


def test_router_solicitation_and_advertisement() -> None:
    rs = nd.build_rs(LL_A, A)
    msg = nd.parse(rs, LL_A, nd.ALL_ROUTERS)
    assert msg.type == NdType.ROUTER_SOLICITATION and msg.source_lladdr == A
    pfx = PrefixOption(prefix=IPv6Address("2001:db8:1::").packed, valid_lifetime=600,
                       preferred_lifetime=300)
    ra = nd.build_ra(LL_B, B, cur_hop_limit=64, router_lifetime=1800, mtu=2044,
                     prefixes=(pfx,), other=True)
    msg = nd.parse(ra, LL_B, nd.ALL_NODES, hop_limit=255)
    h = msg.header
    assert isinstance(h, nd.RaHeader)
    assert (h.cur_hop_limit, h.managed, h.other, h.router_lifetime) == (64, 0, 1, 1800)
    assert msg.source_lladdr == B and msg.mtu == 2044
    assert msg.prefixes == [pfx] and msg.target is None
    assert [o.type for o in msg.options] == [1, 5, 3]
    assert ra[16:18] == b"\x01\x03" and ra[40:48] == bytes.fromhex("0501 0000 000007fc")


def test_unknown_options_are_kept_and_skipped() -> None:
    nonce = bytes.fromhex("0e01 0102 0304 0506")  # RFC 3971 nonce option
    m = ip.build_icmpv6(LL_A, SN_B, 135, 0, bytes(4) + LL_B.packed + nonce + OPTION_EXAMPLE)
    msg = nd.parse(m, LL_A, SN_B)
    assert [o.type for o in msg.options] == [14, 1]
    assert msg.options[0].data == nonce
    assert msg.source_lladdr == A


def ns_with_options(opts: bytes) -> bytes:
    return ip.build_icmpv6(LL_A, SN_B, 135, 0, bytes(4) + LL_B.packed + opts)


@pytest.mark.parametrize("opts, fmt, field, offset", [
    (bytes.fromhex("0100") + bytes(6), "ND option", "length", 25),        # length 0
    (bytes.fromhex("0101") + bytes(6), "ND link-layer address option", "length", 24),
    (OPTION_EXAMPLE[:20], "ND option", "length", 24),                     # overrun
    (bytes.fromhex("05020000") + bytes(12), "ND option", "length", 25),   # MTU of 16 bytes
    (b"\x01", "ND option", "length", 24),
])
def test_bad_options(opts: bytes, fmt: str, field: str, offset: int) -> None:
    with pytest.raises(DecodeError) as e:
        nd.parse(ns_with_options(opts))
    assert (e.value.fmt, e.value.field, e.value.offset) == (fmt, field, offset)


def test_receiver_checks() -> None:
    m = nd.build_ns(LL_A, SN_B, LL_B, A)
    cases = [
        (lambda: nd.parse(m, LL_A, SN_B, hop_limit=64), "hop_limit"),
        (lambda: nd.parse(m, LL_B, SN_B), "checksum"),
        (lambda: nd.parse(m[:1] + b"\x01" + m[2:]), "code"),
        (lambda: nd.parse(b"\x80" + m[1:]), "type"),
        (lambda: nd.parse(nd.build_ns(LL_A, SN_B, "ff02::1", A)), "target"),
        (lambda: nd.parse(m[:20]), "length"),
    ]
    for call, field in cases:
        with pytest.raises(DecodeError) as e:
            call()
        assert e.value.field == field


def test_packet_roundtrip_and_hop_limit() -> None:
    m = nd.build_ns(LL_A, SN_B, LL_B, A)
    pkt = nd.nd_packet(LL_A, SN_B, m)
    assert pkt[7] == 255
    assert nd.parse_packet(pkt).source_lladdr == A
    bad = ip.build_ipv6(LL_A, SN_B, ip.IpProto.ICMPV6, m, hop_limit=64)
    with pytest.raises(DecodeError) as e:
        nd.parse_packet(bad)
    assert e.value.field == "hop_limit"
    with pytest.raises(DecodeError):
        nd.parse_packet(ip.build_ipv6(LL_A, SN_B, 17, m, hop_limit=255))


def test_set_lla_option_rewrites_a_kernel_ns() -> None:
    # What the host stack on a TUN device sends: an NS with no link-layer option,
    # then one with an Ethernet-sized (length 1) option, followed by an unknown option.
    bare = nd.build_ns(LL_A, SN_B, LL_B, None)
    eth = ns_with_options(bytes.fromhex("0101 020000000001") + bytes.fromhex("0e01") + bytes(6))
    for msg in (bare, eth):
        out = nd.set_lla_option(LL_A, SN_B, msg, A)
        parsed = nd.parse(out, LL_A, SN_B)
        assert parsed.source_lladdr == A
        assert parsed.options[0].type == 1
    assert nd.set_lla_option(LL_A, SN_B, bare, A) == nd.build_ns(LL_A, SN_B, LL_B, A)
    na = nd.build_na(LL_B, LL_A, LL_B, None)
    assert nd.parse(nd.set_lla_option(LL_B, LL_A, na, B)).target_lladdr == B
    dad = nd.build_ns("::", SN_B, LL_B, None)
    assert nd.set_lla_option("::", SN_B, dad, A) == dad
    with pytest.raises(DecodeError):
        nd.set_lla_option(LL_A, SN_B, b"\x80\0\0\0", A)


hwaddrs = st.builds(HwAddr, flags=st.integers(0, 255), qpn=st.integers(0, 0xFFFFFF),
                    gid=st.binary(min_size=16, max_size=16))
unicast6 = st.binary(min_size=16, max_size=16).filter(lambda b: b[0] != 0xFF).map(IPv6Address)


@given(unicast6, unicast6, hwaddrs, st.booleans(), st.booleans())
def test_na_roundtrip(src: IPv6Address, target: IPv6Address, hw: HwAddr, r: bool,
                      o: bool) -> None:
    m = nd.build_na(src, LL_A, target, hw, router=r, override=o)
    msg = nd.parse(m, src, LL_A, hop_limit=255)
    h = msg.header
    assert isinstance(h, nd.NaHeader)
    assert (h.router, h.solicited, h.override) == (r, 1, o)
    assert (msg.target, msg.target_lladdr) == (target, hw)


@given(st.binary(max_size=100))
def test_random_input_raises_only_decode_error(buf: bytes) -> None:
    for call in (lambda: nd.parse(buf), lambda: nd.parse(buf, LL_A, SN_B),
                 lambda: nd.parse_packet(buf), lambda: nd.parse_options(buf, 0)):
        try:
            call()
        except DecodeError:
            pass


VALID = [nd.build_ns(LL_A, SN_B, LL_B, A), nd.build_na(LL_B, LL_A, LL_B, B),
         nd.build_ra(LL_B, B, mtu=2044, prefixes=(PrefixOption(),))]


@given(st.sampled_from(VALID), st.data())
def test_truncated_and_mutated(m: bytes, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(m)))
    at = data.draw(st.integers(0, len(m) - 1))
    byte = data.draw(st.integers(0, 255))
    for buf in (m[:cut], m[:at] + bytes((byte,)) + m[at + 1:]):
        try:
            msg = nd.parse(buf)
            _ = (msg.mtu, msg.prefixes, msg.lladdr, msg.target)
        except DecodeError:
            pass
