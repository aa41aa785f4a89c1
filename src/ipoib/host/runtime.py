"""The asyncio runtime: TUN fds in, sans-I/O cores pumped, packets out, one timer armed.

One event loop owns every host's TUN fd. A readable fd is drained with ``os.read`` until
EAGAIN (at most :data:`~ipoib.host.tun.READ_BUDGET` packets, so one busy host cannot starve
the rest); the packets go straight to the endpoint, synchronously, with no coroutine or queue
per packet: all of them in one ``endpoint.transmit_batch(packets, now)`` when the endpoint has
that (an IPoIB device, the relay), else one ``endpoint.transmit(packet, now)`` each. After
every batch the runtime follows the pump contract of docs/conventions.md: ``process(now)`` on
every pumpable, then whatever each endpoint has for its host is written to its TUN, then one
``loop.call_at`` is armed for the earliest ``get_timer()``. A timer already armed earlier than
needed is left alone (it fires, pumps and re-arms), so a busy data path does not churn timer
handles.

A pumpable may offer ``set_wakeup(callback)`` (an IPoIB device does): it then sleeps, and is
processed (and drained, if it is also an endpoint) only in a turn where it called the callback,
where its timer is due, or after a kick. It calls the callback itself whenever it has work:
from a handler the fabric runs in its own ``process`` (which comes first in the turn), or from
a ``transmit`` that left something to do. Idle hosts, and hosts that only send on their fast
path, cost nothing per turn.

A TUN opened with a ``virtio_net_hdr`` (:mod:`.tun`) has it stripped from what is read,
and what is written goes through receive coalescing (:class:`~ipoib.netdev.gro.Gro`) or,
with GRO off, gets a plain header. On a TUN with offloads on, a read whose header asks for
work (a GSO super-packet, a checksum left partial) goes to the endpoint's
``transmit_offload(packet, mss, now, csum_start, csum_offset)`` on its own, in order with the
plain ones around it.

Other sources of work (the ibsim server's socket, a control command) register their own
``loop.add_reader`` or run as handlers, and call :meth:`Runtime.kick` to get a pump.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, cast

from ..netdev.gro import Gro
from ..wire.offload import TsoSegments
from ..wire.vnet import PLAIN, VnetFlags
from .tun import OFFLOAD_READ, READ_BUDGET


class Pumpable(Protocol):
    """Anything the runtime drives: the fabric, an SM binding, an IPoIB device."""

    def process(self, now: float) -> None:
        """Do all work that is due at ``now``."""

    def get_timer(self) -> float | None:
        """When :meth:`process` next needs to run (loop time), or None."""


Wakeup = Callable[[], None]


class TunPort(Protocol):
    """What the runtime uses of an open TUN (:class:`~ipoib.host.tun.Tun`)."""

    fd: int
    mtu: int
    vnet_hdr: int
    """Bytes of ``virtio_net_hdr`` before each packet (0: none)."""
    offload: bool
    netns: str
    """The namespace it lives in (for messages)."""

    def set_carrier(self, on: bool) -> None:
        """Turn the device's carrier on or off."""


class Endpoint(Protocol):
    """The network side of one host: what a TUN's packets go to and come back from."""

    def transmit(self, packet: bytes, now: float) -> None:
        """Take one IP packet the host's stack sent (called synchronously, per packet)."""

    def drain_to_host(self) -> Iterable[bytes]:
        """The IP packets to hand to the host's stack, removed from the endpoint."""

    @property
    def carrier(self) -> bool:
        """Whether the link is usable (an IPoIB device: joined to the broadcast group)."""


_NEVER = float("inf")
_NEEDS_CSUM = int(VnetFlags.NEEDS_CSUM)

RUNTIME_DROPS = ("tun_read_error", "tun_write_error")
"""Reasons a packet is lost in the runtime itself (everything else is the endpoints')."""


BatchTransmit = Callable[[list[bytes], float], None]
OffloadTransmit = Callable[..., None]
"""``transmit_offload(packet, mss, now[, csum_start, csum_offset])``."""
Drain = Callable[[], Iterable[bytes | TsoSegments]]


