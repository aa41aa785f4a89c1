"""Programming the subnet: PortInfo, SwitchInfo, LFT, MFT and P_Key table Sets (IBA 14.4.4-8).

After discovery and the computations (LIDs, routes, partitions, multicast trees) the SM writes
what differs from what the nodes reported, in two phases, as OpenSM's state manager does:

1. **Configure**: every switch's SwitchInfo (LinearFDBTop, LifeTimeValue, and PortStateChange
   written back to clear it), the LFT blocks that differ from what the SM last wrote, the MFT
   blocks of changed groups, P_Key table blocks that differ from what was read, and a PortInfo
   Set per port: LID, MasterSMLID, GID prefix, M_Key 0, NeighborMTU and OperationalVLs (the
   smaller capability of the two ends), SubnetTimeOut, ClientReregister on CA ports after the
   SM (re)started, and PortState ARMED for ports still in INIT.
2. **Activate**: PortState ACTIVE for every port that is ARMED. A port may only go ACTIVE when
   its neighbour is at least ARMED (IBA 7.2.5), which phase 1 guarantees for both ends.

A Set is only sent when it changes something, so a sweep of an unchanged subnet writes
nothing. Every Set builds on the bytes the SMA returned for the port, patched through
:class:`~ipoib.sm.transactions.Fields` (no hand-packed layouts), and the answer replaces the
stored bytes so the SA serves what the ports now hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..wire.enums import NodeType, PortState
from ..wire.mad import Method
from ..wire.smp import (
    MULTICAST_LID_BASE,
    LftBlock,
    MftBlock,
    PKeyTable,
    PortInfo,
    SmpAttr,
    SwitchInfo,
    mft_am,
)
from .discovery import Subnet
from .routing import lft_blocks
from .transactions import Callback, Fields, SmpTransactions

SET = int(Method.SET)
INIT, ARMED, ACTIVE = int(PortState.INIT), int(PortState.ARMED), int(PortState.ACTIVE)
NOP = int(PortState.NOP)

PI_SET = Fields(
    PortInfo, "mkey", "gid_prefix", "lid", "master_sm_lid", "lmc", "mkey_protect_bits",
    "neighbor_mtu", "master_sm_sl", "operational_vls", "subnet_timeout", "client_reregister",
    "port_state", "port_physical_state", "link_width_enabled", "link_speed_enabled",
    "link_speed_ext_enabled",
)
PI_NOW = Fields(
    PortInfo, "mkey", "gid_prefix", "lid", "master_sm_lid", "lmc", "neighbor_mtu",
    "operational_vls", "subnet_timeout", "port_state", "vl_cap", "mtu_cap",
)
PI_CAPS = Fields(PortInfo, "vl_cap", "mtu_cap")
PI_LID_STATE = Fields(PortInfo, "lid", "port_state")
PI_STATE_ONLY = Fields(
    PortInfo, "client_reregister", "port_state", "port_physical_state", "link_width_enabled",
    "link_speed_enabled", "link_speed_ext_enabled",
)
SI_SET = Fields(SwitchInfo, "linear_fdb_top", "life_time_value", "port_state_change")
SI_NOW = Fields(SwitchInfo, "linear_fdb_top", "life_time_value", "port_state_change")

SWITCH_LIFETIME = 18
"""SwitchInfo.LifeTimeValue OpenSM writes (``packet_life_time`` default 0x12)."""
MFT_POSITION_PORTS = 16


@dataclass(slots=True)
class Plan:
    """What the subnet should hold after this sweep."""

    lids: Mapping[int, int]
    """Port GUID → LID (LMC 0)."""
    sm_lid: int
    lfts: Mapping[int, bytes | bytearray]
    """Switch GUID → LFT indexed by LID."""
    top: int
    """LinearFDBTop: the highest LID."""
    pkeys: Mapping[int, tuple[int, ...]]
    """Endport GUID → the 32 entries of P_Key table block 0."""
    mfts: Mapping[int, Mapping[int, int]]
    """Switch GUID → {MLID: port mask}."""
    subnet_prefix: int = 0xFE80_0000_0000_0000
    subnet_timeout: int = 18
    client_reregister: bool = False


@dataclass(slots=True)
class Memory:
    """What the SM last wrote into each switch, kept across sweeps to write only changes."""

    lfts: dict[int, bytes] = field(default_factory=dict)
    mfts: dict[int, dict[int, int]] = field(default_factory=dict)


def mft_writes(
    nports: int, old: Mapping[int, int], new: Mapping[int, int]
) -> list[tuple[int, bytes]]:
    """(AttributeModifier, 64-byte block) pairs that turn MFT ``old`` into ``new``.

    ``old``/``new`` map MLIDs to port masks. Only blocks containing a changed MLID are
    written, each at every position (16 ports) where something changed.
    """
    changed = {mlid for mlid in set(old) | set(new) if old.get(mlid, 0) != new.get(mlid, 0)}
    blocks = sorted({(mlid - MULTICAST_LID_BASE) // 32 for mlid in changed})
    out: list[tuple[int, bytes]] = []
    for block in blocks:
        base = MULTICAST_LID_BASE + 32 * block
        for pos in range(nports // MFT_POSITION_PORTS + 1):
            shift = MFT_POSITION_PORTS * pos
            before = [old.get(base + i, 0) >> shift & 0xFFFF for i in range(32)]
            after = [new.get(base + i, 0) >> shift & 0xFFFF for i in range(32)]
            if before != after:
                out.append((mft_am(block, pos), MftBlock.from_masks(after).encode()))
    return out


class Programmer:
    """Runs the two programming phases; ``on_done(ok)`` when every Set is answered.

    ``stats`` counts the Sets by kind (``port_info``, ``switch_info``, ``lft_blocks``,
    ``mft_blocks``, ``p_key_blocks``); ``failures`` counts the ones refused or unanswered.
    """

    def __init__(self, tx: SmpTransactions, subnet: Subnet, plan: Plan, memory: Memory,
                 on_done: Callable[[bool], None]) -> None:
        self.tx = tx
        self.subnet = subnet
        self.plan = plan
        self.memory = memory
        self.on_done = on_done
        self.pending = 0
        self.phase = "configure"
        self.stats: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self._armed: list[tuple[int, int]] = []
        # Answer handlers bound once, shared by every Set of their kind (not an object per
        # queued SMP for the garbage collector to walk on large subnets).
        self._on_port: Callback = self._port_done
        self._on_switch: Callback = self._switch_done
        self._on_lft: Callback = self._lft_done
        self._on_mft: Callback = self._mft_done
        self._on_pkey: Callback = self._pkey_done

    def _set(self, attr: int, attr_mod: int, path: tuple[int, ...], data: bytes,
             callback: Callback, ctx: object,
             kind: str) -> None:
        self.pending += 1
        self.stats[kind] += 1
        self.tx.request(SET, attr, attr_mod, path, data, callback, ctx)

    def _answered(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self._next_phase()

    def start(self) -> None:
        """Send phase 1."""
        self._configure()
        if self.pending == 0:
            self._next_phase()

    def _next_phase(self) -> None:
        if self.phase == "configure":
            self.phase = "activate"
            self._activate()
            if self.pending:
                return
        self.phase = "done"
        self.on_done(not self.failures)

    # -- phase 1 ------------------------------------------------------------------------

    def _configure(self) -> None:
        sub, plan = self.subnet, self.plan
        graph = sub.graph
        for node in graph.nodes.values():
            if node.kind == NodeType.SWITCH:
                self._configure_switch(node.guid, node.nports)
            for num in sorted(node.ports):
                self._configure_port(node.guid, num)
        for port_guid, want in plan.pkeys.items():
            where = sub.endport(port_guid)
            if where is None or where not in sub.pkeys:
                continue
            if tuple(sub.pkeys[where]) != tuple(want):
                guid, num = where
                am = 0 if graph.nodes[guid].kind != NodeType.SWITCH else num << 16
                data = PKeyTable.from_entries(want).encode()
                self._set(SmpAttr.P_KEY_TABLE, am, sub.path_to(guid, num), data,
                          self._on_pkey, (where, tuple(want)), "p_key_blocks")

    def _configure_switch(self, guid: int, nports: int) -> None:
        sub, plan, mem = self.subnet, self.plan, self.memory
        path = sub.node_paths[guid]
        si = sub.switch_info.get(guid)
        if si is not None:
            top, life, psc = SI_NOW.read(si)
            if top != plan.top or life != SWITCH_LIFETIME or psc:
                si_set = bytearray(si)
                SI_SET.patch(si_set, 0, plan.top, SWITCH_LIFETIME, 1 if psc else 0)
                self._set(SmpAttr.SWITCH_INFO, 0, path, bytes(si_set), self._on_switch,
                          guid, "switch_info")
        lft = plan.lfts.get(guid)
        if lft is not None:
            before = mem.lfts.get(guid)
            for block, ports in lft_blocks(lft, plan.top, previous=before):
                self._set(SmpAttr.LINEAR_FORWARDING_TABLE, block, path,
                          LftBlock(port_block=ports).encode(), self._on_lft,
                          (guid, block, ports), "lft_blocks")
        old = mem.mfts.get(guid, {})
        new = dict(plan.mfts.get(guid, {}))
        for am, block_data in mft_writes(nports, old, new):
            self._set(SmpAttr.MULTICAST_FORWARDING_TABLE, am, path, block_data,
                      self._on_mft, (guid, am, block_data), "mft_blocks")
        mem.mfts[guid] = new

    def _desired(self, guid: int, num: int, now: bytes) -> bytearray | None:
        """The PortInfo to write (phase 1), or None when nothing differs from ``now`` (or
        the port is not cabled to a node we know, or its link is down)."""
        sub, plan = self.subnet, self.plan
        graph = sub.graph
        node = graph.nodes[guid]
        port = node.ports[num]
        (mkey, prefix, lid, sm_lid, lmc, nmtu, opvls, timeout, state, vl_cap,
         mtu_cap) = PI_NOW.read(now)
        now_links = (nmtu, opvls)
        switch = node.kind == NodeType.SWITCH
        endport = num == 0 if switch else num > 0
        peer_info = None
        if port.neighbour is not None:
            peer_info = sub.port_info.get(port.neighbour)
        if not (switch and num == 0):
            if peer_info is None or state < INIT:
                return None  # not cabled to a node we know, or the link is down
            p_vl_cap, p_mtu_cap = PI_CAPS.read(peer_info)
            nmtu = min(mtu_cap, p_mtu_cap) or nmtu
            opvls = min(vl_cap, p_vl_cap) or opvls
        new_state = ARMED if state == INIT and not (switch and num == 0) else NOP
        crr = 1 if plan.client_reregister and endport and not switch else 0
        want = (mkey, prefix, lid, sm_lid, lmc, timeout)
        if endport:
            want = (0, plan.subnet_prefix, plan.lids.get(port.guid, lid), plan.sm_lid, 0,
                    plan.subnet_timeout)
        if (want == (mkey, prefix, lid, sm_lid, lmc, timeout) and new_state == NOP
                and not crr and (nmtu, opvls) == now_links):
            return None
        data = bytearray(now)
        PI_SET.patch(data, 0, want[0], want[1], want[2], want[3], want[4], 0, nmtu, 0, opvls,
                     want[5], crr, new_state, 0, 0, 0, 0)
        return data

    def _configure_port(self, guid: int, num: int) -> None:
        now = self.subnet.port_info.get((guid, num))
        if now is None:
            return
        data = self._desired(guid, num, now)
        if data is None:
            return
        self._set(SmpAttr.PORT_INFO, num, self.subnet.path_to(guid, num), bytes(data),
                  self._on_port, (guid, num), "port_info")

    # -- phase 2 ------------------------------------------------------------------------

    def _activate(self) -> None:
        sub = self.subnet
        for (guid, num), now in sub.port_info.items():
            node = sub.graph.nodes.get(guid)
            if node is None or (node.kind == NodeType.SWITCH and num == 0):
                continue
            port = node.ports.get(num)
            if port is None or port.neighbour is None or port.port_state != ARMED:
                continue
            data = bytearray(now)
            PI_STATE_ONLY.patch(data, 0, 0, ACTIVE, 0, 0, 0, 0)
            self._set(SmpAttr.PORT_INFO, num, sub.path_to(guid, num), bytes(data),
                      self._on_port, (guid, num), "port_info")

    # -- answers ------------------------------------------------------------------------

    def _fail(self, kind: str) -> None:
        self.failures[kind] += 1

    def _port_done(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self._fail("port_info")
        else:
            guid, num = ctx
            self.subnet.port_info[(guid, num)] = data
            port = self.subnet.graph.nodes[guid].ports.get(num)
            if port is not None:
                lid, state = PI_LID_STATE.read(data)
                port.port_state = state
                if port.guid and (num == 0 or self.subnet.graph.nodes[guid].kind
                                  != NodeType.SWITCH):
                    port.lid = lid
        self._answered()

    def _switch_done(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self._fail("switch_info")
        else:
            self.subnet.switch_info[ctx] = data
        self._answered()

    def _lft_done(self, ctx: Any, status: int, data: bytes | None) -> None:
        guid, block, ports = ctx
        if status or data is None:
            self._fail("lft_blocks")
            self.memory.lfts.pop(guid, None)  # unknown now: rewrite everything next time
        else:
            old = bytearray(self.memory.lfts.get(guid, b""))
            end = block * 64 + 64
            if len(old) < end:
                old.extend(b"\xff" * (end - len(old)))
            old[block * 64:end] = ports
            self.memory.lfts[guid] = bytes(old)
        self._answered()

    def _mft_done(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self._fail("mft_blocks")
            self.memory.mfts.pop(ctx[0], None)
        self._answered()

    def _pkey_done(self, ctx: Any, status: int, data: bytes | None) -> None:
        where, _want = ctx
        if status or data is None:
            self._fail("p_key_blocks")
        else:
            self.subnet.pkeys[where] = PKeyTable.decode(data).entries
        self._answered()


class MftUpdate:
    """Reprogram MFTs between sweeps (members joined or left): Sets for changed blocks."""

    def __init__(self, tx: SmpTransactions, subnet: Subnet, memory: Memory,
                 mfts: Mapping[int, Mapping[int, int]],
                 on_done: Callable[[bool], None] | None = None) -> None:
        self.pending = 0
        self.failures = 0
        self.sets = 0
        self.on_done = on_done
        for node in subnet.graph.switches:
            guid = node.guid
            old = memory.mfts.get(guid, {})
            new = dict(mfts.get(guid, {}))
            if old == new or guid not in subnet.node_paths:
                continue
            for am, data in mft_writes(node.nports, old, new):
                self.pending += 1
                self.sets += 1
                tx.request(SET, SmpAttr.MULTICAST_FORWARDING_TABLE, am, subnet.node_paths[guid],
                           data, self._done, (memory, guid))
            memory.mfts[guid] = new
        if self.pending == 0 and on_done is not None:
            on_done(True)

    def _done(self, ctx: Any, status: int, data: bytes | None) -> None:
        if status or data is None:
            self.failures += 1
            memory, guid = ctx
            memory.mfts.pop(guid, None)
        self.pending -= 1
        if self.pending == 0 and self.on_done is not None:
            self.on_done(not self.failures)
