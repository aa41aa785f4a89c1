"""The IPoIB driver (netdev layer, see ARCHITECTURE.md): :class:`IpoibDevice` and its parts.

The device is the glue; the state machines it drives are sans-I/O and usable alone:
:class:`NeighTable` (next hop → neighbour), :class:`PathCache` (GID → PathRecord → AH),
:class:`McastTable` (the broadcast join and the other groups), :class:`SaClient` (SA MADs).
"""

from .control import FLUSH_LEVELS, DeviceConfig
from .counters import DROP_REASONS, Counters
from .device import IpoibDevice
from .madclient import SaClient, SaClientConfig
from .mcast import McastConfig, McastTable, McastView
from .neigh import NeighConfig, NeighTable, NeighView, NudState
from .path import AhReaper, PathCache, PathView
from .resolve import Addressing, Resolver, Route, RouteView

__all__ = [
    "DROP_REASONS", "FLUSH_LEVELS", "Addressing", "AhReaper", "Counters", "DeviceConfig",
    "IpoibDevice", "McastConfig", "McastTable", "McastView", "NeighConfig", "NeighTable",
    "NeighView", "NudState", "PathCache", "PathView", "Resolver", "Route", "RouteView",
    "SaClient", "SaClientConfig",
]
