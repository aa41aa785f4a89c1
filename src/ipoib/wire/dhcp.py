"""DHCPv4 over IPoIB: the BOOTP header and options, with RFC 4390's rules for 20-byte addresses.

An IPoIB address does not fit BOOTP's 16-byte ``chaddr``, so RFC 4390 §2.1 says: ``htype`` 32,
``hlen`` 0, ``chaddr`` all zero, and the client is identified by option 61 alone. A client
without an address sets the BROADCAST flag (§2.2): the server cannot ARP for an address the
client does not have yet, and has no ``chaddr`` to fill a neighbour entry with.

**Client identifier (option 61).** We use the RFC 4361 form ``0xFF | IAID (4) | DUID`` with a
DUID-LL (RFC 8415 §11.4, type 3): hardware type 32 followed by the 8-byte port GUID. The GUID
is burnt into the HCA port and, unlike the 20-byte address, does not contain the QPN, which
changes every time the interface is brought up; so the identifier, and with it the lease, is
stable across restarts. The IAID defaults to the low 32 bits of the GUID. Example for GUID
0x0002c90300001001::

    ff 00001001 0003 0020 0002c90300001001

Options are read from the options field only; option overload (52) into ``sname``/``file``
is not followed. Repeated options are concatenated (RFC 3396).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address
from typing import Final

from .errors import DecodeError, EncodeError, need
from .layout import Buffer, Record, layout, raw, u

HTYPE_INFINIBAND: Final = 32
MAGIC_COOKIE: Final = 0x63825363
SERVER_PORT: Final = 67
CLIENT_PORT: Final = 68
DUID_LL: Final = 3
CLIENT_ID_RFC4361: Final = 0xFF
MIN_MESSAGE: Final = 300
"""BOOTP's minimum message size (RFC 1542 §2.1); we pad to it, as common clients do."""


class Op(IntEnum):
    """BOOTP op codes (RFC 951)."""

    BOOTREQUEST = 1
    BOOTREPLY = 2


class MessageType(IntEnum):
    """DHCP message types, option 53 (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Opt(IntEnum):
    """Option codes used here (RFC 2132)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    HOSTNAME = 12
    DOMAIN_NAME = 15
    INTERFACE_MTU = 26
    BROADCAST_ADDRESS = 28
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST = 55
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    CLIENT_ID = 61
    END = 255


DEFAULT_PARAMETERS: Final = (
    Opt.SUBNET_MASK, Opt.ROUTER, Opt.DNS, Opt.DOMAIN_NAME, Opt.INTERFACE_MTU,
    Opt.BROADCAST_ADDRESS,
)


@layout(size=240, name="BOOTP", section="RFC 2131 §2, RFC 4390 §2.1")
@dataclass(frozen=True, slots=True, kw_only=True)
class BootpHeader(Record):
    """The fixed BOOTP/DHCP header and the magic cookie; the defaults are RFC 4390's."""

    op: int = u(0, 8, default=Op.BOOTREQUEST)
    htype: int = u(1, 8, default=HTYPE_INFINIBAND)
    hlen: int = u(2, 8, default=0)
    hops: int = u(3, 8)
    xid: int = u(4, 32)
    secs: int = u(8, 16)
    broadcast: int = u(10, 1)
    ciaddr: bytes = raw(12, 4)
    yiaddr: bytes = raw(16, 4)
    siaddr: bytes = raw(20, 4)
    giaddr: bytes = raw(24, 4)
    chaddr: bytes = raw(28, 16)
    sname: bytes = raw(44, 64)
    file: bytes = raw(108, 128)
    magic: int = u(236, 32, default=MAGIC_COOKIE)


def client_id(port_guid: int, iaid: int | None = None) -> bytes:
    """Option 61's value: ``0xFF | IAID | DUID-LL(htype 32, port GUID)`` (see module doc)."""
    if not 0 <= port_guid < 1 << 64:
        raise EncodeError("DHCP", "client_id", f"GUID {port_guid!r} does not fit 64 bits")
    if iaid is None:
        iaid = port_guid & 0xFFFFFFFF
    if not 0 <= iaid < 1 << 32:
        raise EncodeError("DHCP", "client_id", f"IAID {iaid!r} does not fit 32 bits")
    return (
        bytes((CLIENT_ID_RFC4361,))
        + iaid.to_bytes(4, "big")
        + DUID_LL.to_bytes(2, "big")
        + HTYPE_INFINIBAND.to_bytes(2, "big")
        + port_guid.to_bytes(8, "big")
    )


