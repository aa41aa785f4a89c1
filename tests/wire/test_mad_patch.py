"""``with_header`` and ``make_response`` patch header fields on one integer; they must give
the bytes (or the error) that decoding the header, replacing fields and encoding it again gives:
reserved header bytes zeroed, every other byte of the MAD kept."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipoib.wire.errors import DecodeError, EncodeError
from ipoib.wire.layout import Record
from ipoib.wire.mad import (
    GMP_DATA_OFFSET,
    GMP_DATA_SIZE,
    MAD_SIZE,
    SA_DATA_OFFSET,
    SA_DATA_SIZE,
    SMP_DATA_OFFSET,
    SMP_DATA_SIZE,
    DrSmpHeader,
    MadHeader,
    Method,
    MgmtClass,
    SmpHeader,
    build_dr_smp,
    make_response,
    response_method,
    with_header,
)

CLASSES = [0x01, 0x81, 0x03, 0x04, 0x06, 0x07, 0x00, 0xFF]


def _header(cls: int) -> type[Record]:
    return {0x81: DrSmpHeader, 0x01: SmpHeader}.get(cls, MadHeader)


def reference_with_header(mad: bytes, **changes: Any) -> bytes:
    """The definition: pad, decode the class's header, replace fields, encode."""
    if not 24 <= len(mad) <= MAD_SIZE:
        raise DecodeError("MAD", "length", 0, "")
    buf = bytearray(mad.ljust(MAD_SIZE, b"\0"))
    rec = _header(buf[1])
    buf[:rec.SIZE] = rec.decode(buf).replace(**changes).encode()
    return bytes(buf)


def reference_make_response(mad: bytes, data: bytes | None = None, *, status: int = 0,
                            method: int | None = None) -> bytes:
    if not 24 <= len(mad) <= MAD_SIZE:
        raise DecodeError("MAD", "length", 0, "")
    buf = bytearray(mad.ljust(MAD_SIZE, b"\0"))
    changes: dict[str, Any] = {
        "method": response_method(buf[3]) if method is None else method, "status": status}
    if buf[1] == MgmtClass.SUBN_DIRECTED_ROUTE:
        changes["direction"] = 1
    if data is not None:
        offset, size = {0x81: (SMP_DATA_OFFSET, SMP_DATA_SIZE),
                        0x01: (SMP_DATA_OFFSET, SMP_DATA_SIZE),
                        0x03: (SA_DATA_OFFSET, SA_DATA_SIZE)}.get(
                            buf[1], (GMP_DATA_OFFSET, GMP_DATA_SIZE))
        if len(data) > size:
            raise EncodeError("MAD", "data", "")
        buf[offset:offset + size] = data.ljust(size, b"\0")
    return reference_with_header(bytes(buf), **changes)


def _outcome(fn: Any, *args: Any, **kw: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args, **kw)
    except (EncodeError, DecodeError) as e:
        return type(e).__name__, getattr(e, "field", None)
    except TypeError:
        return "TypeError", None


@st.composite
def mads(draw: st.DrawFn) -> bytes:
    body = draw(st.binary(min_size=24, max_size=MAD_SIZE))
    b = bytearray(body)
    b[1] = draw(st.sampled_from(CLASSES))
    if draw(st.booleans()):
        b[3] = draw(st.sampled_from([1, 2, 5, 6, 0x12, 0x13, 0x14, 0x15, 3, 0x81]))
    return bytes(b)


NAMES = ["tid", "status", "method", "attr_mod", "attr_id", "direction", "hop_pointer",
         "hop_count", "mkey", "dr_slid", "dr_dlid", "class_specific", "base_version",
         "no_such_field"]
VALUES = st.one_of(st.integers(0, 1 << 64), st.sampled_from([-1, 0x8000, 0x7FFF, 1 << 64,
                                                             Method.GET_RESP, True, "x"]))


@settings(max_examples=300)
@given(data=st.data())
def test_with_header_is_decode_replace_encode(data: st.DataObject) -> None:
    mad = data.draw(mads())
    names = data.draw(st.lists(st.sampled_from(NAMES), max_size=3, unique=True))
    changes = {n: data.draw(VALUES) for n in names}
    assert _outcome(with_header, mad, **changes) == _outcome(reference_with_header, mad,
                                                             **changes)


@settings(max_examples=300)
@given(data=st.data())
def test_make_response_is_decode_replace_encode(data: st.DataObject) -> None:
    mad = data.draw(mads())
    payload = data.draw(st.none() | st.binary(max_size=210))
    status = data.draw(st.sampled_from([0, 0x1C, 0x7FFF, 0x8000, 0xFFFF, -1]))
    method = data.draw(st.none() | st.sampled_from([0x81, 0x92, 0x100]))
    assert _outcome(make_response, mad, payload, status=status, method=method) == _outcome(
        reference_make_response, mad, payload, status=status, method=method)


def test_reserved_header_bytes_are_zeroed_and_the_rest_kept() -> None:
    mad = bytearray(build_dr_smp(Method.GET, 0x15, 3, 0x1234, b"\x01" * 64,
                                 initial_path=(0, 1, 2)))
    mad[18:20] = b"\xaa\xbb"  # reserved in every MAD header
    mad[40:64] = b"\xcc" * 24  # reserved in a DR SMP header
    resp = make_response(bytes(mad), b"\x02" * 64, status=0x1C)
    assert resp[18:20] == bytes(2) and resp[40:64] == bytes(24)
    assert resp[3] == 0x81 and resp[4:6] == b"\x80\x1c"
    assert resp[64:128] == b"\x02" * 64 and resp[128:] == bytes(mad[128:])
    assert with_header(bytes(mad), tid=7)[8:16] == (7).to_bytes(8, "big")
    with pytest.raises(EncodeError):
        make_response(bytes(mad), status=0x8000)  # the DR status is 15 bits
