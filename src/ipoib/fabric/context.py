"""The open device of the verbs API (``ibv_open_device``): queries, async events, MAD agents.

Split from :mod:`.hca` (which re-exports :class:`Context`) so that the queue pairs, CQs and
address handles stay in one module of reasonable size. A context belongs to one CA node; the
node tells it about port changes (:meth:`Context.post_async_event`), and MAD agents opened
through it are closed with it.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from ..wire.gid import make_gid
from . import agents
from .node import Ca, Port
from .verbs import AsyncEvent, DeviceAttr, PortAttr, VerbsError

if TYPE_CHECKING:
    from .fabric import Fabric


class Context:
    """An open HCA (``ibv_open_device``). Also the place for MAD agents and async events."""

    def __init__(self, fabric: Fabric, node: Ca) -> None:
        self.fabric = fabric
        self.node = node
        self.name = node.name
        self._events: deque[AsyncEvent] = deque()
        self._event_handler: Callable[[AsyncEvent], None] | None = None
        self._agents: list[agents.MadAgent] = []
        node.contexts.append(self)

    def close(self) -> None:
        """Close the device and the MAD agents opened through it."""
        for a in self._agents:
            a.close()
        if self in self.node.contexts:
            self.node.contexts.remove(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _port(self, port_num: int) -> Port:
        if not 1 <= port_num <= self.node.nports:
            raise VerbsError(f"{self.name} has no port {port_num}")
        return self.node.ports[port_num]

    def query_device(self) -> DeviceAttr:
        """Device identity and limits."""
        n = self.node
        return DeviceAttr(node_guid=n.guid, sys_image_guid=n.sys_guid, vendor_id=n.vendor_id,
                          vendor_part_id=n.device_id, hw_ver=n.revision,
                          phys_port_cnt=n.nports)

    def query_port(self, port_num: int) -> PortAttr:
        """State, LID, SM LID, LMC and MTUs of a port."""
        p = self._port(port_num)
        return PortAttr(
            state=p.state, max_mtu=p.mtu_cap, active_mtu=p.active_mtu,
            gid_tbl_len=p.extra.get("guid_cap", 1) or 1, port_cap_flags=p.cap_mask,
            max_msg_sz=1 << 31, pkey_tbl_len=len(p.pkeys), lid=p.lid, sm_lid=p.master_sm_lid,
            lmc=p.lmc, max_vl_num=p.vl_cap, sm_sl=p.master_sm_sl,
            subnet_timeout=p.subnet_timeout, active_width=p.width_active,
            active_speed=p.speed_active, phys_state=p.phys,
        )

    def query_gid(self, port_num: int, index: int) -> bytes:
        """GID ``index`` of a port: index 0 is subnet prefix + port GUID; others are unset."""
        p = self._port(port_num)
        if index < 0 or index >= max(p.extra.get("guid_cap", 1), 1):
            raise VerbsError(f"GID index {index} out of range")
        return make_gid(p.gid_prefix, p.guid) if index == 0 else bytes(16)

    def query_pkey(self, port_num: int, index: int) -> int:
        """P_Key table entry ``index``."""
        p = self._port(port_num)
        if not 0 <= index < len(p.pkeys):
            raise VerbsError(f"P_Key index {index} out of range")
        return p.pkeys[index]

    def get_pkey_index(self, port_num: int, pkey: int) -> int:
        """The index holding exactly ``pkey`` (``ibv_get_pkey_index``)."""
        p = self._port(port_num)
        try:
            return p.pkeys.index(pkey)
        except ValueError:
            raise VerbsError(f"P_Key {pkey:#06x} not in the table", errno.ENOENT) from None

    def set_async_handler(self, handler: Callable[[AsyncEvent], None] | None) -> None:
        """Have events delivered to ``handler`` (deferred) instead of queued."""
        self._event_handler = handler

    def post_async_event(self, port_num: int, event_type: str) -> None:
        """Queue an event (called by the node when its ports change)."""
        ev = AsyncEvent(event_type, port_num)
        handler = self._event_handler
        if handler is None:
            self._events.append(ev)
        else:
            self.fabric.defer(lambda: handler(ev))

    def get_async_event(self) -> AsyncEvent | None:
        """The oldest queued async event, or None."""
        return self._events.popleft() if self._events else None

    def open_mad_agent(
        self, port_num: int, mgmt_class: int, class_version: int = 1,
        handler: Callable[[agents.ReceivedMad], None] | None = None, *,
        requests: bool = False,
    ) -> agents.MadAgent:
        """Register for MADs of ``mgmt_class`` on ``port_num`` (QP0 for SMPs, else QP1);
        ``requests=True`` also takes unsolicited MADs (see :class:`~.agents.MadAgent`)."""
        self._port(port_num)
        agent = agents.MadAgent(self.fabric, self.node, port_num, mgmt_class, class_version,
                                handler, requests=requests)
        self._agents.append(agent)
        return agent

    def set_issm(self, port_num: int, on: bool = True) -> None:
        """Set PortInfo.CapabilityMask.IsSM, as opening ``/dev/infiniband/issmN`` does."""
        agents.set_issm(self._port(port_num), on)
