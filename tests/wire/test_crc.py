"""ICRC and VCRC (wire/crc.py, wire-formats.md §1.6-1.8)."""

from __future__ import annotations

import zlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.wire.crc import (
    ICRC_RESIDUE,
    append_crcs,
    check_crcs,
    icrc,
    icrc_masked,
    icrc_value,
    vcrc,
    vcrc_value,
)
from ipoib.wire.errors import DecodeError
from ipoib.wire.ib import Grh, build_ud

from .ib_vectors import (
    DR_SMP_ICRC,
    DR_SMP_VCRC,
    UD_MCAST,
    UD_MCAST_ICRC,
    UD_MCAST_VCRC,
    UD_UNICAST,
    UD_UNICAST_ICRC,
    UD_UNICAST_VCRC,
    dr_smp_nodeinfo_get_mad,
)


def dr_smp() -> bytes:
    return build_ud(vl=15, sl=0, dlid=0xFFFF, slid=0xFFFF, pkey=0xFFFF, dest_qp=0, qkey=0,
                    src_qp=0, payload=dr_smp_nodeinfo_get_mad())


# --- independent references, written from the rules rather than from crc.py -----------------

def vcrc_bitwise(data: bytes) -> int:
    """CRC-16, poly x^16+x^12+x^3+x+1 processed LSB first, init/xorout 0xFFFF, one bit a step."""
    crc = 0xFFFF
    for byte in data:
        for i in range(8):
            bit = (byte >> i) & 1
            top = crc & 1
            crc >>= 1
            if top ^ bit:
                crc ^= 0xD008
    return crc ^ 0xFFFF


def icrc_reference(pkt: bytes) -> bytes:
    """Mask a full copy of the packet and run zlib.crc32 over it (§1.6, native IB)."""
    m = bytearray(pkt)
    m[0:8] = b"\xff" * 8
    bth = 8
    if pkt[1] & 3 == 3:
        m[8] |= 0x0F
        m[9:12] = b"\xff\xff\xff"
        m[15] = 0xFF
        bth = 48
    m[bth + 4] = 0xFF
    return zlib.crc32(bytes(m)).to_bytes(4, "little")


def roce_v2_icrc(frame: bytes) -> bytes:
    """RoCEv2 ICRC of an Ethernet/IPv4/UDP/BTH frame without its trailing ICRC (§1.6):
    8 ones for the missing LRH, IPv4 TOS/TTL/checksum and UDP checksum set to ones, BTH
    byte 4 set to ones; the CRC engine is the one icrc() uses."""
    ip = bytearray(frame[14:])
    ihl = (ip[0] & 0x0F) * 4
    ip[1] = 0xFF  # TOS
    ip[8] = 0xFF  # TTL
    ip[10:12] = b"\xff\xff"  # header checksum
    ip[ihl + 6: ihl + 8] = b"\xff\xff"  # UDP checksum
    ip[ihl + 8 + 4] = 0xFF  # BTH FECN/BECN/reserved
    return icrc_masked(bytes(ip)).to_bytes(4, "little")


# --- vectors ----------------------------------------------------------------------------------

def test_vcrc_check_value() -> None:
    assert vcrc_value(b"123456789") == 0x0A3D
    assert vcrc_bitwise(b"123456789") == 0x0A3D


def test_roce_v2_hardware_vector() -> None:
    """ConnectX-4 Lx RoCEv2 CNP (scapy test/contrib/roce.uts): the only hardware-confirmed
    ICRC; it pins the CRC-32 engine, the LRH seed and the byte order."""
    wire = bytes.fromhex(
        "e41d2dab2bc27cfe90643b32080045c2003c718c4000401191610a0011010a001201000012b70028"
        "00008100ffff400001180000000000000000000000000000000000000000" "82fd002a")
    frame, crc = wire[:-4], wire[-4:]
    assert roce_v2_icrc(frame) == crc
    assert int.from_bytes(crc, "little") == 0x2A00FD82


@pytest.mark.parametrize(("pkt", "want_icrc", "want_vcrc"), [
    (UD_UNICAST, UD_UNICAST_ICRC, UD_UNICAST_VCRC),
    (UD_MCAST, UD_MCAST_ICRC, UD_MCAST_VCRC),
    (dr_smp(), DR_SMP_ICRC, DR_SMP_VCRC),
], ids=["ud-unicast", "ud-mcast-grh", "dr-smp"])
def test_native_vectors(pkt: bytes, want_icrc: bytes, want_vcrc: bytes) -> None:
    assert icrc(pkt) == want_icrc
    assert icrc_value(pkt) == int.from_bytes(want_icrc, "little")
    assert vcrc(pkt + want_icrc) == want_vcrc
    full = append_crcs(pkt)
    assert full == pkt + want_icrc + want_vcrc
    check_crcs(full)


# --- what the ICRC covers ---------------------------------------------------------------------

def variant_bits(pkt: bytes) -> dict[int, int]:
    """Byte offset -> the bits there that the ICRC masks (wire-formats.md §1.6)."""
    bits = dict.fromkeys(range(8), 0xFF)  # the whole LRH
    bth = 8
    if pkt[1] & 3 == 3:
        bits.update({8: 0x0F, 9: 0xFF, 10: 0xFF, 11: 0xFF, 15: 0xFF})  # TClass, FlowLabel, HopLmt
        bth = 48
    bits[bth + 4] = 0xFF  # FECN, BECN, reserved
    return bits


