"""The property every fixed-size wire record has: any bytes decode, or are refused with a
DecodeError naming the length, and what decodes encodes back to a record equal to it."""

from __future__ import annotations

import pytest

from ipoib.wire.errors import DecodeError
from ipoib.wire.layout import Record


def decoded_or_refused(cls: type[Record], buf: bytes) -> Record | None:
    """``cls.decode(buf)`` checked against that property; None when ``buf`` is too short."""
    if len(buf) < cls.SIZE:
        with pytest.raises(DecodeError) as err:
            cls.decode(buf)
        assert err.value.field == "length"
        return None
    rec = cls.decode(buf)
    assert cls.decode(rec.encode()) == rec
    return rec
