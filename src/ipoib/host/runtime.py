"""The asyncio runtime: TUN fds in, sans-I/O cores pumped, packets out, one timer armed.

One event loop owns every host's TUN fd. A readable fd is drained with ``os.read`` until
EAGAIN (at most :data:`~ipoib.host.tun.READ_BUDGET` packets, so one busy host cannot starve
the rest); the packets go straight to the endpoint, synchronously, with no coroutine or queue
per packet: all of them in one ``endpoint.transmit_batch(packets, now)`` when the endpoint has
that (an IPoIB device, the relay), else one ``endpoint.transmit(packet, now)`` each. After every batch the runtime follows the pump contract of
docs/conventions.md: ``process(now)`` on every pumpable, then whatever each endpoint has for
its host is written to its TUN, then one ``loop.call_at`` is armed for the earliest
``get_timer()``. A timer already armed earlier than needed is left alone (it fires, pumps and
re-arms), so a busy data path does not churn timer handles.

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
from typing import Protocol

from .tun import READ_BUDGET, Tun


class Pumpable(Protocol):
    """Anything the runtime drives: the fabric, an SM binding, an IPoIB device."""

    def process(self, now: float) -> None:
        """Do all work that is due at ``now``."""

    def get_timer(self) -> float | None:
        """When :meth:`process` next needs to run (loop time), or None."""


class Endpoint(Protocol):
    """The network side of one host: what a TUN's packets go to and come back from."""

    def transmit(self, packet: bytes, now: float) -> None:
        """Take one IP packet the host's stack sent (called synchronously, per packet)."""

    def drain_to_host(self) -> Iterable[bytes]:
        """The IP packets to hand to the host's stack, removed from the endpoint."""

    @property
    def carrier(self) -> bool:
        """Whether the link is usable (an IPoIB device: joined to the broadcast group)."""


RUNTIME_DROPS = ("tun_read_error", "tun_write_error")
"""Reasons a packet is lost in the runtime itself (everything else is the endpoints')."""


BatchTransmit = Callable[[list[bytes], float], None]


@dataclass(slots=True)
class Attachment:
    """One TUN fd tied to one endpoint, with the runtime's view of its carrier."""

    tun: Tun
    endpoint: Endpoint
    carrier: bool = False
    rx_packets: int = 0
    tx_packets: int = 0
    batch: BatchTransmit | None = None
    """The endpoint's ``transmit_batch(packets, now)``, when it has one."""


CarrierCallback = Callable[[Attachment], None]


class Runtime:
    """The event loop's side of the hosts: readers, the pump, the timer, stop on signals."""

    def __init__(self, pumpables: Sequence[Pumpable] = (), *,
                 budget: int = READ_BUDGET) -> None:
        self.pumpables: list[Pumpable] = list(pumpables)
        self.attachments: list[Attachment] = []
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

    def attach(self, tun: Tun, endpoint: Endpoint) -> Attachment:
        """Serve ``tun`` with ``endpoint`` (before :meth:`run`, or while it runs)."""
        att = Attachment(tun, endpoint, batch=getattr(endpoint, "transmit_batch", None))
        self.attachments.append(att)
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
        read, fd, size = os.read, att.tun.fd, att.tun.mtu
        budget = self._budget
        batch = att.batch
        if batch is not None:  # the whole read batch in one call
            packets: list[bytes] = []
            try:
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
                    transmit(read(fd, size), now)
                    n += 1
            except BlockingIOError:
                pass
            except OSError:
                self.drops["tun_read_error"] += 1
                self._loop.remove_reader(fd)
        att.rx_packets += n
        self.pump(now)

    def pump(self, now: float) -> None:
        """One turn of the pump contract: process, write what is due, arm the timer."""
        self.batches += 1
        for p in self.pumpables:
            p.process(now)
        write = os.write
        for att in self.attachments:
            out = att.endpoint.drain_to_host()
            if out:
                fd = att.tun.fd
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
        self._arm()

    def _carrier_changed(self, att: Attachment) -> None:
        att.carrier = bool(att.endpoint.carrier)
        att.tun.set_carrier(att.carrier)
        for cb in self.on_carrier:
            cb(att)

    def _arm(self) -> None:
        """Arm one ``call_at`` for the earliest timer, unless one at or before it is armed."""
        at: float | None = None
        for p in self.pumpables:
            t = p.get_timer()
            if t is not None and (at is None or t < at):
                at = t
        if at is None or (self._timer_at is not None and self._timer_at <= at):
            return
        assert self._loop is not None
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
        """Pump soon: something outside the TUNs (a control command, a socket) made work."""
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
        """The runtime's own figures: batches, per-reason drops, packets each way."""
        out = {"batches": self.batches,
               "from_hosts": sum(a.rx_packets for a in self.attachments),
               "to_hosts": sum(a.tx_packets for a in self.attachments)}
        for reason in RUNTIME_DROPS:
            out[f"drop_{reason}"] = self.drops[reason]
        return out