def needs_broadcast(ciaddr: IPv4Address | str | bytes) -> bool:
    """RFC 4390 §2.2: a client with no address yet (ciaddr 0) asks for broadcast replies."""
    a = ciaddr if isinstance(ciaddr, bytes) else IPv4Address(ciaddr).packed
    return a == bytes(4)


def encode_options(options: Iterable[tuple[int, bytes]]) -> bytes:
    """TLV-encode options and the END mark; values over 255 bytes are split (RFC 3396)."""
    out = bytearray()
    for code, value in options:
        if not 1 <= code <= 254:
            raise EncodeError("DHCP", "option", f"code {code} is not 1..254")
        chunks = [value[i : i + 255] for i in range(0, len(value), 255)] or [b""]
        for c in chunks:
            out += bytes((code, len(c))) + c
    out.append(Opt.END)
    return bytes(out)


def parse_options(buf: Buffer, offset: int) -> dict[int, bytes]:
    """Options from ``offset`` to END: PAD skipped, repeats concatenated in order.

    A missing END is tolerated at the end of the buffer; an option running past it is not.
    """
    opts: dict[int, bytes] = {}
    off = offset
    while off < len(buf):
        code = buf[off]
        if code == Opt.PAD:
            off += 1
            continue
        if code == Opt.END:
            break
        need("DHCP option", len(buf), off, 2)
        n = buf[off + 1]
        need("DHCP option", len(buf), off + 2, n)
        opts[code] = opts.get(code, b"") + bytes(buf[off + 2 : off + 2 + n])
        off += 2 + n
    return opts


@dataclass(frozen=True, slots=True)
class DhcpMessage:
    """A parsed DHCP message: the header and the options by code."""

    header: BootpHeader
    options: dict[int, bytes]

    @property
    def message_type(self) -> int | None:
        """Option 53, or None for plain BOOTP."""
        v = self.options.get(Opt.MESSAGE_TYPE)
        return v[0] if v else None

    @property
    def client_id(self) -> bytes | None:
        """Option 61."""
        return self.options.get(Opt.CLIENT_ID)

    def address(self, code: int) -> IPv4Address | None:
        """An option holding one IPv4 address (server id, requested IP, mask ...)."""
        v = self.options.get(code)
        return IPv4Address(v[:4]) if v is not None and len(v) >= 4 else None

    def addresses(self, code: int) -> list[IPv4Address]:
        """An option holding a list of IPv4 addresses (routers, DNS servers)."""
        v = self.options.get(code, b"")
        return [IPv4Address(v[i : i + 4]) for i in range(0, len(v) - 3, 4)]

    def number(self, code: int) -> int | None:
        """An option holding one unsigned number (lease time, MTU ...)."""
        v = self.options.get(code)
        return int.from_bytes(v, "big") if v else None

    @property
    def rfc4390_violations(self) -> list[str]:
        """What in this message breaks RFC 4390 §2.1 (empty when it conforms)."""
        h = self.header
        bad = []
        if h.htype != HTYPE_INFINIBAND:
            bad.append(f"htype {h.htype}, expected 32")
        if h.hlen != 0:
            bad.append(f"hlen {h.hlen}, expected 0")
        if any(h.chaddr):
            bad.append("chaddr is not zero")
        if h.op == Op.BOOTREQUEST and Opt.CLIENT_ID not in self.options:
            bad.append("no client identifier (option 61)")
        return bad


def parse(buf: Buffer) -> DhcpMessage:
    """Decode a DHCP message (the UDP payload); the magic cookie must be present."""
    h = BootpHeader.decode(buf)
    if h.magic != MAGIC_COOKIE:
        raise DecodeError("DHCP", "magic", 236, f"{h.magic:#010x}, expected 0x63825363")
    return DhcpMessage(h, parse_options(buf, BootpHeader.SIZE))


