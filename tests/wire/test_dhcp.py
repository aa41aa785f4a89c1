"""DHCPv4 over IPoIB (RFC 4390, wire-formats.md §7.10)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire import dhcp, ip
from ipoib.wire.dhcp import BootpHeader, MessageType, Opt
from ipoib.wire.errors import DecodeError, EncodeError

GUID = 0x0002C90300001001


def test_client_id_form() -> None:
    cid = dhcp.client_id(GUID)
    assert cid == bytes.fromhex("ff 00001001 0003 0020 0002c90300001001")
    assert dhcp.client_id(GUID, iaid=7)[:5] == bytes.fromhex("ff00000007")
    # stable: depends on the GUID only, never on a QPN
    assert dhcp.client_id(GUID) == cid
    with pytest.raises(EncodeError):
        dhcp.client_id(1 << 64)
    with pytest.raises(EncodeError):
        dhcp.client_id(GUID, iaid=1 << 32)


def test_discover_header_follows_rfc4390() -> None:
    m = dhcp.build_discover(0xDEADBEEF, GUID, hostname="node1", secs=3)
    assert len(m) >= dhcp.MIN_MESSAGE
    assert m[:4] == bytes.fromhex("01 20 00 00")  # op 1, htype 32, hlen 0, hops 0
    assert m[4:8] == bytes.fromhex("deadbeef")
    assert m[8:12] == bytes.fromhex("0003 8000")  # secs, BROADCAST flag
    assert m[12:28] == bytes(16)  # ciaddr, yiaddr, siaddr, giaddr
    assert m[28:44] == bytes(16)  # chaddr
    assert m[236:240] == bytes.fromhex("63825363")
    assert m[240:243] == bytes.fromhex("35 01 01")  # option 53 DISCOVER first
    assert m[243:245] == bytes.fromhex("3d 11")  # option 61, 17 bytes
    p = dhcp.parse(m)
    assert p.message_type == MessageType.DISCOVER
    assert p.client_id == dhcp.client_id(GUID)
    assert p.options[Opt.HOSTNAME] == b"node1"
    assert p.options[Opt.PARAMETER_REQUEST] == bytes(dhcp.DEFAULT_PARAMETERS)
    assert p.header.broadcast == 1 and p.header.secs == 3
    assert p.rfc4390_violations == []


def test_discover_options() -> None:
    p = dhcp.parse(dhcp.build_discover(1, GUID, requested_ip="10.0.0.7", iaid=5,
                                       max_message_size=1500, parameters=(1, 3, 26)))
    assert p.address(Opt.REQUESTED_IP) == IPv4Address("10.0.0.7")
    assert p.number(Opt.MAX_MESSAGE_SIZE) == 1500
    assert p.options[Opt.PARAMETER_REQUEST] == bytes((1, 3, 26))
    assert p.client_id == dhcp.client_id(GUID, 5)


def test_request_selecting_and_renewing() -> None:
    sel = dhcp.parse(dhcp.build_request(9, GUID, "10.0.0.7", "10.0.0.1"))
    assert sel.message_type == MessageType.REQUEST and sel.header.broadcast == 1
    assert sel.address(Opt.REQUESTED_IP) == IPv4Address("10.0.0.7")
    assert sel.address(Opt.SERVER_ID) == IPv4Address("10.0.0.1")
    ren = dhcp.parse(dhcp.build_request(9, GUID, "10.0.0.7", None, ciaddr="10.0.0.7"))
    assert ren.header.broadcast == 0  # BOUND/RENEWING: the server unicasts to ciaddr
    assert ren.header.ciaddr == IPv4Address("10.0.0.7").packed
    assert Opt.REQUESTED_IP not in ren.options and Opt.SERVER_ID not in ren.options


def test_broadcast_rule() -> None:
    assert dhcp.needs_broadcast("0.0.0.0") and dhcp.needs_broadcast(bytes(4))
    assert not dhcp.needs_broadcast("10.0.0.7")


def server_offer() -> bytes:
    """An OFFER as a server would send it: htype 32 echoed, options with PAD and a split."""
    h = BootpHeader(op=2, xid=0x1234, broadcast=1,
                    yiaddr=IPv4Address("10.0.0.7").packed, siaddr=IPv4Address("10.0.0.1").packed)
    opts = bytes.fromhex(
        "3501 02"               # OFFER
        "00 00"                 # PAD
        "3604 0a000001"         # server id
        "0104 ffffff00"         # mask
        "0308 0a000001 0a0000fe"  # two routers
        "3304 00000e10"         # lease 3600
        "1a02 07fc"             # MTU 2044
        "0c02 6e6f 0c02 6465"   # hostname split in two (RFC 3396): "node"
        "ff"
    )
    return h.encode() + opts + bytes(20)


def test_parse_server_offer() -> None:
    p = dhcp.parse(server_offer())
    assert p.message_type == MessageType.OFFER and p.header.op == 2
    assert p.header.yiaddr == IPv4Address("10.0.0.7").packed
    assert p.address(Opt.SERVER_ID) == IPv4Address("10.0.0.1")
    assert p.address(Opt.SUBNET_MASK) == IPv4Address("255.255.255.0")
    assert p.addresses(Opt.ROUTER) == [IPv4Address("10.0.0.1"), IPv4Address("10.0.0.254")]
    assert p.number(Opt.LEASE_TIME) == 3600 and p.number(Opt.INTERFACE_MTU) == 2044
    assert p.options[Opt.HOSTNAME] == b"node"
    assert p.address(Opt.DNS) is None and p.number(Opt.DNS) is None
    assert p.rfc4390_violations == []  # a reply needs no option 61


def test_violations_are_reported() -> None:
    eth = BootpHeader(htype=1, hlen=6, chaddr=bytes.fromhex("020000000001") + bytes(10))
    p = dhcp.parse(eth.encode() + dhcp.encode_options([(Opt.MESSAGE_TYPE, b"\x01")]))
    assert p.rfc4390_violations == ["htype 1, expected 32", "hlen 6, expected 0",
                                    "chaddr is not zero", "no client identifier (option 61)"]


def test_long_option_is_split_and_joined() -> None:
    value = bytes(range(256)) * 2
    enc = dhcp.encode_options([(Opt.HOSTNAME, value), (Opt.CLIENT_ID, b"")])
    assert enc[:2] == b"\x0c\xff" and enc[257:259] == b"\x0c\xff" and enc[-3:] == b"\x3d\x00\xff"
    assert dhcp.parse_options(enc, 0) == {Opt.HOSTNAME: value, Opt.CLIENT_ID: b""}
    with pytest.raises(EncodeError):
        dhcp.encode_options([(255, b"")])


@pytest.mark.parametrize("tail, field", [(b"\x35", "length"), (b"\x35\x05\x01", "length")])
def test_truncated_options(tail: bytes, field: str) -> None:
    with pytest.raises(DecodeError) as e:
        dhcp.parse(BootpHeader().encode() + tail)
    assert (e.value.fmt, e.value.field) == ("DHCP option", field)


def test_missing_end_is_tolerated() -> None:
    p = dhcp.parse(BootpHeader().encode() + b"\x35\x01\x03")
    assert p.message_type == MessageType.REQUEST


def test_bad_magic_and_short_header() -> None:
    m = dhcp.build_discover(1, GUID)
    with pytest.raises(DecodeError) as e:
        dhcp.parse(m[:236] + b"\x63\x82\x53\x00" + m[240:])
    assert (e.value.field, e.value.offset) == ("magic", 236)
    with pytest.raises(DecodeError) as e:
        dhcp.parse(m[:239])
    assert e.value.field == "length"


def test_discover_in_a_udp_packet() -> None:
    pkt = ip.udp_packet("0.0.0.0", "255.255.255.255", dhcp.CLIENT_PORT, dhcp.SERVER_PORT,
                        dhcp.build_discover(7, GUID))
    p = ip.parse_ip(pkt)
    h, payload = ip.parse_udp(p.payload)
    assert (h.sport, h.dport) == (68, 67)
    assert dhcp.parse(payload).header.xid == 7


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, (1 << 64) - 1),
       st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)))
def test_discover_roundtrip(xid: int, guid: int, iaid: int | None) -> None:
    p = dhcp.parse(dhcp.build_discover(xid, guid, iaid=iaid))
    assert p.header.xid == xid and p.rfc4390_violations == []
    cid = p.client_id
    assert cid is not None and int.from_bytes(cid[-8:], "big") == guid


@given(st.binary(max_size=400))
def test_random_input_raises_only_decode_error(buf: bytes) -> None:
    try:
        dhcp.parse(buf)
    except DecodeError:
        pass
    try:
        dhcp.parse_options(buf, 0)
    except DecodeError:
        pass


@given(st.data())
def test_truncated_and_mutated(data: st.DataObject) -> None:
    m = server_offer()
    cut = data.draw(st.integers(0, len(m)))
    at = data.draw(st.integers(0, len(m) - 1))
    byte = data.draw(st.integers(0, 255))
    for buf in (m[:cut], m[:at] + bytes((byte,)) + m[at + 1:]):
        try:
            p = dhcp.parse(buf)
            _ = (p.message_type, p.client_id, p.addresses(Opt.ROUTER), p.number(Opt.LEASE_TIME),
                 p.address(Opt.SERVER_ID), p.rfc4390_violations)
        except DecodeError:
            pass
