"""The IPoIB interface: the host's IP packets in and out, the pump contract.

:class:`IpoibDevice` is sans-I/O (docs/conventions.md, the pump contract): the host layer
calls :meth:`~IpoibDevice.transmit` per IP packet read from its TUN device (``IFF_NO_PI``:
the first nibble tells IPv4 from IPv6), :meth:`~IpoibDevice.process` after every batch,
:meth:`~IpoibDevice.get_timer` for the next deadline and :meth:`~IpoibDevice.drain_to_host`
for the packets to write back. It touches the fabric only through the verbs objects of
:mod:`ipoib.fabric.hca` and SA MADs on QP1 (ARCHITECTURE.md law 1); the state, the verbs
set-up, the SA and the events are in :mod:`.control`.

**Transmit** (law 6, the 2004 mail's design): the destination is peeked from the IP header,
the route cache gives the next hop, the neighbour table the neighbour, and a ready
neighbour's ``tx`` — a reused work request already addressed (AH, remote QPN, Q_Key), the
path's MTU limit and the shared :class:`~ipoib.netdev.actions.Ah` — is posted with the 4-byte
IPoIB header and the packet as a two-entry gather list (one copy, made by the HCA). No lookup
by 20-byte address, no SA traffic, no object made but the packet.
:meth:`IpoibDevice.transmit_batch` does the same for a read batch, posting each run of packets
to one neighbour as one chain. Everything else — multicast, unresolved neighbours, the host's
ND, IGMP and MLD — takes the slow path through the sans-I/O tables.

**Receive**: completions from a fixed ring of receive work requests, each reposted as it is
consumed; the GRH area and the IPoIB header are stripped, our own multicast echo is dropped
by SLID and QPN (as Linux does), ARP and ND go to the resolver, IP goes to the host.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from ..fabric import hca
from ..fabric.hca import VerbsError
from ..fabric.verbs import WcTuple
from ..wire.gid import gid_to_str
from ..wire.ip import IpProto
from ..wire.ipoib import ENCAP_IPV4, ENCAP_IPV6, EtherType
from ..wire.offload import (
    OffloadError,
    TsoSegments,
    complete_partial,
    insert_checksum,
    segment_tcp,
)
from .actions import Ah, Frame
from .control import HDR, SIGNALED, DeviceConfig, DeviceControl, Tx
from .counters import Counters
from .mcast import McastView
from .neigh import NeighView
from .path import PathView
from .resolve import Resolver, RouteView

__all__ = ["DeviceConfig", "IpoibDevice"]

_GRH_FLAG = int(hca.WCFlags.GRH)
_IP_CSUM = int(hca.SendFlags.IP_CSUM)
_SEND = hca.WROpcode.SEND
_FLUSH_ERR = int(hca.WCStatus.WR_FLUSH_ERR)
_ICMPV6 = int(IpProto.ICMPV6)
_IPV4, _IPV6, _ARP = int(EtherType.IPV4), int(EtherType.IPV6), int(EtherType.ARP)


def _l4_start(packet: bytes) -> int:
    """Where the transport header starts if none but the IP header comes before it."""
    return (packet[0] & 15) * 4 if packet[0] >> 4 == 4 else 40


class IpoibDevice(DeviceControl):
    """One IPoIB interface in datagram mode on one HCA port (see the module docstring).

    ``IpoibDevice(ctx, port_num=1, *, pkey=0xFFFF, config=DeviceConfig())``; then
    :meth:`open`, and the pump.
    """

    # --- the transmit path ---------------------------------------------------------------------

    def transmit(self, packet: bytes, now: float) -> None:
        """Send one IP packet from the host (TUN, ``IFF_NO_PI``: the first nibble tells the
        version). The hot path: route cache → neighbour → prebuilt send → post."""
        if not self._carrier:
            self.stats.drop("tx_no_carrier")
            return
        v = packet[0] >> 4 if packet else 0
        if v != 4 and v != 6:
            self.stats.drop("tx_bad_ethertype")
            return
        hop = self._fast_hop(packet)
        hdr = ENCAP_IPV4 if v == 4 else ENCAP_IPV6
        if hop is None:
            self._route(packet, now, True)
            return
        e = self._neigh_entries.get(hop)  # NeighTable.lookup, inlined
        if e is None or not e.ready:
            self._neigh_send(hop, packet, now)
            return
        e.used = now
        wr, maxlen, ah = e.tx or self._neigh_tx(e)
        n = len(packet)
        if n > maxlen:
            self.stats.drop("tx_too_long")
            return
        seq = self._seq
        self._seq = seq + 1
        wr.wr_id = ah.last_send = seq
        if seq & self._sig_mask:
            wr.send_flags = 0
        else:
            wr.send_flags = SIGNALED
        try:
            self._ready_qp().post_send_sg(wr, hdr, packet)
        except VerbsError:
            self.stats.drop("tx_post_failed")
            return
        c = self.stats
        c.tx_packets += 1
        c.tx_bytes += n + 4

    def _fast_hop(self, packet: bytes) -> bytes | None:
        """The route cache's next hop for an IP packet that may take the fast path: any
        IPv4 or IPv6 but the host's ND, which gets our link-layer option on the slow path."""
        v = packet[0] >> 4 if packet else 0
        if v == 4:
            return self._hops.get(packet[16:20])
        if v != 6:
            return None
        hop = self._hops.get(packet[24:40])
        if hop is not None and packet[6] == _ICMPV6 and Resolver.is_nd(packet):
            return None
        return hop

    def transmit_batch(self, packets: Sequence[bytes], now: float) -> None:
        """Send IP packets from the host in order, as :meth:`transmit` does one by one; a
        run of IPv4 packets for the same ready neighbour is posted as one chain
        (``QP.post_send_sg_list``), so the QP, the address handle and the header are looked
        at once per run. Anything else takes :meth:`transmit`, between the runs."""
        if not self._carrier:
            self.stats.drop("tx_no_carrier", len(packets))
            return
        hops, entries = self._hops, self._neigh_entries
        run: list[bytes] = []
        run_tx: Tx | None = None
        for packet in packets:
            if packet and packet[0] >> 4 == 4:
                hop = hops.get(packet[16:20])
                if hop is not None:
                    e = entries.get(hop)
                    if e is not None and e.ready:
                        e.used = now
                        tx = e.tx or self._neigh_tx(e)
                        if tx is not run_tx:
                            if run_tx is not None:
                                self._post_run(run_tx, run)
                            run, run_tx = [], tx
                        run.append(packet)
                        continue
            if run_tx is not None:
                self._post_run(run_tx, run)
                run, run_tx = [], None
            self.transmit(packet, now)
        if run_tx is not None:
            self._post_run(run_tx, run)

    def _post_run(self, tx: Tx, run: list[bytes]) -> None:
        """Post IPv4 packets through one prebuilt send (a chain), counting as transmit does."""
        wr, maxlen, ah = tx
        c = self.stats
        if max(map(len, run)) > maxlen:
            keep = [p for p in run if len(p) <= maxlen]
            c.drop("tx_too_long", len(run) - len(keep))
            run = keep
            if not run:
                return
        n = len(run)
        seq = self._seq
        self._seq = seq + n
        ah.last_send = seq + n - 1
        wr.send_flags = SIGNALED
        try:
            self._ready_qp().post_send_sg_list(wr, ENCAP_IPV4, run, seq, self._sig_mask)
        except VerbsError:
            c.drop("tx_post_failed", n)
            return
        c.tx_packets += n
        c.tx_bytes += sum(map(len, run)) + 4 * n

    @property
    def tx_offload(self) -> bool:
        """Whether the HCA takes checksum offload and LSO on UD, so the host may hand the
        device TCP super-packets and packets with their checksum left to it (Linux's IPoIB
        sets ``NETIF_F_IP_CSUM`` and ``NETIF_F_TSO`` from the same two capabilities)."""
        attr = self.ctx.query_device()
        return bool(attr.device_cap_flags & hca.DeviceCapFlags.UD_IP_CSUM) and attr.max_tso > 0

    def transmit_offload(self, packet: bytes, mss: int, now: float, csum_start: int = 0,
                         csum_offset: int = 0) -> None:
        """Send an IP packet whose TCP/UDP checksum the host left to the device (its stack's
        CHECKSUM_PARTIAL), or, with ``mss``, a TCP super-packet to be cut into segments of
        ``mss`` payload bytes (GSO). To a ready neighbour it is posted with the HCA's
        offloads (``TSO``, ``IP_CSUM``) and counted once, as Linux counts an skb; on every
        other path the device segments and checksums it itself first (what the stack does
        for a device without the offloads) and each result goes as :meth:`transmit`.
        ``csum_start`` and ``csum_offset`` say where the partial checksum is (from the
        ``virtio_net_hdr``): where it is not right after the IP header, the HCA could not find
        it, and the driver completes it itself."""
        if not self._carrier:
            self.stats.drop("tx_no_carrier")
            return
        v = packet[0] >> 4 if packet else 0
        hop = self._fast_hop(packet)
        e = self._neigh_entries.get(hop) if hop is not None else None
        if e is not None and e.ready:
            e.used = now
            wr, maxlen, ah = e.tx or self._neigh_tx(e)
            if self._offload_fits(packet, mss, maxlen, csum_start):
                self._post_offload(wr, ah, ENCAP_IPV4 if v == 4 else ENCAP_IPV6, packet, mss)
                return
        try:
            if mss:
                done = segment_tcp(packet, mss)
            elif csum_start == _l4_start(packet):
                done = [insert_checksum(packet)]
            else:
                done = [complete_partial(packet, csum_start, csum_offset)]
        except OffloadError:
            self.stats.drop("tx_malformed")
            return
        self.stats.event("tx_offload_software")
        for p in done:
            self.transmit(p, now)

    @staticmethod
    def _offload_fits(packet: bytes, mss: int, maxlen: int, csum_start: int) -> bool:
        """Whether the HCA can take ``packet``: every packet it makes fits the neighbour's
        path, and a lone partial checksum is where the HCA looks for it."""
        t = _l4_start(packet)
        if not mss:
            return len(packet) <= maxlen and csum_start == t
        return len(packet) > t + 12 and t + (packet[t + 12] >> 4) * 4 + mss <= maxlen

    def _post_offload(self, wr: hca.SendWR, ah: Ah, hdr: bytes, packet: bytes,
                      mss: int) -> None:
        """Post through a neighbour's prebuilt send with the offloads switched on for it."""
        seq = self._seq
        self._seq = seq + 1
        wr.wr_id = ah.last_send = seq
        flags = wr.send_flags = SIGNALED if not seq & self._sig_mask else 0
        if mss:
            wr.opcode, wr.mss = hca.WROpcode.TSO, mss
        else:
            wr.send_flags = flags | _IP_CSUM
        try:
            self._ready_qp().post_send_offload(wr, hdr, packet)
        except VerbsError:
            self.stats.drop("tx_post_failed")
            return
        finally:
            wr.opcode, wr.mss, wr.send_flags = _SEND, 0, flags
        c = self.stats
        c.tx_packets += 1
        c.tx_bytes += len(packet) + 4
        c.event("tx_tso_packets" if mss else "tx_csum_offload")

    def _route(self, packet: bytes, now: float, from_host: bool) -> None:
        """The slow path of a packet: checks, host ND/IGMP/MLD, multicast, routing."""
        v = packet[0] >> 4 if packet else 0
        if v == 4 and len(packet) >= 20:
            dst, et = packet[16:20], EtherType.IPV4
            mgid = self.addressing.mgid(dst)
            if mgid is not None and from_host and packet[9] == IpProto.IGMP:
                self.groups.host_report(packet, now)
        elif v == 6 and len(packet) >= 40:
            dst, et = packet[24:40], EtherType.IPV6
            if from_host and Resolver.is_nd(packet):
                packet = self.resolver.host_nd(packet)
            mgid = self.addressing.mgid(dst)
            if mgid is not None and from_host and packet[6] in (0, _ICMPV6):
                self.groups.host_report(packet, now)
        else:
            self.stats.drop("tx_malformed" if v in (4, 6) else "tx_bad_ethertype")
            return
        if mgid is not None:
            self._send_mcast(mgid, et, packet, now)
            return
        if self.addressing.is_local(dst):
            self.stats.event("tx_local")
            self._to_host.append(packet)
            if self._wakeup is not None:
                self._wakeup()  # something to drain
            return
        hop = self.addressing.next_hop(dst)
        if hop is None:
            self.stats.drop("tx_no_route")
            return
        e = self.neighs.lookup(hop, now)
        if e is not None and e.ready:
            self._post_tx(e.tx or self._neigh_tx(e), HDR[et], packet)
        else:
            self._neigh_send(hop, packet, now)

    def _neigh_send(self, hop: bytes, packet: bytes, now: float) -> None:
        """The neighbour table's slow path: resolve, queue, or drop."""
        self.stats.event("tx_slow_path")
        et = EtherType.IPV4 if len(hop) == 4 else EtherType.IPV6
        self.run(self.neighs.send(hop, Frame(et, packet), now), now)

    def _send_mcast(self, mgid: bytes, et: int, packet: bytes, now: float) -> None:
        g = self.mcast.lookup(mgid, now)
        if g is not None and g.ready:
            self._post_tx(g.tx or self._group_tx(g), HDR[et], packet)
        else:
            self.run(self.mcast.send(mgid, Frame(et, packet), now), now)

    # --- LinkSender (what the resolver sends through) ------------------------------------------

    def send_arp(self, dest: bytes | None, packet: bytes, now: float) -> None:
        """An ARP packet to ``dest`` (via its path) or to the broadcast group."""
        if dest is None:
            self._send_mcast(self.broadcast.gid, EtherType.ARP, packet, now)
        else:
            self.run(self.paths.send(dest, Frame(EtherType.ARP, packet), now), now)

    def send_ip(self, packet: bytes, now: float) -> None:
        """An IP packet the driver made (NS, NA): routed as the host's, without host hooks."""
        self._route(packet, now, False)

    # --- the pump ------------------------------------------------------------------------------

    def process(self, now: float) -> None:
        """Everything due at ``now``: events, completions, SA answers, timers.

        The SA agent's and the async events' handlers (run from the fabric's ``process``)
        set ``_woken``; completions are seen in the CQs; the tables' earliest deadline is kept
        until a call into them may have moved it. An idle device costs a few reads."""
        self._now = now
        if self._wakeup is not None:  # armed before polling: no completion goes unannounced
            self.recv_cq.req_notify()
            self.send_cq.req_notify()
        if self._woken:
            self._woken = False
            if self._events:
                self._handle_events(now)
            mads = self._mads
            while mads:
                self._run_sa(self.sa.receive(mads.popleft().mad, now), now)
        if len(self.recv_cq):
            self._poll_rx(now)
        if len(self.send_cq):
            self._poll_tx()
        due = self._timer_due()
        if due is not None and due <= now:
            t = self.sa.get_timer()
            if t is not None and t <= now:
                self._run_sa(self.sa.handle_timer(now), now)
            for machine in (self.neighs, self.mcast, self.reaper):
                t = machine.get_timer()
                if t is not None and t <= now:
                    self.run(machine.handle_timer(now), now)
        self._sig_mask = 0 if self.reaper.dead else self._every_mask

    def get_timer(self) -> float | None:
        """``now`` while completions, MADs or events wait; else the earliest deadline."""
        if self._woken or len(self.recv_cq) or len(self.send_cq):
            return self._now
        return self._timer_due()

    def _timer_due(self) -> float | None:
        if not self._due_stale:
            return self._due
        best: float | None = None
        for t in (self.sa.get_timer(), self.neighs.get_timer(), self.mcast.get_timer(),
                  self.reaper.get_timer()):
            if t is not None and (best is None or t < best):
                best = t
        self._due, self._due_stale = best, False
        return best

    def drain_to_host(self) -> list[bytes]:
        """The IP packets received for the host since the last call, in order."""
        out, self._to_host = self._to_host, []
        if not self._bursts_up:
            return cast(list[bytes], out)
        self._bursts_up = 0
        cut: list[bytes] = []
        for p in out:
            if isinstance(p, bytes):
                cut.append(p)
            else:
                cut.extend(p.cut())
        return cut

    def drain_to_gro(self) -> list[bytes | TsoSegments]:
        """:meth:`drain_to_host` for a host that coalesces (:class:`~ipoib.netdev.gro.Gro`):
        an LSO send received whole (:mod:`ipoib.fabric.burst`) comes as its
        :class:`~ipoib.wire.offload.TsoSegments`, for GRO to hand up as one frame."""
        out, self._to_host = self._to_host, []
        self._bursts_up = 0
        return out

    def _poll_rx(self, now: float) -> None:
        """Receive completions: strip the GRH area and IPoIB header, dispatch, repost."""
        cq = self.recv_cq
        if cq.bursts:
            self._poll_bursts()
            return
        wcs = cq.poll_tuples(len(cq))
        if self.qp is not None:
            self._rx_rows(wcs, now)

    def _poll_bursts(self) -> None:
        """:meth:`_poll_rx` with LSO bursts among the completions: each handed up whole (the
        host's GRO makes one frame of it), the rows around them as usual, in order."""
        entries = self.recv_cq.poll_bursts()
        if self.qp is None:
            return
        rows: list[WcTuple] = []
        for x in entries:
            if isinstance(x, tuple):
                rows.append(x)
                continue
            if rows:
                self._rx_rows(rows, self._now)
                rows = []
            head = x.head
            if self.opened and (head == ENCAP_IPV4 or head == ENCAP_IPV6):
                self._to_host.append(x.segs)
                self._bursts_up += 1
                c = self.stats
                c.rx_packets += x.count
                c.rx_bytes += x.data_bytes()
                self._repost(x.wrs)
            else:
                self._rx_rows(x.wcs(), self._now)
        if rows:
            self._rx_rows(rows, self._now)

    def _rx_rows(self, wcs: list[WcTuple], now: float) -> None:
        """Receive completion rows: strip, dispatch, repost."""
        ring, to_host, c = self._ring, self._to_host, self.stats
        lid, qpn, up = self.lid, self.qpn, self.opened
        if up and len(wcs) >= 4:  # a batch of unicast IPv4 only: handed up in one go
            v4 = [w[13] for w in wcs if not w[1] and not w[10] & _GRH_FLAG
                  and w[13].startswith(ENCAP_IPV4)]
            if len(v4) == len(wcs):
                to_host.extend([d[4:] for d in v4])
                c.rx_packets += len(v4)
                c.rx_bytes += sum(map(len, v4))
                self._repost([ring[w[0]] for w in wcs])
                return
        repost = []
        ipv4 = ipv4_bytes = 0
        for wr_id, status, _, _, _, src_qp, _, slid, _, _, flags, _, grh, data in wcs:
            if status:
                if status == _FLUSH_ERR:
                    continue
                c.drop("rx_malformed")
            elif not up:
                c.drop("rx_no_carrier")
            elif not (flags & _GRH_FLAG and grh is not None and grh[24] == 0xFF):
                if len(data) >= 4 and data[0] == 8 and data[1] == 0:  # IPv4, as _rx does it
                    to_host.append(data[4:])
                    ipv4 += 1
                    ipv4_bytes += len(data)
                else:
                    self._rx(data, now, to_host, c)
            elif slid == lid and src_qp == qpn:
                c.drop("rx_own_mcast_echo")  # the HCA's copy of our own multicast
            else:
                c.multicast += 1
                self._rx(data, now, to_host, c)
            repost.append(ring[wr_id])
        c.rx_packets += ipv4
        c.rx_bytes += ipv4_bytes
        self._repost(repost)

    def _repost(self, repost: list[hca.RecvWR]) -> None:
        """Give the receive buffers back to the QP (each failure counted)."""
        qp = self.qp
        if not repost or qp is None:
            return
        try:
            qp.post_recv_list(repost)
        except VerbsError:
            for wr in repost:  # one by one
                try:
                    qp.post_recv(wr)
                except VerbsError:
                    self.stats.event("rx_repost_failed")

    def _rx(self, data: bytes, now: float, to_host: list[bytes | TsoSegments],
            c: Counters) -> None:
        """One received IPoIB payload (header included)."""
        et = data[0] << 8 | data[1] if len(data) >= 4 else -1
        if et == _IPV4:
            to_host.append(data[4:])
        elif et == _IPV6:
            pkt = data[4:]
            if not (len(pkt) > 40 and pkt[6] == _ICMPV6 and Resolver.is_nd(pkt)
                    and self.resolver.nd_received(pkt, now)):
                to_host.append(pkt)
        elif et == _ARP:
            self.resolver.arp_received(data[4:], now)
        else:
            c.drop("rx_malformed" if et < 0 else "rx_unknown_ethertype")
            return
        c.rx_packets += 1
        c.rx_bytes += len(data)

    # --- views ---------------------------------------------------------------------------------

    def neigh_view(self) -> list[NeighView]:
        """The neighbour table (``ip neigh``), as data."""
        return self.neighs.views()

    def format_neigh(self) -> str:
        """``ip neigh show dev ibX``."""
        return self.neighs.format(self.name)

    def path_view(self) -> list[PathView]:
        """The path cache (debugfs ``ibX_path``), as data."""
        return self.paths.views()

    def format_path(self) -> str:
        """The ``ibX_path`` file."""
        return self.paths.format()

    def mcast_view(self) -> list[McastView]:
        """The multicast groups (debugfs ``ibX_mcg``), as data."""
        return self.mcast.views()

    def format_mcast(self) -> str:
        """The ``ibX_mcg`` file."""
        return self.mcast.format()

    def route_view(self) -> list[RouteView]:
        """The routes the device decides next hops with."""
        return self.addressing.views()

    def counters(self) -> dict[str, int]:
        """``ethtool -S`` statistics and the offload ones, then ``drop_<reason>`` for every
        non-zero reason."""
        out = self.stats.ethtool() | self.stats.offload()
        out.update({f"drop_{k}": v for k, v in sorted(self.stats.drops.items()) if v})
        return out

    def format_counters(self) -> str:
        """``ethtool -S ibX`` text with the drop reasons."""
        return self.stats.format_ethtool()

    def describe(self) -> dict[str, Any]:
        """Identity and link state, for ``ipoib show`` and logs."""
        return {
            "name": self.name, "port": self.port_num, "lid": self.lid, "sm_lid": self.sm_lid,
            "gid": gid_to_str(self.gid), "qpn": self.qpn, "hwaddr": str(self.hwaddr),
            "broadcast": str(self.broadcast), "mtu": self.mtu, "carrier": self._carrier,
            "pkey": self.pkey, "qkey": self.qkey, "link_local": str(self.link_local),
            "addresses": [str(i) for i in self.addressing.addresses.values()],
        }

    def __repr__(self) -> str:
        return (f"<IpoibDevice {self.name} {self.ctx.name}/{self.port_num} lid={self.lid} "
                f"qpn={self.qpn:#x} carrier={self._carrier}>")
