"""fabric layer (see ARCHITECTURE.md): the simulated subnet, its nodes, HCA verbs, SMA/PMA."""

from .agents import MadAgent, ReceivedMad
from .fabric import MAX_HOPS, Fabric, Timer
from .hca import (
    AH,
    CQ,
    PD,
    QP,
    WC,
    AHAttr,
    AsyncEvent,
    Context,
    GlobalRoute,
    PortAttr,
    QPAttr,
    QPCap,
    QPInitAttr,
    QPState,
    QPType,
    RecvWR,
    SendWR,
    VerbsError,
    WCStatus,
)
from .node import Ca, Node, Port, Switch
from .topology import Link, NodeSpec, Topology

__all__ = [
    "AH", "CQ", "MAX_HOPS", "PD", "QP", "WC", "AHAttr", "AsyncEvent", "Ca", "Context",
    "Fabric", "GlobalRoute", "Link", "MadAgent", "Node", "NodeSpec", "Port", "PortAttr",
    "QPAttr", "QPCap", "QPInitAttr", "QPState", "QPType", "ReceivedMad", "RecvWR", "SendWR",
    "Switch", "Timer", "Topology", "VerbsError", "WCStatus",
]
