"""GID and GUID text forms (wire/gid.py)."""

from __future__ import annotations

from ipaddress import IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.gid import (
    DEFAULT_GID_PREFIX,
    gid_guid,
    gid_prefix,
    gid_to_linux,
    gid_to_str,
    guid_to_str,
    is_multicast_gid,
    make_gid,
    parse_gid,
    parse_guid,
)

# (hex bytes, compressed form, Linux sysfs form)
GIDS = [
    ("fe800000000000000002c90300001001", "fe80::2:c903:0:1001",
     "fe80:0000:0000:0000:0002:c903:0000:1001"),
    ("fe800000000000000000000000100001", "fe80::10:1",
     "fe80:0000:0000:0000:0000:0000:0010:0001"),
    ("ff12401bffff000000000000ffffffff", "ff12:401b:ffff::ffff:ffff",
     "ff12:401b:ffff:0000:0000:0000:ffff:ffff"),
    ("00000000000000000000000000000000", "::", "0000:0000:0000:0000:0000:0000:0000:0000"),
    ("00000000000000000000000000000001", "::1", "0000:0000:0000:0000:0000:0000:0000:0001"),
    ("00010000000000000000000000000000", "1::", "0001:0000:0000:0000:0000:0000:0000:0000"),
    # the longest zero run is compressed, not the first
    ("00010000000000010000000000000001", "1:0:0:1::1", "0001:0000:0000:0001:0000:0000:0000:0001"),
    # on a tie the first run wins
    ("00010000000000010000000000010001", "1::1:0:0:1:1",
     "0001:0000:0000:0001:0000:0000:0001:0001"),
    # a single zero group is never "::"
    ("00010000000100010001000100010001", "1:0:1:1:1:1:1:1",
     "0001:0000:0001:0001:0001:0001:0001:0001"),
    # an IPv4-mapped pattern stays hex: a GID has no dotted quad
    ("00000000000000000000ffff01020304", "::ffff:102:304",
     "0000:0000:0000:0000:0000:ffff:0102:0304"),
]


@pytest.mark.parametrize(("hexgid", "short", "linux"), GIDS)
def test_text_forms(hexgid: str, short: str, linux: str) -> None:
    gid = bytes.fromhex(hexgid)
    assert gid_to_str(gid) == short
    assert gid_to_linux(gid) == linux
    assert parse_gid(short) == gid
    assert parse_gid(linux) == gid
    assert parse_gid(short.upper()) == gid
    assert parse_gid(f"  {short}\n") == gid


def test_prefix_and_guid() -> None:
    gid = make_gid(DEFAULT_GID_PREFIX, 0x0002C90300001001)
    assert gid == bytes.fromhex("fe800000000000000002c90300001001")
    assert gid_prefix(gid) == 0xFE80000000000000 == DEFAULT_GID_PREFIX
    assert gid_guid(gid) == 0x0002C90300001001
    assert make_gid(0, 0) == bytes(16)
    assert make_gid(2**64 - 1, 2**64 - 1) == b"\xff" * 16
    assert not is_multicast_gid(gid)
    assert is_multicast_gid(parse_gid("ff12:401b:ffff::1"))


@pytest.mark.parametrize(("prefix", "guid", "field"), [
    (-1, 0, "prefix"), (2**64, 0, "prefix"), (0, -1, "guid"), (0, 2**64, "guid"),
])
def test_make_gid_range(prefix: int, guid: int, field: str) -> None:
    with pytest.raises(EncodeError) as e:
        make_gid(prefix, guid)
    assert e.value.field == field


@pytest.mark.parametrize("bad", [b"", bytes(15), bytes(17)])
def test_wrong_length_gid(bad: bytes) -> None:
    for fn in (gid_to_str, gid_to_linux, gid_prefix, gid_guid, is_multicast_gid):
        with pytest.raises(DecodeError, match="16 bytes"):
            fn(bad)


@pytest.mark.parametrize(("text", "why"), [
    ("", "empty"),
    ("fe80::1::2", "twice"),
    ("fe80:1", "8 groups"),
    ("1:2:3:4:5:6:7:8:9", "8 groups"),
    ("1:2:3:4::5:6:7:8", "too many"),
    ("fe80::1%ib0", "zone"),
    ("::ffff:1.2.3.4", "dotted"),
    ("gggg::", "bad group"),
    ("12345::", "bad group"),
    ("fe80:::1", "bad group"),
    ("0x0002c90300001001", "8 groups"),
])
def test_parse_gid_rejects(text: str, why: str) -> None:
    with pytest.raises(DecodeError, match=why) as e:
        parse_gid(text)
    assert e.value.fmt == "GID"
    assert isinstance(e.value, ValueError)


def test_guid_text() -> None:
    assert guid_to_str(0x0002C90300001001) == "0x0002c90300001001"
    assert guid_to_str(0) == "0x0000000000000000"
    for text in ("0x0002c90300001001", "0X0002C90300001001", "0002c90300001001",
                 "0002:c903:0000:1001", " 0x2c90300001001 "):
        assert parse_guid(text) == 0x0002C90300001001
    with pytest.raises(EncodeError):
        guid_to_str(2**64)
    with pytest.raises(EncodeError):
        guid_to_str(-1)


@pytest.mark.parametrize("text", ["", "0x", "0x00000000000000001", "xyz", "0002:c903:1001",
                                  "-1", "0x12 34"])
def test_parse_guid_rejects(text: str) -> None:
    with pytest.raises(DecodeError) as e:
        parse_guid(text)
    assert e.value.fmt == "GUID"


@given(st.binary(min_size=16, max_size=16))
def test_round_trip_and_agree_with_ipaddress(gid: bytes) -> None:
    short, linux = gid_to_str(gid), gid_to_linux(gid)
    assert parse_gid(short) == gid
    assert parse_gid(linux) == gid
    ref = IPv6Address(gid)
    assert linux == ref.exploded
    if "." not in ref.compressed:
        assert short == ref.compressed
    assert make_gid(gid_prefix(gid), gid_guid(gid)) == gid


@given(st.integers(0, 2**64 - 1))
def test_guid_round_trip(guid: int) -> None:
    assert parse_guid(guid_to_str(guid)) == guid


@given(st.text(alphabet="0123456789abcdefABCDEF:x.% g", max_size=48))
def test_parse_gid_random_text_only_decode_error(text: str) -> None:
    try:
        gid = parse_gid(text)
    except DecodeError:
        return
    assert len(gid) == 16
    assert IPv6Address(gid) == IPv6Address(text.strip())
