"""The plain objects and constants of the verbs API (:mod:`.hca`), named after pyverbs.

Enumerations carry the ``ibv_*`` values; attribute and work-request objects are small
dataclasses the caller fills in; :class:`WC` is what a CQ returns (and :data:`WcTuple` the
same completion as a tuple, for the fast poll). Nothing here does
anything: the behaviour lives in :mod:`.hca`.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import TYPE_CHECKING

from ..wire.ib import GRH_SIZE

if TYPE_CHECKING:
    from .hca import AH, CQ


class VerbsError(Exception):
    """A verb failed (pyverbs raises ``PyverbsRDMAError(msg, errno)`` for the same)."""

    def __init__(self, msg: str, error: int = errno.EINVAL) -> None:
        super().__init__(msg)
        self.errno = error


class QPType(IntEnum):
    """``ibv_qp_type``."""

    RC = 2
    UC = 3
    UD = 4


class QPState(IntEnum):
    """``ibv_qp_state``."""

    RESET = 0
    INIT = 1
    RTR = 2
    RTS = 3
    SQD = 4
    SQE = 5
    ERR = 6


class WCStatus(IntEnum):
    """``ibv_wc_status`` (the ones this simulator produces)."""

    SUCCESS = 0
    LOC_LEN_ERR = 1
    LOC_QP_OP_ERR = 2
    WR_FLUSH_ERR = 5


class WCOpcode(IntEnum):
    """``ibv_wc_opcode``."""

    SEND = 0
    TSO = 7
    RECV = 128


class WCFlags(IntFlag):
    """``ibv_wc_flags``."""

    GRH = 1
    WITH_IMM = 2


class WROpcode(IntEnum):
    """``ibv_wr_opcode`` (UD supports the two sends)."""

    SEND = 2
    SEND_WITH_IMM = 3
    TSO = 10
    """A TCP super-packet the HCA cuts into ``SendWR.mss``-byte segments (UD LSO)."""


class SendFlags(IntFlag):
    """``ibv_send_flags``."""

    SIGNALED = 2
    SOLICITED = 4
    IP_CSUM = 16
    """The HCA computes the packet's TCP/UDP checksum (needs ``UD_IP_CSUM``)."""


class DeviceCapFlags(IntFlag):
    """``ibv_device_cap_flags`` (the ones that change what a driver may ask of the HCA)."""

    UD_IP_CSUM = 1 << 18


class QPAttrMask(IntFlag):
    """``ibv_qp_attr_mask``: which :class:`QPAttr` fields a ``modify`` takes."""

    STATE = 1 << 0
    PKEY_INDEX = 1 << 4
    PORT = 1 << 5
    QKEY = 1 << 6
    SQ_PSN = 1 << 16


class QPCreateFlags(IntFlag):
    """``ibv_qp_create_flags``."""

    BLOCK_SELF_MCAST_LB = 2


@dataclass(frozen=True, slots=True)
class DeviceAttr:
    """``ibv_query_device`` (the fields that mean something here)."""

    node_guid: int
    sys_image_guid: int
    vendor_id: int
    vendor_part_id: int
    hw_ver: int
    phys_port_cnt: int
    max_qp: int = 1 << 16
    max_qp_wr: int = 1 << 15
    max_cq: int = 1 << 16
    max_cqe: int = 1 << 22
    max_pkeys: int = 64
    max_mcast_grp: int = 1 << 13
    max_mcast_qp_attach: int = 1 << 10
    device_cap_flags: int = DeviceCapFlags.UD_IP_CSUM
    max_tso: int = 0x10000
    """``ibv_device_attr_ex.tso_caps.max_tso`` (UD): the largest ``TSO`` send; 0: no LSO."""


@dataclass(frozen=True, slots=True)
class PortAttr:
    """``ibv_query_port``: state, addressing and MTUs of one port."""

    state: int
    max_mtu: int
    active_mtu: int
    gid_tbl_len: int
    port_cap_flags: int
    max_msg_sz: int
    pkey_tbl_len: int
    lid: int
    sm_lid: int
    lmc: int
    max_vl_num: int
    sm_sl: int
    subnet_timeout: int
    active_width: int
    active_speed: int
    phys_state: int


