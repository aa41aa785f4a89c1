"""How ibsim moves a MAD through the fabric, as rules over our fabric's ports.

An ibsim server does not carry packets: it walks its node table from the client's port to the
MAD's target, answers there with its SMA or PMA, and walks back (ibsim ``sim_mad.c``:
``lid_route_MAD``, ``direct_route_out_MAD``, ``direct_route_in_MAD``, ``next_port``). OpenSM and
the diagnostics depend on the details, so they are kept here exactly, over the same
:class:`~ipoib.fabric.node.Port` objects our switches forward with (so whatever OpenSM writes
is what the data path uses, ibsim-protocol.md §16):

- **LID routing**: from a CA, to its link peer first; then at most :data:`MAX_LID_HOPS` switch
  hops by the LFT, every egress port and every peer LinkUp *and* Active. ``LID > LinearFDBTop``,
  an entry of 0xFF, LID 0 and multicast LIDs fail.
- **Directed route, outbound**: HopPointer is 0 (umad2sim has no SMI to increment it); the
  InitialPath is walked with LinkUp checks only; the 64-byte path the answer carries as its
  ReturnPath is the InitialPath with entry 0 = the client's port and entry i = the port the
  MAD came in on at hop i (the rest, garbage included, is echoed).
- **Directed route, returning**: the ReturnPath walked backwards from the target.

Every hop a MAD takes is counted on both ports as one packet of 72 dwords, as ibsim's PMA does
(and as the fabric counts a 256-byte MAD in LRH+BTH+DETH), so perfquery sees MAD traffic.
"""

from __future__ import annotations

from ..fabric.node import ACTIVE, LINK_UP, Node, Port, Switch
from ..wire.mad import DR_INITIAL_PATH_OFFSET, DR_PATH_SIZE, DR_RETURN_PATH_OFFSET, MAX_HOP_COUNT

MAX_LID_HOPS = 16
"""Switch hops ibsim follows on a LID-routed MAD (``MAXHOPS``)."""
HOP_WORDS = 72
"""Dwords counted per MAD hop (ibsim ``pc_updated``)."""
MCAST_BASE = 0xC000
PERMISSIVE = 0xFFFF


def count_hop(out: Port, into: Port) -> None:
    """One MAD crossed the link from ``out`` to ``into``. Added to the running totals
    directly, as the fabric's hop loop does: a sum needs no settling of cached routes."""
    out._xmit_pkts += 1
    out._xmit_words += HOP_WORDS
    into._rcv_pkts += 1
    into._rcv_words += HOP_WORDS


def link_valid(p: Port) -> bool:
    """ibsim ``link_valid``: LinkUp and Active, the condition for LID-routed hops."""
    return p.phys == LINK_UP and p.state == ACTIVE


def agent_port(node: Node, port: Port) -> int:
    """The port number MAD agents of ``node`` register on for MADs reaching ``port``: a
    switch's management port 0, or the CA port itself."""
    return 0 if node.is_switch else port.num


def lid_route(port: Port, lid: int, *, count: bool = True) -> Port | None:
    """ibsim ``lid_route_MAD``: the port owning ``lid`` reached from ``port``, or None.

    ``count`` adds each hop to the port counters (off for a route that is only checked).
    """
    if lid == 0 or lid >= MCAST_BASE:
        return None
    if port.owns_lid(lid):
        return port
    node = port.node
    if not node.is_switch:
        peer = port.peer
        if peer is None:
            return None
        if count:
            count_hop(port, peer)
        port, node = peer, peer.node
    for _ in range(MAX_LID_HOPS):
        if port.owns_lid(lid):
            return port
        if not isinstance(node, Switch) or lid > node.top:
            return None
        out_num = node.lft[lid]
        if out_num > node.nports:
            return None
        out = node.ports[out_num]
        if not link_valid(out):
            return None
        if out.owns_lid(lid):
            return out  # the switch's own management port
        peer = out.peer
        if peer is None or not link_valid(peer):
            return None
        if count:
            count_hop(out, peer)
        port, node = peer, peer.node
    return port if port.owns_lid(lid) else None