@pytest.mark.parametrize("pkt", [UD_UNICAST, UD_MCAST], ids=["no-grh", "grh"])
def test_icrc_ignores_exactly_the_variant_bits(pkt: bytes) -> None:
    base = icrc(pkt)
    variant = variant_bits(pkt)
    for at in range(len(pkt)):
        v = variant.get(at, 0)
        if v:
            b = bytearray(pkt)
            b[at] ^= v & 0xFC if at == 1 else v  # keep LNH: it says where the BTH is
            assert icrc(bytes(b)) == base, f"byte {at} bits {v:#x} are variant"
        if v != 0xFF:
            b = bytearray(pkt)
            b[at] ^= 0xFF & ~v
            assert icrc(bytes(b)) != base, f"byte {at} bits {0xFF & ~v:#x} are covered"


def test_vcrc_covers_the_vl_the_icrc_does_not() -> None:
    moved = bytes((0x30 | UD_UNICAST[0] & 0x0F,)) + UD_UNICAST[1:]  # VL 3, as a switch would
    assert icrc(moved) == icrc(UD_UNICAST)
    assert append_crcs(moved)[-2:] != append_crcs(UD_UNICAST)[-2:]
    check_crcs(append_crcs(moved))


def test_residue() -> None:
    for pkt in (UD_UNICAST, UD_MCAST):
        masked = bytearray(pkt)
        masked[0:8] = b"\xff" * 8
        off = 48 if pkt is UD_MCAST else 8
        if pkt is UD_MCAST:
            masked[8] |= 0x0F
            masked[9:12] = b"\xff\xff\xff"
            masked[15] = 0xFF
        masked[off + 4] = 0xFF
        assert zlib.crc32(bytes(masked) + icrc(pkt)) == ICRC_RESIDUE


# --- checking -------------------------------------------------------------------------------

def test_check_crcs_reports_vcrc_first() -> None:
    """Any one flipped bit breaks the link check before the end-to-end one is looked at."""
    full = append_crcs(UD_MCAST)
    for at in range(len(full)):
        bad = bytearray(full)
        bad[at] ^= 0x01
        with pytest.raises(DecodeError) as e:
            check_crcs(bytes(bad))
        assert (e.value.fmt, e.value.field, e.value.offset) == ("VCRC", "vcrc", len(full) - 2)


def test_check_crcs_catches_an_icrc_error_under_a_good_vcrc() -> None:
    body = bytearray(UD_UNICAST)
    body[40] ^= 0x01  # payload byte changed after the ICRC was made
    with_icrc = bytes(body) + icrc(UD_UNICAST)
    with pytest.raises(DecodeError) as e:
        check_crcs(with_icrc + vcrc(with_icrc))
    assert (e.value.fmt, e.value.field, e.value.offset) == ("ICRC", "icrc", len(UD_UNICAST))


@pytest.mark.parametrize("pkt", [b"", b"\x00\x02\x00", bytes(13)])
def test_short_input(pkt: bytes) -> None:
    with pytest.raises(DecodeError):
        check_crcs(pkt)
    with pytest.raises(DecodeError):
        icrc(pkt)


def test_raw_packets_have_no_icrc() -> None:
    raw = bytearray(UD_UNICAST)
    raw[1] = 0x00  # LNH 0
    with pytest.raises(DecodeError) as e:
        icrc(bytes(raw))
    assert e.value.field == "lnh"


# --- properties -------------------------------------------------------------------------------

@given(st.binary(max_size=300))
def test_vcrc_matches_bitwise_reference(data: bytes) -> None:
    assert vcrc_value(data) == vcrc_bitwise(data)
    assert vcrc(memoryview(data)) == vcrc_bitwise(data).to_bytes(2, "little")


U = st.integers
PKTS = st.builds(
    build_ud, vl=U(0, 15), sl=U(0, 15), dlid=U(0, 0xFFFF), slid=U(0, 0xFFFF),
    pkey=U(0, 0xFFFF), dest_qp=U(0, 0xFFFFFF), qkey=U(0, 2**32 - 1), src_qp=U(0, 0xFFFFFF),
    payload=st.binary(max_size=200), psn=U(0, 0xFFFFFF), imm=st.none() | U(0, 2**32 - 1),
    grh=st.none() | st.builds(Grh, tclass=U(0, 255), flow_label=U(0, 0xFFFFF),
                              hop_lmt=U(0, 255), sgid=st.binary(min_size=16, max_size=16),
                              dgid=st.binary(min_size=16, max_size=16)))


@given(PKTS)
def test_icrc_matches_reference_and_round_trips(pkt: bytes) -> None:
    assert icrc(pkt) == icrc_reference(pkt)
    full = append_crcs(pkt)
    check_crcs(full)
    assert full[:-6] == pkt


@given(st.binary(max_size=120))
def test_random_bytes_only_decode_error(data: bytes) -> None:
    calls: list[Any] = [check_crcs, icrc]
    for fn in calls:
        try:
            fn(data)
        except DecodeError:
            pass