def build(
    msg_type: int,
    xid: int,
    client_identifier: bytes,
    *,
    op: int = Op.BOOTREQUEST,
    secs: int = 0,
    ciaddr: IPv4Address | str = "0.0.0.0",
    yiaddr: IPv4Address | str = "0.0.0.0",
    siaddr: IPv4Address | str = "0.0.0.0",
    giaddr: IPv4Address | str = "0.0.0.0",
    broadcast: bool | None = None,
    options: Iterable[tuple[int, bytes]] = (),
) -> bytes:
    """A DHCP message over IPoIB: htype 32, hlen 0, zero chaddr, option 53 then 61 first.

    ``broadcast`` defaults to RFC 4390 §2.2's rule for requests (:func:`needs_broadcast`).
    """
    if broadcast is None:
        broadcast = op == Op.BOOTREQUEST and needs_broadcast(ciaddr)
    h = BootpHeader(
        op=op, xid=xid, secs=secs, broadcast=int(broadcast),
        ciaddr=IPv4Address(ciaddr).packed, yiaddr=IPv4Address(yiaddr).packed,
        siaddr=IPv4Address(siaddr).packed, giaddr=IPv4Address(giaddr).packed,
    )
    opts = [(Opt.MESSAGE_TYPE, bytes((msg_type,))), (Opt.CLIENT_ID, client_identifier),
            *options]
    m = h.encode() + encode_options(opts)
    return m + bytes(max(0, MIN_MESSAGE - len(m)))


def build_discover(
    xid: int,
    port_guid: int,
    *,
    iaid: int | None = None,
    secs: int = 0,
    hostname: str | None = None,
    requested_ip: IPv4Address | str | None = None,
    parameters: Iterable[int] = DEFAULT_PARAMETERS,
    max_message_size: int | None = None,
) -> bytes:
    """A DHCPDISCOVER from the port with ``port_guid`` (the UDP payload, 68 → 67).

    It goes from 0.0.0.0 to 255.255.255.255, i.e. to the link's broadcast group.
    """
    extra: list[tuple[int, bytes]] = []
    if requested_ip is not None:
        extra.append((Opt.REQUESTED_IP, IPv4Address(requested_ip).packed))
    if max_message_size is not None:
        extra.append((Opt.MAX_MESSAGE_SIZE, max_message_size.to_bytes(2, "big")))
    if hostname:
        extra.append((Opt.HOSTNAME, hostname.encode()))
    extra.append((Opt.PARAMETER_REQUEST, bytes(parameters)))
    return build(MessageType.DISCOVER, xid, client_id(port_guid, iaid), secs=secs,
                 options=extra)


def build_request(
    xid: int,
    port_guid: int,
    requested_ip: IPv4Address | str,
    server_id: IPv4Address | str | None,
    *,
    iaid: int | None = None,
    ciaddr: IPv4Address | str = "0.0.0.0",
    secs: int = 0,
    hostname: str | None = None,
    parameters: Iterable[int] = DEFAULT_PARAMETERS,
) -> bytes:
    """A DHCPREQUEST: SELECTING (``server_id`` given, ciaddr 0) or RENEWING (ciaddr set).

    In RENEWING/REBINDING the requested address travels in ``ciaddr`` and option 50 is left
    out (RFC 2131 §4.3.2); the broadcast flag follows ``ciaddr``.
    """
    extra: list[tuple[int, bytes]] = []
    if needs_broadcast(ciaddr):
        extra.append((Opt.REQUESTED_IP, IPv4Address(requested_ip).packed))
    if server_id is not None:
        extra.append((Opt.SERVER_ID, IPv4Address(server_id).packed))
    if hostname:
        extra.append((Opt.HOSTNAME, hostname.encode()))
    extra.append((Opt.PARAMETER_REQUEST, bytes(parameters)))
    return build(MessageType.REQUEST, xid, client_id(port_guid, iaid), secs=secs,
                 ciaddr=ciaddr, options=extra)


__all__ = [
    "CLIENT_ID_RFC4361", "CLIENT_PORT", "DEFAULT_PARAMETERS", "DUID_LL", "HTYPE_INFINIBAND",
    "MAGIC_COOKIE", "MIN_MESSAGE", "SERVER_PORT", "BootpHeader", "DhcpMessage", "MessageType",
    "Op", "Opt", "build", "build_discover", "build_request", "client_id", "encode_options",
    "needs_broadcast", "parse", "parse_options",
]
