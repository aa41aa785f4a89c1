"""Typed errors for every decoder and encoder in ``ipoib.wire``.

A decoder never lets ``IndexError`` or ``struct.error`` escape: malformed bytes become a
:class:`DecodeError` naming the format, the field and the byte offset, so receive paths can
count the drop by reason (ARCHITECTURE.md, law 5) and users get a message they can act on.
"""

from __future__ import annotations


class WireError(ValueError):
    """Base of all wire-format errors."""


class DecodeError(WireError):
    """Bytes that do not form a valid instance of a format.

    ``fmt`` is the format's name (e.g. ``"LRH"``, ``"PortInfo"``), ``field`` the field that is
    wrong (``"length"`` for truncation), ``offset`` the byte offset of that field in the buffer
    handed to the decoder.
    """

    def __init__(self, fmt: str, field: str, offset: int, reason: str) -> None:
        self.fmt = fmt
        self.field = field
        self.offset = offset
        self.reason = reason
        super().__init__(f"{fmt}: field {field} at offset {offset}: {reason}")


class EncodeError(WireError):
    """A value that does not fit its field (out of range, wrong length)."""

    def __init__(self, fmt: str, field: str, reason: str) -> None:
        self.fmt = fmt
        self.field = field
        self.reason = reason
        super().__init__(f"{fmt}: field {field}: {reason}")


def need(fmt: str, buf_len: int, offset: int, size: int) -> None:
    """Raise a truncation :class:`DecodeError` unless ``size`` bytes are there at ``offset``."""
    if offset < 0 or buf_len - offset < size:
        raise DecodeError(
            fmt, "length", offset, f"need {size} bytes, have {max(buf_len - offset, 0)}"
        )
