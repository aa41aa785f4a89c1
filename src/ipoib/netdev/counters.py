"""Interface counters: the eight ``ethtool -S`` statistics of Linux IPoIB, plus drop reasons.

Linux counts every discard in ``tx_dropped`` / ``rx_dropped`` and nowhere says why. Here each
drop also increments a named reason (ARCHITECTURE.md, law 5), and the two totals are *derived*
from the reasons, so they can never disagree. Reasons are plain strings from the table below;
an unknown reason is a programming error and raises ``KeyError`` at once, not in the field.

Drop reasons (``tx_*`` add to ``tx_dropped``, ``rx_*`` to ``rx_dropped``, ``mad_*`` to
neither: they are management datagrams, which Linux does not count on the netdev either):

========================  ======================================================================
reason                    meaning
========================  ======================================================================
tx_no_carrier             sent while the carrier is off (broadcast group not joined, port down)
tx_bad_ethertype          EtherType Linux would not send (IP, IPv6, ARP, RARP, TIPC only)
tx_malformed              an IP packet from the host too short for its header
tx_no_route               no route covers the destination (no on-link prefix, no gateway)
tx_too_long               larger than the path or link MTU (also counts a tx error)
tx_queue_full             a neighbour's or path's resolution queue was full (3 by default)
tx_neigh_failed           address resolution failed (ARP/ND unanswered), or the destination
                          is FAILED and inside its retry back-off
tx_neigh_table_full       no room for a new neighbour: gc_thresh3 reached and nothing to evict
tx_neigh_evicted          packets queued on a neighbour that forced GC removed
tx_path_failed            the PathRecord query failed (NO_RECORDS, timeout, other SA error)
tx_path_table_full        no room for a new path and nothing to evict
tx_flushed                queued packets thrown away by a flush or by the device going down
tx_mcast_no_broadcast     multicast sent before the broadcast group is attached
tx_mcast_queue_full       a multicast group's join queue was full (64)
tx_mcast_table_full       no room for another multicast group (``max_groups``)
tx_mcast_join_failed      a send-only join failed twice; its queue was dropped
tx_post_failed            the HCA refused the send (also counts a tx error)
rx_bad_qkey               Q_Key mismatch (counted by the HCA model, listed for completeness)
rx_bad_pkey               P_Key mismatch (HCA)
rx_malformed              headers that do not parse
rx_unknown_ethertype      an EtherType the stack does not take
rx_own_mcast_echo         our own multicast, replicated back to us (SLID and QPN are ours)
rx_mcast_not_joined       multicast for a group we are not a full member of
rx_no_carrier             received while the interface is down
mad_unknown_tid           an SA response whose TransactionID matches nothing in flight
mad_malformed             an SA response that does not decode
mad_unexpected            an SA MAD of the wrong class, method or attribute
mad_queue_full            an SA query refused: the client's queue is full
========================  ======================================================================
"""

from __future__ import annotations

from collections import Counter

__all__ = ["DROP_REASONS", "ERROR_REASONS", "ETHTOOL_STATS", "OFFLOAD_STATS", "Counters"]

ETHTOOL_STATS: tuple[str, ...] = (
    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "tx_errors", "rx_dropped",
    "tx_dropped", "multicast",
)
"""``ethtool -S ibX`` in Linux's order (``ipoib_ethtool.c``)."""

DROP_REASONS: frozenset[str] = frozenset({
    "tx_no_carrier", "tx_bad_ethertype", "tx_too_long", "tx_queue_full", "tx_neigh_failed",
    "tx_malformed", "tx_no_route",
    "tx_neigh_table_full", "tx_neigh_evicted", "tx_path_failed", "tx_path_table_full",
    "tx_flushed", "tx_mcast_no_broadcast", "tx_mcast_queue_full", "tx_mcast_table_full", "tx_mcast_join_failed",
    "tx_post_failed",
    "rx_bad_qkey", "rx_bad_pkey", "rx_malformed", "rx_unknown_ethertype", "rx_own_mcast_echo",
    "rx_mcast_not_joined", "rx_no_carrier",
    "mad_unknown_tid", "mad_malformed", "mad_unexpected", "mad_queue_full",
})
"""Every drop reason; see the module docstring for what each means."""

OFFLOAD_STATS: tuple[str, ...] = ("tx_tso_packets", "tx_csum_offload", "tx_offload_software")
"""Transmit offload events, listed after the eight as a driver's own statistics (mlx5 has
``tx_tso_packets`` too): super-packets the HCA segmented, packets it checksummed, and
packets the driver segmented or checksummed itself (no ready neighbour, a path too small)."""

ERROR_REASONS: frozenset[str] = frozenset({"tx_too_long", "tx_post_failed"})
"""Drops that Linux also counts in ``tx_errors``."""


class Counters:
    """One interface's counters, shared by its neighbour, path, multicast and SA machines.

    The glue bumps the packet and byte counters on its hot path (plain attributes, no
    calls); the state machines call :meth:`drop`. ``events`` counts things worth seeing that
    are not drops (probes sent, joins failed, unsolicited replies ignored ...).
    """

    __slots__ = (
        "_tx_errors",
        "drops",
        "events",
        "multicast",
        "rx_bytes",
        "rx_packets",
        "tx_bytes",
        "tx_packets",
    )

    def __init__(self) -> None:
        self.rx_packets = 0
        self.tx_packets = 0
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.multicast = 0
        self._tx_errors = 0
        self.drops: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def drop(self, reason: str, n: int = 1) -> None:
        """Count ``n`` packets dropped for ``reason`` (one of :data:`DROP_REASONS`)."""
        if reason not in DROP_REASONS:
            raise KeyError(f"unknown drop reason {reason!r}")
        if n <= 0:
            return
        self.drops[reason] += n
        if reason in ERROR_REASONS:
            self._tx_errors += n

    def event(self, name: str, n: int = 1) -> None:
        """Count ``n`` occurrences of a non-drop event."""
        self.events[name] += n

    @property
    def tx_dropped(self) -> int:
        """Sum of the ``tx_*`` drop reasons."""
        return sum(v for k, v in self.drops.items() if k.startswith("tx_"))

    @property
    def rx_dropped(self) -> int:
        """Sum of the ``rx_*`` drop reasons."""
        return sum(v for k, v in self.drops.items() if k.startswith("rx_"))

    @property
    def tx_errors(self) -> int:
        """Sends that failed (too long for the path, refused by the HCA)."""
        return self._tx_errors

    def ethtool(self) -> dict[str, int]:
        """The eight ``ethtool -S`` statistics, in Linux's order."""
        return {name: int(getattr(self, name)) for name in ETHTOOL_STATS}

    def offload(self) -> dict[str, int]:
        """The transmit offload statistics (:data:`OFFLOAD_STATS`)."""
        return {name: self.events[name] for name in OFFLOAD_STATS}

    def format_ethtool(self) -> str:
        """``ethtool -S ibX`` text: the eight statistics, the offload ones, then the
        non-zero drop reasons."""
        lines = ["NIC statistics:"]
        lines += [f"     {k}: {v}" for k, v in (self.ethtool() | self.offload()).items()]
        lines += [f"     drop_{k}: {v}" for k, v in sorted(self.drops.items()) if v]
        return "\n".join(lines) + "\n"
