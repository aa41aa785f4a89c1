"""What the SA reads from the SM, and the port facts every SA record needs.

The SA answers from the SM's view of the subnet: the :class:`~ipoib.sm.discovery.Subnet` of
the last sweep, the LIDs and LFTs it programmed, the partitions in force and the multicast
groups. :class:`SaSource` is that view as a protocol, so the SA modules do not import the
manager. The helpers here compute what OpenSM computes per port: its rate from the active
width and speed (``ib_port_info_compute_rate``), its P_Keys, whether two ports share one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ...wire.enums import RATE_GBPS, WIDTH_LANES
from ..discovery import Subnet
from ..graph import Port
from ..partitions import PartitionPlan

if TYPE_CHECKING:
    from .mcmember import McastGroups

MIN_RATE = 2
MAX_RATE = 22

LANE_GBPS = {1: 2.5, 2: 5.0, 4: 10.0}
"""Per-lane Gb/s of LinkSpeedActive (SDR, DDR, QDR)."""
LANE_GBPS_EXT = {1: 14.0, 2: 25.0, 4: 50.0, 8: 100.0}
"""Per-lane Gb/s of LinkSpeedExtActive (FDR, EDR, HDR, NDR), nominal as ``enum ib_rate``."""

_BY_GBPS = sorted((gbps, code) for code, gbps in RATE_GBPS.items())


class SaConfig(Protocol):
    """The SM settings the SA needs."""

    @property
    def sm_key(self) -> int: ...
    @property
    def subnet_prefix(self) -> int: ...
    @property
    def subnet_timeout(self) -> int: ...
    @property
    def packet_life_time(self) -> int: ...


class SaSource(Protocol):
    """The SM state the SA answers from (the manager provides it)."""

    @property
    def config(self) -> SaConfig: ...

    subnet: Subnet | None
    lids: dict[int, int]
    by_lid: dict[int, tuple[int, int]]
    lfts: dict[int, bytearray]
    partition_plan: PartitionPlan | None
    groups: McastGroups


def rate_code(width: int, speed: int, ext: int = 0) -> int:
    """The static-rate code of a link (IBA 14.2.5.6 widths and speeds; 0 if unknown)."""
    lanes = WIDTH_LANES.get(width, 0)
    lane = LANE_GBPS_EXT.get(ext) if ext else LANE_GBPS.get(speed)
    if not lanes or lane is None:
        return 0
    gbps = lanes * lane
    best = 0
    for value, code in _BY_GBPS:
        if value <= gbps + 1e-9:
            best = code
    return best


def rate_gbps(code: int) -> float:
    """Gb/s of a rate code (0.0 for an undefined one): rates compare by this, not by code."""
    return float(RATE_GBPS.get(code, 0.0))


def rate_valid(code: int) -> bool:
    """OpenSM's ``ib_rate_is_valid``."""
    return MIN_RATE <= code <= MAX_RATE


def mtu_valid(code: int) -> bool:
    """OpenSM's ``ib_mtu_is_valid``: 256 .. 4096."""
    return 1 <= code <= 5


def port_rate(port: Port) -> int:
    """The rate code of a port's active link."""
    return rate_code(port.link_width_active, port.link_speed_active, port.link_speed_ext_active)


def pkeys_of(sub: Subnet, node_guid: int, num: int) -> tuple[int, ...]:
    """The valid P_Key entries of an endport (block 0 as last read or written)."""
    return tuple(p for p in sub.pkeys.get((node_guid, num), ()) if p & 0x7FFF)


def match_pkey(a: int, b: int) -> bool:
    """Same base P_Key and at least one full member (IBA 10.9.3; OpenSM ``match_pkey``)."""
    return a & 0x7FFF == b & 0x7FFF and bool((a | b) & 0x8000)


def share_this_pkey(sub: Subnet, a: tuple[int, int], b: tuple[int, int], pkey: int) -> bool:
    """Both endports hold ``pkey``'s base and one of them as a full member."""
    base = pkey & 0x7FFF
    ka = [p for p in pkeys_of(sub, *a) if p & 0x7FFF == base]
    kb = [p for p in pkeys_of(sub, *b) if p & 0x7FFF == base]
    return any(match_pkey(x, y) for x in ka for y in kb)


def common_pkey(sub: Subnet, a: tuple[int, int], b: tuple[int, int]) -> int:
    """The first of ``a``'s P_Keys (by base value) that ``b`` shares, or 0."""
    kb = pkeys_of(sub, *b)
    for x in sorted(pkeys_of(sub, *a), key=lambda p: p & 0x7FFF):
        if any(match_pkey(x, y) for y in kb):
            return x
    return 0


def has_pkey(sub: Subnet, port: tuple[int, int], pkey: int) -> bool:
    """The endport holds ``pkey``'s base, in any membership (OpenSM ``osm_physp_has_pkey``)."""
    return any(p & 0x7FFF == pkey & 0x7FFF for p in pkeys_of(sub, *port))


def partition_sl(plan: PartitionPlan | None, pkey: int) -> int:
    """The SL of the partition ``pkey`` belongs to (0 without one)."""
    if plan is None:
        return 0
    for prtn in plan.partitions:
        if prtn.pkey == pkey & 0x7FFF:
            return prtn.sl
    return 0


def port_by_lid(src: SaSource, lid: int) -> tuple[int, int] | None:
    """(node GUID, port) holding ``lid``."""
    return src.by_lid.get(lid)


def lid_of(lids: Mapping[int, int], sub: Subnet, where: tuple[int, int]) -> int:
    """The LID of an endport given as (node GUID, port)."""
    port = sub.graph.nodes[where[0]].ports.get(where[1])
    return lids.get(port.guid, 0) if port is not None else 0
