"""pcap writer and reader for ERF type 21 and IPoIB link types (wire/capture.py, §8.1, §8.3)."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.capture import (
    LINKTYPE_ERF,
    LINKTYPE_IPOIB,
    ErfHeader,
    PcapReader,
    PcapWriter,
    erf_record,
    erf_time,
    erf_timestamp,
    erf_unwrap,
    file_header,
    ipoib_pseudo,
    ipoib_unwrap,
    pcap_record,
)
from ipoib.wire.crc import append_crcs, check_crcs
from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.gid import parse_gid

from .ib_vectors import IPOIB_ICMP, UD_MCAST, UD_UNICAST

T0 = 1_700_000_000.0
DADDR = bytes.fromhex("00000049") + parse_gid("fe80::2:c903:0:2002")
SGID = parse_gid("fe80::2:c903:0:1001")
DGID = parse_gid("fe80::2:c903:0:2002")


def erf_file(*pkts: bytes, t0: float = T0) -> bytes:
    f = io.BytesIO()
    w = PcapWriter(f, LINKTYPE_ERF)
    for i, p in enumerate(pkts):
        w.write_ib(t0 + i * 0.125, append_crcs(p))
    return f.getvalue()


# --- exact bytes ------------------------------------------------------------------------------

def test_file_header_bytes() -> None:
    assert file_header(LINKTYPE_ERF) == bytes.fromhex(
        "d4c3b2a1" "0200" "0400" "00000000" "00000000" "00000400" "c5000000")
    assert file_header(LINKTYPE_IPOIB, snaplen=65535)[-8:] == bytes.fromhex("ffff0000f2000000")


def test_erf_header_matches_reference_example() -> None:
    """wire-formats.md §8.1: a 98-byte packet at 1700000000 s."""
    pkt = append_crcs(UD_UNICAST)
    assert len(pkt) == 98
    rec = erf_record(T0, pkt)
    assert rec[:16] == bytes.fromhex("0000000000f15365" "15" "04" "0072" "0000" "0062")
    assert rec[16:] == pkt
    h = ErfHeader.decode(rec)
    assert (h.type, h.flags, h.rlen, h.lctr, h.wlen) == (21, 0x04, 114, 0, 98)


@pytest.mark.parametrize(("now", "ts_hex"), [
    (0.0, "0000000000000000"),
    (1.5, "0000008001000000"),  # fraction 0x80000000, seconds 1: little-endian
    (T0 + 0.25, "0000004000f15365"),
    (2**32 - 0.5, "00000080ffffffff"),
])
def test_erf_timestamp_is_le_32_32(now: float, ts_hex: str) -> None:
    ts = erf_timestamp(now)
    assert ts.hex() == ts_hex
    assert abs(erf_time(ts) - now) <= 2**-32 + abs(now) * 2**-52


def test_erf_timestamp_carries_into_seconds() -> None:
    now = 5 + (1 - 2**-40)  # rounds up to a whole second
    ts = erf_timestamp(now)
    assert struct.unpack("<Q", ts)[0] == 6 << 32


@pytest.mark.parametrize("now", [-1.0, float("nan"), float("inf"), 2.0**32])
def test_bad_times_rejected(now: float) -> None:
    with pytest.raises(EncodeError):
        erf_timestamp(now)
    with pytest.raises(EncodeError):
        pcap_record(now, b"x")


def test_pcap_record_microseconds() -> None:
    rec = pcap_record(T0 + 0.123456, b"abc")
    assert struct.unpack("<IIII", rec[:16]) == (int(T0), 123456, 3, 3)
    assert struct.unpack("<II", pcap_record(7.9999996, b"")[:8]) == (8, 0)


def test_ipoib_pseudo_headers() -> None:
    d = ipoib_pseudo(daddr=DADDR)
    assert d == bytes(20) + DADDR
    g = ipoib_pseudo(src_qpn=0x48, sgid=SGID, dgid=DGID)
    assert g[:8] == bytes.fromhex("6000000000000048") and g[8:24] == SGID and g[24:] == DGID
    for bad in ({}, {"daddr": DADDR, "src_qpn": 1}, {"src_qpn": 1, "sgid": SGID}):
        with pytest.raises(EncodeError):
            ipoib_pseudo(**bad)  # type: ignore[arg-type]
    with pytest.raises(EncodeError):
        ipoib_pseudo(daddr=DADDR[:19])


# --- round trips ------------------------------------------------------------------------------

def test_erf_round_trip() -> None:
    data = erf_file(UD_UNICAST, UD_MCAST)
    r = PcapReader(io.BytesIO(data))
    assert r.linktype == LINKTYPE_ERF and r.snaplen == 262144
    recs = list(r)
    assert [rec.linktype for rec in recs] == [LINKTYPE_ERF] * 2
    assert [rec.timestamp for rec in recs] == [T0, T0 + 0.125]
    for rec, pkt in zip(recs, (UD_UNICAST, UD_MCAST), strict=True):
        erf = erf_unwrap(rec.data)
        assert erf.packet == append_crcs(pkt)
        assert erf.timestamp == rec.timestamp
        check_crcs(erf.packet)


def test_ipoib_round_trip() -> None:
    f = io.BytesIO()
    w = PcapWriter(f, LINKTYPE_IPOIB)
    w.write_ipoib(T0, IPOIB_ICMP, daddr=DADDR)
    w.write_ipoib(T0 + 1, IPOIB_ICMP, src_qpn=0x48, sgid=SGID, dgid=DGID)
    assert w.records == 2
    recs = list(PcapReader(io.BytesIO(f.getvalue())))
    a, b = (ipoib_unwrap(r.data) for r in recs)
    assert (a.daddr, a.src_qpn, a.encap) == (DADDR, None, IPOIB_ICMP)
    assert (b.daddr, b.src_qpn, b.sgid, b.dgid, b.encap) == (None, 0x48, SGID, DGID, IPOIB_ICMP)


def test_writer_checks_link_type() -> None:
    f = io.BytesIO()
    with pytest.raises(EncodeError):
        PcapWriter(f, 1)
    erf, ipoib = PcapWriter(io.BytesIO(), LINKTYPE_ERF), PcapWriter(io.BytesIO(), LINKTYPE_IPOIB)
    with pytest.raises(EncodeError):
        erf.write_ipoib(T0, IPOIB_ICMP, daddr=DADDR)
    with pytest.raises(EncodeError):
        ipoib.write_ib(T0, append_crcs(UD_UNICAST))
    small = PcapWriter(io.BytesIO(), LINKTYPE_ERF, snaplen=64)
    with pytest.raises(EncodeError, match="snaplen"):
        small.write_ib(T0, append_crcs(UD_UNICAST))


def _swap_file(data: bytes, magic: int) -> bytes:
    """Re-encode a little-endian µs file written by PcapWriter big-endian, with ``magic``."""
    out = bytearray(struct.pack(">IHHiIII", magic, *struct.unpack("<HHiIII", data[4:24])))
    off = 24
    while off < len(data):
        secs, usec, incl, orig = struct.unpack_from("<IIII", data, off)
        frac = usec * 1000 if magic == 0xA1B23C4D else usec
        out += struct.pack(">IIII", secs, frac, incl, orig) + data[off + 16: off + 16 + incl]
        off += 16 + incl
    return bytes(out)


@pytest.mark.parametrize("magic", [0xA1B2C3D4, 0xA1B23C4D])
def test_reads_big_endian_and_nanosecond_files(magic: int) -> None:
    data = erf_file(UD_UNICAST, UD_MCAST)
    recs = list(PcapReader(io.BytesIO(_swap_file(data, magic))))
    assert [r.timestamp for r in recs] == [T0, T0 + 0.125]
    assert erf_unwrap(recs[1].data).packet == append_crcs(UD_MCAST)


# --- malformed files ----------------------------------------------------------------------

GOOD = erf_file(UD_UNICAST)


def _mut(at: int, value: bytes, base: bytes = GOOD) -> bytes:
    return base[:at] + value + base[at + len(value):]


MALFORMED = [
    ("empty", b"", "length", 0),
    ("short header", GOOD[:20], "length", 0),
    ("bad magic", _mut(0, b"\x00\x00\x00\x00"), "magic", 0),
    ("version 1", _mut(4, b"\x01\x00"), "version", 4),
    ("record header cut", GOOD[:30], "length", 24),
    ("record cut", GOOD[:60], "length", 40),
    ("incl > orig", _mut(36, struct.pack("<I", 10)), "incl_len", 32),
    # records up to 64 KiB pass whatever the snaplen (as in libpcap); beyond, only up to it
    ("incl > snaplen", _mut(32, struct.pack("<II", 0x10001, 0x10001),
                            _mut(16, struct.pack("<I", 0x10000))), "incl_len", 32),
    ("huge incl", _mut(32, struct.pack("<II", 2**31, 2**31)), "incl_len", 32),
    ("usec >= 1e6", _mut(28, struct.pack("<I", 1_000_000)), "ts_frac", 28),
    ("ERF type 2", _mut(40 + 8, b"\x02"), "type", 48),
    ("ERF rlen long", _mut(40 + 10, b"\x01\x00"), "rlen", 50),
    ("ERF rlen short", _mut(40 + 10, b"\x00\x0f"), "rlen", 50),
    ("ERF wlen long", _mut(40 + 14, b"\x00\x63"), "wlen", 54),
    ("ERF record short", _mut(32, struct.pack("<II", 10, 10))[:50], "length", 40),
]


@pytest.mark.parametrize(("why", "data", "field", "offset"), MALFORMED,
                         ids=[m[0] for m in MALFORMED])
def test_reader_rejects(why: str, data: bytes, field: str, offset: int) -> None:
    with pytest.raises(DecodeError) as e:
        list(PcapReader(io.BytesIO(data)))
    assert (e.value.field, e.value.offset) == (field, offset), str(e.value)


def test_ipoib_record_too_short() -> None:
    f = io.BytesIO()
    f.write(file_header(LINKTYPE_IPOIB))
    f.write(pcap_record(T0, bytes(43)))
    with pytest.raises(DecodeError) as e:
        list(PcapReader(io.BytesIO(f.getvalue())))
    assert e.value.fmt == "IPoIB-pseudo"


@given(st.binary(max_size=200))
def test_random_files_only_decode_error(data: bytes) -> None:
    for blob in (data, file_header(LINKTYPE_ERF) + data, file_header(LINKTYPE_IPOIB) + data):
        try:
            for _ in PcapReader(io.BytesIO(blob)):
                pass
        except DecodeError:
            pass


@given(st.integers(0, len(GOOD) + 200), st.integers(0, 255), st.binary(max_size=8))
def test_mangled_files_only_decode_error(at: int, value: int, tail: bytes) -> None:
    good = erf_file(UD_UNICAST, UD_MCAST)
    for blob in (good[:at], good + tail, _mut(at % len(good), bytes((value,)), good)):
        try:
            recs = list(PcapReader(io.BytesIO(blob)))
        except DecodeError:
            continue
        for r in recs:
            erf_unwrap(r.data)


@given(st.binary(max_size=80))
def test_unwrap_random_only_decode_error(data: bytes) -> None:
    for fn in (erf_unwrap, ipoib_unwrap):
        try:
            fn(data)
        except DecodeError:
            pass