@dataclass(frozen=True, slots=True)
class AsyncEvent:
    """An asynchronous event (``ibv_get_async_event``): a name and the port it concerns."""

    event_type: str
    port_num: int


@dataclass(frozen=True, slots=True)
class GlobalRoute:
    """The GRH part of an address handle."""

    dgid: bytes
    flow_label: int = 0
    sgid_index: int = 0
    hop_limit: int = 0xFF
    traffic_class: int = 0


@dataclass(frozen=True, slots=True)
class AHAttr:
    """Address handle attributes: where a UD send goes."""

    dlid: int
    sl: int = 0
    src_path_bits: int = 0
    static_rate: int = 0
    is_global: bool = False
    port_num: int = 1
    gr: GlobalRoute | None = None


@dataclass(frozen=True, slots=True)
class QPCap:
    """Queue sizes of a QP."""

    max_send_wr: int = 128
    max_recv_wr: int = 128
    max_send_sge: int = 1
    max_recv_sge: int = 1
    max_inline_data: int = 0


@dataclass(slots=True)
class QPAttr:
    """``ibv_qp_attr``: what :meth:`QP.modify` sets and :meth:`QP.query` reports."""

    qp_state: QPState = QPState.RESET
    qkey: int = 0
    pkey_index: int = 0
    port_num: int = 1
    sq_psn: int = 0
    path_mtu: int = 4


@dataclass(slots=True)
class QPInitAttr:
    """``ibv_qp_init_attr``."""

    qp_type: QPType = QPType.UD
    scq: CQ | None = None
    rcq: CQ | None = None
    cap: QPCap = field(default_factory=QPCap)
    sq_sig_all: bool = True
    create_flags: int = 0


@dataclass(slots=True)
class SendWR:
    """A send work request; ``payload`` replaces a scatter/gather list."""

    wr_id: int = 0
    payload: bytes = b""
    opcode: WROpcode = WROpcode.SEND
    send_flags: int = 2  # SendFlags.SIGNALED, as a plain int
    imm_data: int = 0
    ah: AH | None = None
    remote_qpn: int = 0
    remote_qkey: int = 0
    mss: int = 0
    """Payload bytes per segment of a ``TSO`` send (``ibv_send_wr.tso.mss``)."""

    def set_wr_ud(self, ah: AH, rqpn: int, rqkey: int) -> None:
        """Address the request (pyverbs ``SendWR.set_wr_ud``)."""
        self.ah, self.remote_qpn, self.remote_qkey = ah, rqpn, rqkey


@dataclass(frozen=True, slots=True)
class RecvWR:
    """A receive work request: a buffer of ``length`` bytes (the GRH area included)."""

    wr_id: int = 0
    length: int = 4096


@dataclass(slots=True)
class WC:
    """A work completion. ``byte_len`` of a UD receive counts the 40-byte GRH area.
    (Not frozen: a frozen dataclass costs a ``object.__setattr__`` per field, per packet.)"""

    wr_id: int
    status: WCStatus
    opcode: WCOpcode
    byte_len: int
    qp_num: int
    src_qp: int = 0
    pkey_index: int = 0
    slid: int = 0
    sl: int = 0
    dlid_path_bits: int = 0
    wc_flags: int = 0
    imm_data: int = 0
    grh: bytes | None = None
    data: bytes = b""

    @property
    def buffer(self) -> bytes:
        """The receive buffer as hardware fills it: 40 GRH bytes (zeros without GRH), data."""
        return (self.grh or bytes(GRH_SIZE)) + self.data


WcTuple = tuple[int, WCStatus, WCOpcode, int, int, int, int, int, int, int, int, int,
                "bytes | None", bytes]
"""A completion as a plain tuple, fields in :class:`WC`'s order (``CQ.poll_tuples``): what a
CQ holds, so the receive path builds no object per packet."""


def wc_tuple(wc: WC) -> WcTuple:
    """``wc`` as a :data:`WcTuple`."""
    return (wc.wr_id, wc.status, wc.opcode, wc.byte_len, wc.qp_num, wc.src_qp, wc.pkey_index,
            wc.slid, wc.sl, wc.dlid_path_bits, wc.wc_flags, wc.imm_data, wc.grh, wc.data)
