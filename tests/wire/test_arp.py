"""ARP over IPoIB (RFC 4391 §9, wire-formats.md §7.7)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire import arp
from ipoib.wire.arp import ArpOp, ArpPacket
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.ipoib import HwAddr

A = HwAddr(qpn=0x48, gid=bytes.fromhex("fe800000000000000002c90300001001"))
B = HwAddr(qpn=0x49, gid=bytes.fromhex("fe800000000000000002c90300002002"))

REQUEST = bytes.fromhex(
    "0020 0800 14 04 0001"
    "00000048 fe80000000000000 0002c90300001001  0a000001"
    "00000000 0000000000000000 0000000000000000  0a000002"
)
REPLY = bytes.fromhex(
    "0020 0800 14 04 0002"
    "00000049 fe80000000000000 0002c90300002002  0a000002"
    "00000048 fe80000000000000 0002c90300001001  0a000001"
)


def test_request_vector() -> None:
    assert len(REQUEST) == 56
    assert arp.build_request(A, "10.0.0.1", "10.0.0.2") == REQUEST
    p = arp.parse(REQUEST)
    assert p.is_request and not p.is_gratuitous and not p.is_probe
    assert p.sender_hw == A and p.sender_ip == IPv4Address("10.0.0.1")
    assert p.target_hw == HwAddr() and p.target_ip == IPv4Address("10.0.0.2")


def test_reply_vector() -> None:
    assert arp.build_reply(B, "10.0.0.2", A, "10.0.0.1") == REPLY
    p = arp.parse(REPLY)
    assert p.oper == ArpOp.REPLY and not p.is_request
    assert (p.sender_hw, p.target_hw) == (B, A)
    assert (str(p.sender_ip), str(p.target_ip)) == ("10.0.0.2", "10.0.0.1")


def test_reply_to_request() -> None:
    assert arp.reply_to(arp.parse(REQUEST), B) == REPLY


def test_gratuitous_and_probe() -> None:
    p = arp.parse(arp.build_gratuitous(A, "10.0.0.1"))
    assert p.is_gratuitous and p.is_request and p.target_ip == IPv4Address("10.0.0.1")
    assert arp.parse(arp.build_request(A, "0.0.0.0", "10.0.0.9")).is_probe


def test_trailing_bytes_and_offset() -> None:
    assert arp.parse(b"\xee" * 4 + REQUEST + b"\0" * 8, 4) == arp.parse(REQUEST)


@pytest.mark.parametrize("at, value, field", [
    (0, b"\x00\x01", "htype"),   # Ethernet
    (2, b"\x86\xdd", "ptype"),
    (4, b"\x06", "hlen"),
    (5, b"\x10", "plen"),
    (6, b"\x00\x03", "oper"),    # RARP request
    (6, b"\x00\x00", "oper"),
])
def test_validation(at: int, value: bytes, field: str) -> None:
    bad = REQUEST[:at] + value + REQUEST[at + len(value):]
    with pytest.raises(DecodeError) as e:
        arp.parse(b"\0\0" + bad, 2)
    assert (e.value.fmt, e.value.field, e.value.offset) == ("ARP", field, at + 2)


def test_ethernet_arp_is_wrong_htype_not_truncated() -> None:
    eth = bytes.fromhex("0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002")
    with pytest.raises(DecodeError) as e:
        arp.parse(eth)
    assert e.value.field == "htype"


@pytest.mark.parametrize("n", [0, 1, 7, 8, 55])
def test_truncated(n: int) -> None:
    with pytest.raises(DecodeError) as e:
        arp.parse(REQUEST[:n])
    assert e.value.field == "length"


def test_build_rejects_bad_addresses() -> None:
    with pytest.raises(EncodeError):
        arp.build_request(A, b"\x0a\0\0", "10.0.0.2")
    with pytest.raises(EncodeError):
        arp.build_request(A, "10.0.0.1", "fe80::1")


hwaddrs = st.builds(HwAddr, flags=st.integers(0, 255), qpn=st.integers(0, 0xFFFFFF),
                    gid=st.binary(min_size=16, max_size=16))
ips = st.binary(min_size=4, max_size=4)


@given(st.sampled_from([1, 2]), hwaddrs, ips, hwaddrs, ips)
def test_roundtrip(oper: int, sha: HwAddr, spa: bytes, tha: HwAddr, tpa: bytes) -> None:
    wire = arp.build(oper, sha, spa, tha, tpa)
    p = arp.parse(wire)
    assert (p.oper, p.sender_hw, p.spa, p.target_hw, p.tpa) == (oper, sha, spa, tha, tpa)
    assert p == ArpPacket.decode(wire)


@given(st.binary(max_size=80))
def test_random_input_raises_only_decode_error(buf: bytes) -> None:
    try:
        arp.parse(buf)
    except DecodeError:
        pass


@given(st.integers(0, 56), st.binary(min_size=1, max_size=8))
def test_mutated_vector_raises_only_decode_error(at: int, junk: bytes) -> None:
    buf = REQUEST[:at] + junk + REQUEST[at + len(junk):]
    try:
        p = arp.parse(buf)
    except DecodeError:
        return
    assert (p.htype, p.ptype, p.hlen, p.plen) == (32, 0x0800, 20, 4)
