"""The typed vocabulary between the IPoIB driver's state machines and the device glue.

The neighbour table, the path cache, the multicast table and the SA client are sans-I/O: they
take ``now`` and inputs and *return* what should happen, as the frozen dataclasses below, so the
glue can dispatch with ``match``. Nothing here does work; the one mutable object is :class:`Ah`,
the shared, reference-counted address-handle holder (Linux ``struct ipoib_ah``).

Who emits what:

=====================  ===========================================  ==========================
action                 meaning for the glue                         emitted by
=====================  ===========================================  ==========================
SendArpRequest         ARP request for ``ip`` (broadcast, or        neigh
                       unicast to ``dest`` when probing)
SendNeighSolicit       IPv6 NS for ``ip`` (solicited-node group,    neigh
                       or unicast to ``dest``)
NeighSend              send ``frames`` now via ``neigh`` (its AH    neigh
                       is valid; rebuild ``neigh.tx`` if None)
PathSend               send ``frames`` to ``hwaddr`` via ``ah``     path (packets queued on a
                       (no neighbour: e.g. an ARP reply)            path, not a neighbour)
StartPathQuery         ask the SA for a PathRecord to ``dgid``;     path
                       report back with ``seq``
CancelPathQuery        the query ``seq`` for ``dgid`` is moot       path (flush)
CreateAh / DestroyAh   create / destroy the verbs AH for ``ah``     path, mcast / AhReaper
SendJoin / SendLeave   SubnAdmSet / SubnAdmDelete MCMemberRecord    mcast
CancelJoin             the join ``seq`` for ``mgid`` is moot        mcast
AttachQp / DetachQp    attach / detach the UD QP to a group; set    mcast
                       the QP's Q_Key when ``qkey`` is given
ReleaseQueue           send a group's queued ``frames`` via ``ah``  mcast
CarrierOn/CarrierOff   link state; CarrierOn carries the UD MTU     mcast
                       and Q_Key learnt from the broadcast group
Drop                   ``n`` packets dropped for ``reason``:        all
                       already counted in the shared Counters
SendMad                post these 256 bytes on QP1 to the SM        madclient
PathQueryDone ...      an SA transaction finished (see madclient)   madclient
=====================  ===========================================  ==========================
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from ..fabric.verbs import GlobalRoute
from ..wire.mad import ClassPortInfo
from ..wire.sa import MCMemberRecord, PathRecord

if TYPE_CHECKING:
    from .neigh import Neigh

__all__ = [
    "Action", "Ah", "AhAttr", "AttachQp", "CancelJoin", "CancelPathQuery", "CarrierOff",
    "CarrierOn", "ClassPortInfoDone", "CreateAh", "DestroyAh", "DetachQp", "Drop", "Frame", "JoinDone", "LeaveDone", "NeighSend", "PathQueryDone", "PathSend",
    "ReleaseQueue", "SaAction", "SaFailed", "SendArpRequest", "SendJoin", "SendLeave",
    "SendMad", "SendNeighSolicit", "StartPathQuery",
]


class Frame(NamedTuple):
    """A packet waiting for resolution: its EtherType and the bytes after the IPoIB header.

    A tuple, not a dataclass, because it is made per queued packet.
    """

    ethertype: int
    payload: bytes


# --- address handles ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AhAttr:
    """What an address handle is built from (verbs ``rdma_ah_attr``), plus the path MTU.

    ``mtu`` is the IB MTU code of the path (0 when unknown); verbs AHs do not carry it, but
    the glue needs it to refuse packets the path cannot carry.
    """

    dlid: int
    sl: int = 0
    static_rate: int = 0
    src_path_bits: int = 0
    grh: GlobalRoute | None = None
    mtu: int = 0


class Ah:
    """One shared address handle and its holders (Linux ``struct ipoib_ah``).

    ``refs`` counts the path, each neighbour and each multicast group holding it;
    ``last_send`` is the glue's send sequence number of the last post that used it (set on
    the hot path), so the reaper destroys it only once that send has completed. ``valid``
    goes False on a light flush: the next transmit re-queries the path. ``handle`` is the
    glue's verbs AH, set on :class:`CreateAh`.
    """

    __slots__ = ("attr", "handle", "id", "last_send", "refs", "valid")

    def __init__(self, ah_id: int, attr: AhAttr) -> None:
        self.id = ah_id
        self.attr = attr
        self.refs = 1
        self.valid = True
        self.last_send = -1
        self.handle: Any = None

    def __repr__(self) -> str:
        return f"Ah(id={self.id}, dlid={self.attr.dlid:#06x}, refs={self.refs}, valid={self.valid})"


# --- neighbour and path actions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendArpRequest:
    """Send an ARP request for IPv4 ``ip``; ``dest`` (20 bytes) makes it a unicast probe."""

    ip: bytes
    dest: bytes | None = None


@dataclass(frozen=True, slots=True)
class SendNeighSolicit:
    """Send an IPv6 Neighbour Solicitation for ``ip``; ``dest`` makes it a unicast probe."""

    ip: bytes
    dest: bytes | None = None


@dataclass(frozen=True, slots=True)
class NeighSend:
    """Send ``frames`` in order through ``neigh`` (resolved: hardware address and valid AH)."""

    neigh: Neigh
    frames: tuple[Frame, ...]


@dataclass(frozen=True, slots=True)
class PathSend:
    """Send ``frames`` to ``hwaddr`` through ``ah``: packets that waited on a path."""

    hwaddr: bytes
    ah: Ah
    frames: tuple[Frame, ...]


@dataclass(frozen=True, slots=True)
class StartPathQuery:
    """Query the SA for a PathRecord to ``dgid``; hand the answer back with ``seq``."""

    dgid: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class CancelPathQuery:
    """The PathRecord query ``seq`` for ``dgid`` is no longer wanted (its path was flushed)."""

    dgid: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class CreateAh:
    """Create the verbs AH for ``ah.attr`` and store it in ``ah.handle``."""

    ah: Ah


@dataclass(frozen=True, slots=True)
class DestroyAh:
    """Destroy ``ah.handle``: no holder is left and no posted send still uses it."""

    ah: Ah


@dataclass(frozen=True, slots=True)
class Drop:
    """``n`` packets were dropped for ``reason`` (already counted; for tracing and logs)."""

    reason: str
    n: int = 1


# --- multicast actions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendJoin:
    """SubnAdmSet(MCMemberRecord) ``record`` with ``mask``; answer with ``seq``."""

    mgid: bytes
    record: MCMemberRecord
    mask: int
    seq: int


@dataclass(frozen=True, slots=True)
class SendLeave:
    """SubnAdmDelete(MCMemberRecord): ``record.join_state`` holds the bits to remove."""

    mgid: bytes
    record: MCMemberRecord
    mask: int


@dataclass(frozen=True, slots=True)
class CancelJoin:
    """The join ``seq`` for ``mgid`` is no longer wanted (left or flushed meanwhile)."""

    mgid: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class AttachQp:
    """Attach the UD QP to ``mgid``/``mlid``; when ``qkey`` is set, set the QP's Q_Key too."""

    mgid: bytes
    mlid: int
    qkey: int | None = None


