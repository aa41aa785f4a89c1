"""A fabric's description: nodes, their ports and the cables between them.

This is what a topology file (``netfile``) or a generator (``topogen``) produces, and what
:class:`ipoib.fabric.Fabric` is built from. It is plain, immutable data: no state, no I/O.
GUIDs follow ibsim's default numbering unless the file sets them (ibsim-protocol.md §14).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..wire.enums import LinkSpeed, LinkWidth, NodeType


@dataclass(frozen=True, slots=True)
class Link:
    """One cable: (node name, port) at each end, with the enabled width/speed masks."""

    a: str
    a_port: int
    b: str
    b_port: int
    width: int = LinkWidth.X4
    speed: int = LinkSpeed.SDR
    ext_speed: int = 0


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node as the topology file declares it.

    ``name`` is the nodeid (also its NodeDescription unless ``desc`` is given). ``port_guids``
    has one entry per port for a CA (port 1 first) and a single entry (= node GUID) for a
    switch. ``lids`` maps a port number (0 for a switch) to a LID pre-assigned by the file,
    ``lmcs`` the same ports to their pre-assigned LMC (absent = 0).
    """

    kind: NodeType
    name: str
    nports: int
    node_guid: int
    sys_guid: int
    port_guids: tuple[int, ...]
    vendor_id: int = 0x2C9
    device_id: int = 0
    desc: str = ""
    lids: dict[int, int] = field(default_factory=dict, hash=False, compare=True)
    enhanced_port0: bool = False
    lmcs: dict[int, int] = field(default_factory=dict, hash=False, compare=True)

    @property
    def description(self) -> str:
        """The NodeDescription string."""
        return self.desc or self.name

    def port_guid(self, port: int) -> int:
        """The GUID of ``port`` (a switch has one GUID for all its ports)."""
        if self.kind == NodeType.SWITCH:
            return self.port_guids[0]
        return self.port_guids[port - 1]


@dataclass(frozen=True, slots=True)
class Topology:
    """A whole fabric description; ``nodes`` keep file order (the first is the SM's default)."""

    nodes: tuple[NodeSpec, ...]
    links: tuple[Link, ...]
    source: str = "<generated>"

    def node(self, name: str) -> NodeSpec:
        """The node named ``name`` (KeyError if absent)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    @property
    def switches(self) -> list[NodeSpec]:
        """All switches, in file order."""
        return [n for n in self.nodes if n.kind == NodeType.SWITCH]

    @property
    def cas(self) -> list[NodeSpec]:
        """All channel adapters (HCAs), in file order."""
        return [n for n in self.nodes if n.kind == NodeType.CA]