def next_port(node: Node, num: int, *, count: bool = True) -> Port | None:
    """ibsim ``next_port``: leave ``node`` by port ``num`` (on a CA, 0 means port 1) and
    return the port arrived at; a LinkUp port with no cable (a switch's port 0) is its own
    arrival. None when either end is not LinkUp."""
    if num == 0 and not node.is_switch:
        num = 1
    if num > node.nports:
        return None
    out = node.ports[num]
    if out.phys != LINK_UP:
        return None
    peer = out.peer
    if peer is None:
        return out
    if peer.phys != LINK_UP:
        return None
    if count:
        out._xmit_pkts += 1
        out._xmit_words += HOP_WORDS
        peer._rcv_pkts += 1
        peer._rcv_words += HOP_WORDS
    return peer


def dr_out(port: Port, hop_count: int, mad: bytes | bytearray, *,
           count: bool = True) -> tuple[Port, bytearray] | None:
    """ibsim ``direct_route_out_MAD``: walk the InitialPath of ``mad`` from the client's
    ``port``; return the target port and the 64-byte path to send back as ReturnPath."""
    if hop_count > MAX_HOP_COUNT:
        return None
    path = bytearray(mad[DR_INITIAL_PATH_OFFSET:DR_INITIAL_PATH_OFFSET + DR_PATH_SIZE])
    ptr = 0
    while ptr < hop_count:
        if ptr and not port.node.is_switch:
            return None
        path[ptr] = port.num
        ptr += 1
        nxt = next_port(port.node, path[ptr], count=count)
        if nxt is None:
            return None
        port = nxt
    path[ptr] = port.num
    return port, path


def count_back(port: Port, hop_count: int, path: bytes | bytearray) -> Node:
    """The way back of a DR SMP whose outbound walk just succeeded and changed nothing: the
    same links in reverse, only counted. Returns the node it ends at."""
    node = port.node
    for ptr in range(hop_count, 0, -1):
        out = node.ports[path[ptr] or 1]
        peer = out.peer
        if peer is None:
            continue  # a switch's own port 0: no link crossed
        count_hop(out, peer)
        node = peer.node
    return node


def dr_in(port: Port, hop_count: int, path: bytes | bytearray, *,
          count: bool = True) -> Port | None:
    """ibsim ``direct_route_in_MAD``: walk ``path`` (a ReturnPath) backwards from the target
    ``port``; return the port reached (the requester's, when the way back is intact)."""
    if hop_count > MAX_HOP_COUNT:
        return None
    for ptr in range(hop_count, 0, -1):
        if ptr < hop_count and not port.node.is_switch:
            return None
        nxt = next_port(port.node, path[ptr], count=count)
        if nxt is None:
            return None
        port = nxt
    return port


def with_return_path(mad: bytes, path: bytes | bytearray) -> bytes:
    """``mad`` with its 64-byte ReturnPath replaced by ``path``."""
    return mad[:DR_RETURN_PATH_OFFSET] + bytes(path) + mad[DR_RETURN_PATH_OFFSET + DR_PATH_SIZE:]


def tag_tid(mad: bytes, slot: int) -> bytes:
    """ibsim ``update_trid`` as 0.10 does it: TID bits 63-48 become the sender's slot, bits
    47-0 (umad2sim's agent id and the application's TID) are kept."""
    return mad[:8] + slot.to_bytes(2, "big") + mad[10:]


def with_tid(mad: bytes, tid: int) -> bytes:
    """``mad`` with TransactionID ``tid``."""
    return mad[:8] + tid.to_bytes(8, "big") + mad[16:]


__all__ = [
    "HOP_WORDS", "MAX_LID_HOPS", "agent_port", "count_back", "count_hop", "dr_in", "dr_out",
    "lid_route",
    "link_valid", "next_port", "tag_tid", "with_return_path", "with_tid",
]
