"""The ibsim server's sockets, on an asyncio loop (ibsim-protocol.md §2).

Local mode (the default, what libumad2sim.so uses unless ``IBSIM_SERVER_NAME`` is set):
``AF_UNIX``/``SOCK_DGRAM`` sockets in the abstract namespace, named as ``make_name()`` names
them, trailing NUL included (:func:`~ipoib.wire.ibsim.abstract_name`):

- ``<base>:ctl``: control messages; replies go back to the sender's address;
- ``<base>:out<N>``: slot N's data socket, bound when a client takes the slot (before the
  CONNECT reply: the client connects to it right after) and connected to the client's
  ``<base>:in<pid>``. Slots are not limited to ibsim's 10.

Remote mode (``ibsim -r``): UDP, the control port (default 7070) and port + N + 1 for slot N,
connected to the client's data port (its CONNECT ``id``) at the address its control message
came from.

:class:`IbsimTransport` fits the host runtime: :meth:`start` is a starter (the loop owns the
sockets; readers registered there), :meth:`process`/:meth:`get_timer` make it a pumpable that
sends whatever the server queued while the fabric ran. After a batch of datagrams it asks for
a pump (``kick``), so the fabric delivers what the batch sent.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from ..wire.ibsim import DEFAULT_SOCKNAME, abstract_name
from .server import Client, IbsimServer

READ_BUDGET = 64
"""Datagrams read from one socket per wakeup, so one busy client cannot starve the rest."""
BACKLOG = 4096
"""Datagrams kept for a client that is not reading, before they are dropped."""
RECV_SIZE = 1024
DEAD = (errno.ECONNREFUSED, errno.ENOTCONN, errno.ECONNRESET, errno.EPIPE)


def _pid_alive(cl: Client) -> bool:
    """A unix client's CONNECT id is its pid: is that process still there?"""
    try:
        os.kill(cl.ident, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


class IbsimTransport:
    """Serves ``server`` on the abstract unix sockets ``<sockname>:...``, or over UDP when
    ``udp_port`` is given (bound on ``udp_host``)."""

    def __init__(self, server: IbsimServer, sockname: str = DEFAULT_SOCKNAME, *,
                 udp_port: int | None = None, udp_host: str = "0.0.0.0") -> None:
        self.server = server
        self.sockname = sockname
        self.udp = udp_port is not None
        self.udp_port = udp_port or 0
        self.udp_host = udp_host
        self.ctl: socket.socket | None = None
        self.out: dict[int, socket.socket] = {}
        self.backlog: dict[int, deque[bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._kick: Callable[[], None] = lambda: None
        if not self.udp:
            server.alive = _pid_alive

    def __repr__(self) -> str:
        where = f"udp {self.udp_host}:{self.udp_port}" if self.udp else f"@{self.sockname}:ctl"
        return f"<IbsimTransport {where} clients={len(self.server.clients)}>"

    # --- addresses --------------------------------------------------------------------

    def _socket(self) -> socket.socket:
        family = socket.AF_INET if self.udp else socket.AF_UNIX
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setblocking(False)
        return s

    def _ctl_address(self) -> Any:
        return (self.udp_host, self.udp_port) if self.udp else abstract_name(self.sockname, "ctl")

    def _out_address(self, slot: int) -> Any:
        if self.udp:
            return (self.udp_host, self.udp_port + slot + 1)
        return abstract_name(self.sockname, f"out{slot}")

    def _client_address(self, ident: int, ctl_from: Any) -> Any:
        if self.udp:
            return (ctl_from[0], ident)
        return abstract_name(self.sockname, f"in{ident}")

    # --- lifetime ---------------------------------------------------------------------

    def bind(self) -> None:
        """Bind the control socket (raises OSError if the name or port is taken)."""
        if self.ctl is None:
            s = self._socket()
            try:
                s.bind(self._ctl_address())
            except OSError:
                s.close()
                raise
            self.ctl = s

    def start(self, loop: asyncio.AbstractEventLoop, kick: Callable[[], None]) -> None:
        """Bind and serve on ``loop``; ``kick`` asks the runtime for a pump."""
        self.bind()
        assert self.ctl is not None
        self._loop = loop
        self._kick = kick
        loop.add_reader(self.ctl.fileno(), self._on_ctl)
        for slot, s in self.out.items():
            loop.add_reader(s.fileno(), self._on_data, slot)

    def close(self) -> None:
        """Stop serving: every socket closed, every client forgotten."""
        loop = self._loop
        for s in [*self.out.values(), *([self.ctl] if self.ctl else [])]:
            if loop is not None and s.fileno() >= 0:
                loop.remove_reader(s.fileno())
                loop.remove_writer(s.fileno())
            s.close()
        self.out.clear()
        self.backlog.clear()
        self.ctl = None
        self._loop = None
        self.server.close()

    # --- the pump contract ------------------------------------------------------------

    def process(self, now: float) -> None:
        """Send what the server queued (answers that came back through the fabric)."""
        self.flush()

    def get_timer(self) -> float | None:
        """Never: the transport works when sockets are readable or the fabric answered."""
        return None

    # --- reading ----------------------------------------------------------------------

    def _on_ctl(self) -> None:
        assert self.ctl is not None
        for _ in range(READ_BUDGET):
            try:
                data, addr = self.ctl.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            self.handle_ctl(data, addr)
        self.flush()
        self._kick()

    def handle_ctl(self, data: bytes, addr: Any) -> None:
        """One control message from ``addr``: let the server answer, open or close the
        slot's data socket as it says, and reply."""
        assert self.ctl is not None
        result = self.server.handle_ctl(data)
        reply = result.reply
        if result.detach is not None:
            self.backlog.pop(result.detach, None)
        if result.attach is not None:
            slot, ident = result.attach
            try:
                self._open_slot(slot, self._client_address(ident, addr))
            except OSError:
                reply = self.server.connect_failed(slot, data)
        if reply is not None:
            try:
                self.ctl.sendto(reply, addr)
            except OSError:
                self.server.drops["client_gone"] += 1

    def _open_slot(self, slot: int, peer: Any) -> None:
        s = self.out.get(slot)
        if s is None:
            s = self._socket()
            try:
                s.bind(self._out_address(slot))
            except OSError:
                s.close()
                raise
            self.out[slot] = s
            if self._loop is not None:
                self._loop.add_reader(s.fileno(), self._on_data, slot)
        self.backlog.pop(slot, None)
        s.connect(peer)

    def _on_data(self, slot: int) -> None:
        s = self.out.get(slot)
        if s is None:
            return
        server = self.server
        handle, outbox = server.handle_data, server.outbox
        for _ in range(READ_BUDGET):
            try:
                data = s.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            handle(slot, data)
            if outbox:  # answer at once: the client's next requests wait for it
                self.flush()
        if server.fabric.get_timer() is not None:
            self._kick()  # the fabric has work: deliver what went through it

    # --- writing ----------------------------------------------------------------------

    def flush(self) -> None:
        """Send every queued datagram to its slot."""
        outbox = self.server.outbox
        while outbox:
            slot, data = outbox.popleft()
            self._send(slot, data)

    def _send(self, slot: int, data: bytes) -> None:
        s = self.out.get(slot)
        if s is None or slot not in self.server.clients:
            self.server.drops["client_gone"] += 1
            return
        queue = self.backlog.get(slot)
        if queue:
            self._queue(slot, queue, data)
            return
        try:
            s.send(data)
        except (BlockingIOError, InterruptedError):
            self._queue(slot, self.backlog.setdefault(slot, deque()), data)
        except OSError as e:
            self._dead(slot, e)

    def _queue(self, slot: int, queue: deque[bytes], data: bytes) -> None:
        if len(queue) >= BACKLOG:
            self.server.drops["client_backlog"] += 1
            return
        queue.append(data)
        if len(queue) == 1 and self._loop is not None:
            self._loop.add_writer(self.out[slot].fileno(), self._on_writable, slot)

    def _on_writable(self, slot: int) -> None:
        s = self.out.get(slot)
        queue = self.backlog.get(slot)
        while s is not None and queue:
            try:
                s.send(queue[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._dead(slot, e)
                return
            queue.popleft()
        if s is not None and self._loop is not None:
            self._loop.remove_writer(s.fileno())

    def _dead(self, slot: int, e: OSError) -> None:
        """A client that cannot be written to is gone (ibsim disconnects it too)."""
        self.server.drops["client_gone"] += 1
        if e.errno in DEAD or isinstance(e, ConnectionError):
            self.server.disconnect(slot)
            queue = self.backlog.pop(slot, None)
            s = self.out.get(slot)
            if queue and s is not None and self._loop is not None:
                self._loop.remove_writer(s.fileno())


__all__ = ["BACKLOG", "READ_BUDGET", "IbsimTransport"]
