"""Numeric encodings shared by several formats (IBA 14.2.5.6, 15.2.5.16; wire-formats.md §6)."""

from __future__ import annotations

from enum import IntEnum


class NodeType(IntEnum):
    """NodeInfo.NodeType (IBA 14.2.5.3)."""

    CA = 1
    SWITCH = 2
    ROUTER = 3


class PortState(IntEnum):
    """PortInfo.PortState (IBA 14.2.5.6); NOP means "no change" in a Set."""

    NOP = 0
    DOWN = 1
    INIT = 2
    ARMED = 3
    ACTIVE = 4


class PhysState(IntEnum):
    """PortInfo.PortPhysicalState (IBA 14.2.5.6); NOP means "no change" in a Set."""

    NOP = 0
    SLEEP = 1
    POLLING = 2
    DISABLED = 3
    TRAINING = 4
    LINK_UP = 5
    ERROR_RECOVERY = 6


class Mtu(IntEnum):
    """IB MTU codes (IBA 14.2.5.6 NeighborMTU, 15.2.5.16 PathRecord.MTU)."""

    MTU_256 = 1
    MTU_512 = 2
    MTU_1024 = 3
    MTU_2048 = 4
    MTU_4096 = 5

    @property
    def bytes(self) -> int:
        """The MTU in bytes."""
        return 128 << self.value

    @classmethod
    def from_bytes_(cls, n: int) -> Mtu:
        """The code for an MTU given in bytes (256 .. 4096)."""
        return cls(n.bit_length() - 8)


class Rate(IntEnum):
    """Static rate codes (Linux ``enum ib_rate``; PathRecord and MCMemberRecord Rate)."""

    R2_5 = 2
    R10 = 3
    R30 = 4
    R5 = 5
    R20 = 6
    R40 = 7
    R60 = 8
    R80 = 9
    R120 = 10
    R14 = 11
    R56 = 12
    R112 = 13
    R168 = 14
    R25 = 15
    R100 = 16
    R200 = 17
    R300 = 18
    R28 = 19
    R50 = 20
    R400 = 21
    R600 = 22


RATE_GBPS: dict[int, float] = {
    2: 2.5, 3: 10, 4: 30, 5: 5, 6: 20, 7: 40, 8: 60, 9: 80, 10: 120, 11: 14, 12: 56, 13: 112,
    14: 168, 15: 25, 16: 100, 17: 200, 18: 300, 19: 28, 20: 50, 21: 400, 22: 600,
}


class Selector(IntEnum):
    """Selector bits 7-6 of the MTU / Rate / PacketLifeTime bytes (IBA 15.2.5.16)."""

    GREATER = 0
    LESS = 1
    EXACTLY = 2
    BEST = 3


class LinkWidth(IntEnum):
    """LinkWidth masks (IBA 14.2.5.6)."""

    X1 = 1
    X4 = 2
    X8 = 4
    X12 = 8
    X2 = 16


WIDTH_LANES: dict[int, int] = {1: 1, 2: 4, 4: 8, 8: 12, 16: 2}


class LinkSpeed(IntEnum):
    """LinkSpeed masks (IBA 14.2.5.6); extended speeds are a separate mask."""

    SDR = 1
    DDR = 2
    QDR = 4


class LinkSpeedExt(IntEnum):
    """LinkSpeedExt masks (IBA 14.2.5.6)."""

    FDR = 1
    EDR = 2
    HDR = 4
    NDR = 8
