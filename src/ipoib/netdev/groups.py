"""Why the interface is a full member of each multicast group, and joins and leaves to match.

Receiving a group needs a full join at the SA (RFC 4391 §4; linux-ipoib.md §5). Linux learns
the groups from the netdev's multicast list, which the kernel fills when sockets join; above a
TUN device the driver sees no such list, so membership comes from three places instead:

- **the host's explicit requests** (:meth:`Membership.join_group`): the host layer calls
  them when a socket joins, counted so that every join is paired with a leave;
- **the host's IGMP and MLD reports** (:meth:`Membership.host_report`), read from the packets
  it transmits (RFC 2236, 3376, 2710, 3810 via :func:`ipoib.wire.ip.parse_membership`). Reports
  repeat (unsolicited twice, then on every query), so they count as one reason per group,
  dropped by a leave/done or a change to an empty include list;
- **the interface's own IPv6 addresses** (:meth:`Membership.address_added`): the
  solicited-node group of each address and ff02::1, which neighbour discovery needs.

Each reason holds one member count in :class:`~ipoib.netdev.mcast.McastTable`; the table
leaves the group when the last one goes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, IPv6Interface, ip_address

from ..wire.errors import WireError
from ..wire.ip import parse_membership
from ..wire.nd import ALL_NODES, solicited_node
from .actions import Action
from .counters import Counters
from .mcast import McastTable
from .resolve import Addressing, IpIface

__all__ = ["Membership"]

Runner = Callable[[list[Action], float], None]


class Membership:
    """Full-join reasons per MGID; see the module docstring."""

    def __init__(self, mcast: McastTable, addressing: Addressing, counters: Counters,
                 run: Runner) -> None:
        self.mcast = mcast
        self.addressing = addressing
        self.counters = counters
        self.run = run
        self.requested: Counter[bytes] = Counter()
        self.reported: set[bytes] = set()

    def mgid_of(self, group: IPv4Address | IPv6Address | str | bytes) -> bytes:
        """The MGID of a multicast group address (ValueError for anything else)."""
        if isinstance(group, bytes):
            group = ip_address(group)
        a = ip_address(group) if isinstance(group, str) else group
        mgid = self.addressing.mgid(a.packed) if a.is_multicast else None
        if mgid is None:
            raise ValueError(f"{a} is not a multicast group")
        return mgid

    # --- explicit requests --------------------------------------------------------------------

    def join_group(self, group: IPv4Address | IPv6Address | str, now: float) -> None:
        """One more explicit member of ``group``."""
        mgid = self.mgid_of(group)
        self.requested[mgid] += 1
        self.run(self.mcast.join(mgid, now), now)

    def leave_group(self, group: IPv4Address | IPv6Address | str, now: float) -> None:
        """One explicit member fewer (an unmatched leave is ignored and counted)."""
        mgid = self.mgid_of(group)
        if self.requested[mgid] <= 0:
            self.counters.event("mcast_leave_unmatched")
            return
        self.requested[mgid] -= 1
        if not self.requested[mgid]:
            del self.requested[mgid]
        self.run(self.mcast.leave(mgid, now), now)

    # --- IGMP / MLD from the host ---------------------------------------------------------------

    def host_report(self, packet: bytes, now: float) -> None:
        """An IP packet the host sent that may be IGMP or MLD: follow its membership news."""
        try:
            report = parse_membership(packet)
        except (WireError, ValueError):
            self.counters.event("host_report_malformed")
            return
        if report is None:
            return
        for g in report.joined:
            mgid = self.addressing.mgid(g.packed)
            if mgid is not None and mgid not in self.reported:
                self.reported.add(mgid)
                self.counters.event("host_report_join")
                self.run(self.mcast.join(mgid, now), now)
        for g in report.left:
            mgid = self.addressing.mgid(g.packed)
            if mgid is not None and mgid in self.reported:
                self.reported.discard(mgid)
                self.counters.event("host_report_leave")
                self.run(self.mcast.leave(mgid, now), now)

    # --- our own addresses -----------------------------------------------------------------------

    def address_added(self, iface: IpIface, now: float) -> None:
        """IPv6 needs its solicited-node group, and all-nodes with the first address."""
        if not isinstance(iface, IPv6Interface):
            return
        if self._v6_count() == 1:
            self._join(ALL_NODES.packed, now)
        self._join(solicited_node(iface.ip).packed, now)

    def address_removed(self, iface: IpIface, now: float) -> None:
        """Undo :meth:`address_added`."""
        if not isinstance(iface, IPv6Interface):
            return
        self._leave(solicited_node(iface.ip).packed, now)
        if self._v6_count() == 0:
            self._leave(ALL_NODES.packed, now)

    def _v6_count(self) -> int:
        return sum(1 for k in self.addressing.addresses if len(k) == 16)

    def _join(self, dst: bytes, now: float) -> None:
        mgid = self.addressing.mgid(dst)
        if mgid is not None:
            self.run(self.mcast.join(mgid, now), now)

    def _leave(self, dst: bytes, now: float) -> None:
        mgid = self.addressing.mgid(dst)
        if mgid is not None:
            self.run(self.mcast.leave(mgid, now), now)
