"""GIDs and GUIDs: the 128-bit port/group identifiers and their text forms (IBA 4.1.1).

A GID is 16 bytes: a 64-bit subnet prefix followed by a 64-bit interface ID, which for a
port GID is the port GUID. GIDs are written like IPv6 addresses; two spellings are in use:

- the compressed IPv6 form (``fe80::2:c903:0:1001``), as ``ip``, tshark and saquery print them;
- Linux's sysfs form, eight groups of four hex digits (``fe80:0000:0000:0000:0002:c903:0000:1001``,
  ``/sys/class/infiniband/*/ports/*/gids/*``).

Both parse. GUIDs are ints and print as ``0x0002c90300001001`` (ibstat, ibnetdiscover, OpenSM).
Everything here is a pure function; malformed text raises :class:`DecodeError` (a
``ValueError``) naming what is wrong.
"""

from __future__ import annotations

import re

from .errors import DecodeError, EncodeError

GID_SIZE = 16
"""Bytes in a GID."""

DEFAULT_GID_PREFIX = 0xFE80_0000_0000_0000
"""The link-local subnet prefix fe80::/64, the default GidPrefix of every port (IBA 4.1.1)."""

U64_MAX = (1 << 64) - 1

_HEX_GROUP = re.compile(r"[0-9A-Fa-f]{1,4}")
_GUID_COLON = re.compile(r"[0-9A-Fa-f]{4}(?::[0-9A-Fa-f]{4}){3}")
_GUID_HEX = re.compile(r"(?:0[xX])?[0-9A-Fa-f]{1,16}")

Buffer = bytes | bytearray | memoryview


def _check_gid(gid: Buffer, what: str = "GID") -> bytes:
    b = bytes(gid)
    if len(b) != GID_SIZE:
        raise DecodeError(what, "length", 0, f"a GID is {GID_SIZE} bytes, got {len(b)}")
    return b


def make_gid(prefix: int, guid: int) -> bytes:
    """The GID whose upper 64 bits are ``prefix`` and lower 64 bits ``guid``."""
    if not 0 <= prefix <= U64_MAX:
        raise EncodeError("GID", "prefix", f"{prefix:#x} does not fit 64 bits")
    if not 0 <= guid <= U64_MAX:
        raise EncodeError("GID", "guid", f"{guid:#x} does not fit 64 bits")
    return (prefix << 64 | guid).to_bytes(GID_SIZE, "big")


def gid_prefix(gid: Buffer) -> int:
    """The subnet prefix (upper 64 bits) of a GID."""
    return int.from_bytes(_check_gid(gid)[:8], "big")


def gid_guid(gid: Buffer) -> int:
    """The interface ID (lower 64 bits) of a GID: the port GUID for a port GID."""
    return int.from_bytes(_check_gid(gid)[8:], "big")


def is_multicast_gid(gid: Buffer) -> bool:
    """True for an MGID: the first byte is 0xFF (IBA 4.1.1)."""
    return _check_gid(gid)[0] == 0xFF


def gid_to_str(gid: Buffer) -> str:
    """The compressed IPv6 form (RFC 5952): ``fe80::2:c903:0:1001``.

    The longest run of two or more zero groups becomes ``::`` (the first, on a tie). Unlike
    :mod:`ipaddress`, this never prints a dotted-quad tail, which would be wrong for a GID.
    """
    b = _check_gid(gid)
    groups = [b[i] << 8 | b[i + 1] for i in range(0, GID_SIZE, 2)]
    best_at, best_len, run_at, run_len = -1, 0, -1, 0
    for i, g in enumerate(groups):
        if g == 0:
            if run_len == 0:
                run_at = i
            run_len += 1
            if run_len > best_len:
                best_at, best_len = run_at, run_len
        else:
            run_len = 0
    if best_len < 2:
        return ":".join(f"{g:x}" for g in groups)
    head = ":".join(f"{g:x}" for g in groups[:best_at])
    tail = ":".join(f"{g:x}" for g in groups[best_at + best_len:])
    return f"{head}::{tail}"


def gid_to_linux(gid: Buffer) -> str:
    """Linux's sysfs form: eight groups of four hex digits, nothing compressed."""
    b = _check_gid(gid)
    return ":".join(b[i:i + 2].hex() for i in range(0, GID_SIZE, 2))


def parse_gid(text: str) -> bytes:
    """Parse a GID in either IPv6 form (compressed or Linux's full colon-hex form).

    Zone suffixes (``%ib0``) and dotted-quad tails are rejected: neither is a GID.
    """
    s = text.strip()
    if not s:
        raise DecodeError("GID", "text", 0, "empty string")
    if "%" in s or "." in s:
        raise DecodeError("GID", "text", 0, f"{text!r}: not a GID (zone or dotted quad)")
    if s.count("::") > 1:
        raise DecodeError("GID", "text", s.index("::"), f"{text!r}: '::' appears twice")
    if "::" in s:
        left, right = s.split("::")
        head = left.split(":") if left else []
        tail = right.split(":") if right else []
        if len(head) + len(tail) > 7:
            raise DecodeError("GID", "text", 0, f"{text!r}: too many groups around '::'")
        parts = head + ["0"] * (8 - len(head) - len(tail)) + tail
    else:
        parts = s.split(":")
        if len(parts) != 8:
            raise DecodeError(
                "GID", "text", 0, f"{text!r}: need 8 groups of hex digits, got {len(parts)}"
            )
    value = 0
    pos = 0
    for p in parts:
        if not _HEX_GROUP.fullmatch(p):
            raise DecodeError("GID", "text", pos, f"{text!r}: bad group {p!r}")
        value = value << 16 | int(p, 16)
        pos += len(p) + 1
    return value.to_bytes(GID_SIZE, "big")


def guid_to_str(guid: int) -> str:
    """A GUID as ibstat and OpenSM print it: ``0x0002c90300001001``."""
    if not 0 <= guid <= U64_MAX:
        raise EncodeError("GUID", "guid", f"{guid!r} does not fit 64 bits")
    return f"0x{guid:016x}"


def parse_guid(text: str) -> int:
    """Parse a GUID: ``0x0002c90300001001``, bare hex, or ``0002:c903:0000:1001`` (ibv_devinfo)."""
    s = text.strip()
    if _GUID_COLON.fullmatch(s):
        return int(s.replace(":", ""), 16)
    if _GUID_HEX.fullmatch(s):
        return int(s, 16)
    raise DecodeError("GUID", "text", 0, f"{text!r}: expected up to 16 hex digits, e.g. "
                      "0x0002c90300001001")