@dataclass(slots=True)
class Attachment:
    """One TUN fd tied to one endpoint, with the runtime's view of its carrier."""

    tun: TunPort
    endpoint: Endpoint
    carrier: bool = False
    rx_packets: int = 0
    tx_packets: int = 0
    batch: BatchTransmit | None = None
    """The endpoint's ``transmit_batch(packets, now)``, when it has one."""
    sleeper: Pumpable | None = None
    """The endpoint, when it is also one of the pumpables that sleep (``set_wakeup``): it is
    drained only in the turns it runs."""
    gro: Gro | None = None
    """Receive coalescing for a TUN with a ``virtio_net_hdr`` (None: off, or no header)."""
    offload: OffloadTransmit | None = None
    """The endpoint's ``transmit_offload``, when the TUN has offloads on."""
    drain: Drain | None = None
    """What gives the packets for the host: the endpoint's ``drain_to_gro`` when ``gro``
    is on and it has one (LSO sends received whole come as one item), else its
    ``drain_to_host``."""


CarrierCallback = Callable[[Attachment], None]


class Runtime:
    """The event loop's side of the hosts: readers, the pump, the timer, stop on signals."""

    def __init__(self, pumpables: Sequence[Pumpable] = (), *,
                 budget: int = READ_BUDGET) -> None:
        self.pumpables: list[Pumpable] = list(pumpables)
        self._eager: list[Pumpable] = []
        self._sleepers: dict[int, Wakeup] = {}
        """id(pumpable) -> its wakeup, for the pumpables that offer ``set_wakeup``."""
        self._awake: dict[Pumpable, None] = {}
        self._due: dict[Pumpable, float] = {}
        self._sleep_until = 0.0
        for p in self.pumpables:
            set_wakeup = getattr(p, "set_wakeup", None)
            if set_wakeup is None:
                self._eager.append(p)
                continue
            wake = partial(self._wake, p)
            set_wakeup(wake)
            self._sleepers[id(p)] = wake
            self._awake[p] = None  # every one runs once, to say when it is next due
            self._due[p] = 0.0
        self.attachments: list[Attachment] = []
        self._attachment_of: dict[Pumpable, Attachment] = {}
        """The attachment of each sleeping endpoint: written to only in the turns it runs."""
        self._plain: list[Attachment] = []
        """The attachments whose endpoints do not sleep: looked at every turn."""
        self.drops: Counter[str] = Counter()
        self.batches = 0
        self.on_carrier: list[CarrierCallback] = []
        self._budget = budget
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._kicked = False

    # -- wiring -------------------------------------------------------------------------

    def attach(self, tun: TunPort, endpoint: Endpoint, *, gro: bool = True) -> Attachment:
        """Serve ``tun`` with ``endpoint`` (before :meth:`run`, or while it runs); ``gro``
        coalesces what is written when the TUN has a ``virtio_net_hdr``."""
        sleeps = id(endpoint) in self._sleepers
        att = Attachment(tun, endpoint, batch=getattr(endpoint, "transmit_batch", None),
                         sleeper=cast(Pumpable, endpoint) if sleeps else None,
                         gro=Gro() if gro and tun.vnet_hdr else None,
                         offload=getattr(endpoint, "transmit_offload", None)
                         if tun.offload else None)
        if tun.offload and (att.offload is None or att.batch is None):
            raise ValueError("a TUN with offloads needs an endpoint that takes them")
        att.drain = (getattr(endpoint, "drain_to_gro", None) if att.gro is not None else None) \
            or endpoint.drain_to_host
        self.attachments.append(att)
        if att.sleeper is not None:
            self._attachment_of[att.sleeper] = att
        else:
            self._plain.append(att)
        if self._loop is not None:
            self._add_reader(att)
        return att

    @property
    def all_carrier(self) -> bool:
        """Whether every attached host has carrier."""
        return all(a.carrier for a in self.attachments)

    def _add_reader(self, att: Attachment) -> None:
        assert self._loop is not None
        self._loop.add_reader(att.tun.fd, self._on_readable, att)

    # -- the hot path -------------------------------------------------------------------

    def _on_readable(self, att: Attachment) -> None:
        """Read until EAGAIN (or the budget), hand the packets over, then pump once."""
        assert self._loop is not None
        now = self._loop.time()
        read, fd, skip = os.read, att.tun.fd, att.tun.vnet_hdr
        size = att.tun.mtu + skip
        budget = self._budget
        batch = att.batch
        if att.offload is not None:
            n = self._read_offload(att, now)
        elif batch is not None:  # the whole read batch in one call
            packets: list[bytes] = []
            try:
                if skip:
                    while len(packets) < budget:
                        packets.append(read(fd, size)[skip:])
                else:
                    while len(packets) < budget:
                        packets.append(read(fd, size))
            except BlockingIOError:
                pass
            except OSError:
                self.drops["tun_read_error"] += 1
                self._loop.remove_reader(fd)
            n = len(packets)
            if n:
                batch(packets, now)
        else:
            transmit = att.endpoint.transmit
            n = 0
            try:
                while n < budget:
                    transmit(read(fd, size)[skip:], now)
                    n += 1
            except BlockingIOError:
                pass
            except OSError:
                self.drops["tun_read_error"] += 1
                self._loop.remove_reader(fd)
        att.rx_packets += n
        self.pump(now)

    def _read_offload(self, att: Attachment, now: float) -> int:
        """:meth:`_on_readable`'s reads on a TUN with offloads: plain packets batched, each
        GSO super-packet (``gso_type`` set: ``gso_size`` is the MSS) or partial checksum
        (``NEEDS_CSUM``) to the endpoint's ``transmit_offload`` in its place in the order.
        The budget is also one of bytes: as many as ``budget`` full-MTU packets."""
        assert self._loop is not None and att.offload is not None and att.batch is not None
        read, fd, skip, budget = os.read, att.tun.fd, att.tun.vnet_hdr, self._budget
        batch, offload = att.batch, att.offload
        room = budget * att.tun.mtu  # what a plain batch could carry, so that receive
        packets: list[bytes] = []    # rings sized for it are not overrun by super-packets
        n = 0
        try:
            while n < budget and room > 0:
                raw = read(fd, OFFLOAD_READ + skip)
                n += 1
                room -= len(raw)
                if raw[1]:  # gso_type
                    if packets:
                        batch(packets, now)
                        packets = []
                    offload(raw[skip:], raw[4] | raw[5] << 8, now)
                elif raw[0] & _NEEDS_CSUM:
                    if packets:
                        batch(packets, now)
                        packets = []
                    offload(raw[skip:], 0, now, raw[6] | raw[7] << 8, raw[8] | raw[9] << 8)
                else:
                    packets.append(raw[skip:])
        except BlockingIOError:
            pass
        except OSError:
            self.drops["tun_read_error"] += 1
            self._loop.remove_reader(fd)
        if packets:
            batch(packets, now)
        return n

    def pump(self, now: float) -> None:
        """One turn of the pump contract: process, write what is due, arm the timer.

        Pumpables that offer ``set_wakeup`` (IPoIB devices) are processed only when they
        woke (a completion, a MAD, an event, their host sent something, a kick) or their
        timer is due: an idle host costs nothing per turn."""
        self.batches += 1
        for p in self._eager:
            p.process(now)
        if self._sleep_until <= now:
            for p, t in self._due.items():
                if t <= now:
                    self._awake[p] = None
        awake = self._awake
        if awake:
            self._awake = {}
            for p in awake:
                p.process(now)
            due = self._due
            for p in awake:
                at = p.get_timer()
                due[p] = _NEVER if at is None else at
            self._sleep_until = min(due.values())
            attachment_of = self._attachment_of
            for p in awake:
                att = attachment_of.get(p)
                if att is not None:
                    self._to_host(att)
        for att in self._plain:
            self._to_host(att)
        self._arm()

    def _to_host(self, att: Attachment) -> None:
        """Write what ``att``'s endpoint has for its host; follow its carrier."""
        assert att.drain is not None
        got = att.drain()
        if got:
            out: Iterable[bytes]
            if att.gro is not None:
                out = att.gro.frames(got)
            else:
                out = cast(Iterable[bytes], got)
                if att.tun.vnet_hdr:
                    out = [PLAIN + p for p in out]
            write, fd = os.write, att.tun.fd
            n = 0
            for packet in out:
                try:
                    write(fd, packet)
                    n += 1
                except OSError:
                    self.drops["tun_write_error"] += 1
            att.tx_packets += n
        if att.endpoint.carrier != att.carrier:
            self._carrier_changed(att)

    def _wake(self, p: Pumpable) -> None:
        """``p`` has work: process it in the next turn (now, if none is running)."""
        self._awake[p] = None

    def _carrier_changed(self, att: Attachment) -> None:
        att.carrier = bool(att.endpoint.carrier)
        att.tun.set_carrier(att.carrier)
        for cb in self.on_carrier:
            cb(att)

    def _arm(self) -> None:
        """Arm one ``call_at`` for the earliest timer, unless one at or before it is armed."""
        assert self._loop is not None
        at: float | None = None
        for p in self._eager:
            t = p.get_timer()
            if t is not None and (at is None or t < at):
                at = t
        if self._due:
            t = self._loop.time() if self._awake else self._sleep_until
            if t != _NEVER and (at is None or t < at):
                at = t
        if at is None or (self._timer_at is not None and self._timer_at <= at):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        assert self._loop is not None
        self.pump(self._loop.time())

    def kick(self) -> None:
        """Pump soon: something outside the TUNs (a control command, a socket) made work,
        maybe for any pumpable, so every sleeping one is woken."""
        for p in self._due:
            self._awake[p] = None
        if self._loop is None or self._kicked:
            return
        self._kicked = True
        self._loop.call_soon(self._on_kick)

    def _on_kick(self) -> None:
        self._kicked = False
        assert self._loop is not None
        self.pump(self._loop.time())

    # -- lifetime -----------------------------------------------------------------------

    async def run(self, *, handle_signals: bool | None = None) -> None:
        """Serve until :meth:`stop` (or SIGINT/SIGTERM when ``handle_signals``, which by
        default is whether the loop runs in the main thread, the only one signals reach).
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopped = asyncio.Event()
        if handle_signals is None:
            handle_signals = threading.current_thread() is threading.main_thread()
        signals = (signal.SIGINT, signal.SIGTERM) if handle_signals else ()
        for sig in signals:
            loop.add_signal_handler(sig, self.stop)
        try:
            for att in self.attachments:
                self._add_reader(att)
            self.pump(loop.time())
            await self._stopped.wait()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            for att in self.attachments:
                if att.tun.fd >= 0:
                    loop.remove_reader(att.tun.fd)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._timer_at = None
            self._loop = None
            self._kicked = False

    def stop(self) -> None:
        """Make :meth:`run` return (safe to call from a handler or a signal)."""
        if self._stopped is not None:
            self._stopped.set()

    @property
    def running(self) -> bool:
        """Whether :meth:`run` is serving."""
        return self._loop is not None and self._stopped is not None \
            and not self._stopped.is_set()

    def counters(self) -> dict[str, int]:
        """The runtime's own figures: batches, per-reason drops, packets each way (a
        coalesced run counts once in ``to_hosts``; ``gro_segments`` went into
        ``gro_coalesced`` of them)."""
        gros = [a.gro.stats for a in self.attachments if a.gro is not None]
        out = {"batches": self.batches,
               "from_hosts": sum(a.rx_packets for a in self.attachments),
               "to_hosts": sum(a.tx_packets for a in self.attachments),
               "gro_segments": sum(g.segments for g in gros),
               "gro_coalesced": sum(g.coalesced for g in gros)}
        for reason in RUNTIME_DROPS:
            out[f"drop_{reason}"] = self.drops[reason]
        return out