@dataclass(frozen=True, slots=True)
class DetachQp:
    """Detach the UD QP from ``mgid``/``mlid``."""

    mgid: bytes
    mlid: int


@dataclass(frozen=True, slots=True)
class ReleaseQueue:
    """Send the ``frames`` that waited for the join of ``mgid``, through ``ah``, in order."""

    mgid: bytes
    ah: Ah
    frames: tuple[Frame, ...]


@dataclass(frozen=True, slots=True)
class CarrierOn:
    """The broadcast group is joined: carrier on, with the link's UD MTU and Q_Key.

    Emitted after every broadcast join (a rejoin may bring new parameters); idempotent.
    """

    mtu: int
    qkey: int


@dataclass(frozen=True, slots=True)
class CarrierOff:
    """Carrier off (the device went down or is being flushed)."""


# --- SA client results ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendMad:
    """Post ``mad`` on QP1 to the SM's LID, remote QPN 1, Q_Key 0x80010000."""

    mad: bytes
    tid: int


@dataclass(frozen=True, slots=True)
class PathQueryDone:
    """A PathRecord query answered with one record."""

    cookie: Hashable
    record: PathRecord


@dataclass(frozen=True, slots=True)
class JoinDone:
    """A join (SubnAdmSet MCMemberRecord) succeeded; ``record`` is the group as the SA has it."""

    cookie: Hashable
    record: MCMemberRecord


@dataclass(frozen=True, slots=True)
class LeaveDone:
    """A leave (SubnAdmDelete MCMemberRecord) succeeded."""

    cookie: Hashable
    record: MCMemberRecord


@dataclass(frozen=True, slots=True)
class ClassPortInfoDone:
    """The SA's ClassPortInfo (CapabilityMask2 bit 12: send-only full member support)."""

    cookie: Hashable
    info: ClassPortInfo


@dataclass(frozen=True, slots=True)
class SaFailed:
    """An SA transaction failed: ``status`` is the MAD status (0 on timeout), ``reason`` its
    name (``"timeout"``, ``"ERR_NO_RECORDS"``, ``"malformed"``, ``"cancelled"`` ...)."""

    cookie: Hashable
    kind: str
    status: int
    reason: str

    @property
    def timed_out(self) -> bool:
        """True when no answer came after every retry."""
        return self.reason == "timeout"


Action = (
    SendArpRequest | SendNeighSolicit | NeighSend | PathSend | StartPathQuery | CancelPathQuery
    | CreateAh | DestroyAh | Drop | SendJoin | SendLeave | CancelJoin | AttachQp | DetachQp
    | ReleaseQueue | CarrierOn | CarrierOff
)
"""Everything the neighbour, path and multicast tables return."""

SaAction = SendMad | PathQueryDone | JoinDone | LeaveDone | ClassPortInfoDone | SaFailed
"""Everything the SA client returns."""
