"""An LSO send carried whole: the segments of one TSO work request, as one object from the
sending QP to the receiving CQ, for as long as nothing needs them one by one.

An HCA with UD LSO cuts a TCP super-packet into MTU-sized segments, and each crosses the
fabric as a UD SEND of its own (linux-ipoib.md §4). Made eagerly, every segment costs a
header rebuilt and summed, a packet joined, a payload sliced, a completion row, and the
receiving host's GRO then undoes the cutting. So the simulated HCA sends an
:class:`LsoBurst` instead: the address handle's header template, the driver's 4-byte header
and the super-packet with its MSS (:class:`~ipoib.wire.offload.TsoSegments`). The fabric
carries it over a cached route (:meth:`~ipoib.fabric.fabric.Fabric.transmit_burst`), and the
receiving QP completes it whole (:meth:`~ipoib.fabric.hca.QP.complete_burst`) as a
:class:`RecvBurst` in its CQ, which the IPoIB driver hands to the host's GRO as it is.

Everything that can be observed is as if the segments had crossed one by one: each port on
the route counts every packet and its words, the receive queue gives up one work request per
segment, the CQ counts one completion per segment, the driver counts every packet. Wherever
a segment would be seen or treated on its own, the burst is cut into its packets at that
point and they go on exactly as an eagerly cut send does: a capture tap, a route that is not
cached (a fault, a link down, multicast, the sender's own LID), a QP that would refuse or
could not take every segment (P_Key, Q_Key, MTU, too few receives posted, a CQ too full),
a poller that asks for WCs (:meth:`~ipoib.fabric.hca.CQ.poll`), a host that does not coalesce.
"""

from __future__ import annotations

from ..wire.ib import GRH_SIZE, ICRC_SIZE, UdTemplate
from ..wire.offload import TsoSegments
from .verbs import RecvWR, WCOpcode, WCStatus, WcTuple

_SUCCESS, _OP_RECV = WCStatus.SUCCESS, WCOpcode.RECV


class LsoBurst:
    """The packets of one LSO send, not yet made: ``template`` (the AH's header for the
    sending QP), then ``head`` and a segment of ``segs`` as each packet's payload."""

    __slots__ = ("count", "head", "segs", "template", "words")

    def __init__(self, template: UdTemplate, head: bytes, segs: TsoSegments) -> None:
        self.template = template
        self.head = head
        self.segs = segs
        self.count = segs.count
        h = len(head) + segs.hl
        self.words = (segs.count - 1) * self._words(h + segs.mss) + self._words(h + segs.last)
        """What the packets add to a port's data counter (words, the ICRC's included)."""

    def _words(self, n: int) -> int:
        return (self.template.header_size + n + (-n & 3) + ICRC_SIZE) >> 2

    @property
    def largest(self) -> int:
        """The payload bytes of the largest packet (a full segment and ``head``)."""
        return len(self.head) + self.segs.hl + self.segs.mss

    def packets(self) -> list[bytes]:
        """The packets, as the sending QP makes them for a chain (:meth:`UdTemplate.packets_sg`)."""
        return self.template.packets_sg(self.head, self.segs.cut())


class RecvBurst:
    """A burst completed whole on a UD QP: one receive completion per segment, in order,
    each on one of ``wrs``. :meth:`wcs` makes the completion rows."""

    __slots__ = ("bits", "burst", "pkey_index", "qp_num", "sl", "slid", "src_qp", "wrs")

    def __init__(self, burst: LsoBurst, wrs: list[RecvWR], qp_num: int, src_qp: int,
                 pkey_index: int, slid: int, sl: int, bits: int) -> None:
        self.burst = burst
        self.wrs = wrs
        self.qp_num = qp_num
        self.src_qp = src_qp
        self.pkey_index = pkey_index
        self.slid = slid
        self.sl = sl
        self.bits = bits
        """The DLID path bits (LMC)."""

    @property
    def count(self) -> int:
        """Completions it stands for."""
        return len(self.wrs)

    @property
    def head(self) -> bytes:
        """What every packet's payload starts with (the sender's first gather entry)."""
        return self.burst.head

    @property
    def segs(self) -> TsoSegments:
        """The rest of the payloads: the segments of this super-packet, not yet cut."""
        return self.burst.segs

    def data_bytes(self) -> int:
        """The payload bytes of all its packets (each ``head`` included, the GRH area not)."""
        return self.count * len(self.head) + self.segs.ip_bytes()

    def wcs(self) -> list[WcTuple]:
        """The completions one by one, as :meth:`~ipoib.fabric.hca.QP.complete` makes them."""
        head = self.head
        qpn, src, pki, slid, sl, bits = (self.qp_num, self.src_qp, self.pkey_index, self.slid,
                                         self.sl, self.bits)
        datas = [head + s for s in self.segs.cut()]
        return [(wr.wr_id, _SUCCESS, _OP_RECV, GRH_SIZE + len(d), qpn, src, pki, slid, sl, bits,
                 0, 0, None, d) for wr, d in zip(self.wrs, datas, strict=True)]
