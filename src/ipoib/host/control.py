"""The daemon's control socket: a unix stream socket, mode 0600, one JSON object per line.

A request is ``{"cmd": NAME, ...arguments}``; the reply is ``{"ok": true, "data": ...,
"text": ...}`` or ``{"ok": false, "error": "one line"}``. Commands are routed to handler
callables the daemon registers (``hosts``, ``neigh``, ``path``, ``mcast``, ``counters``,
``lids``, ``routes``, ``capture``, ``stop``, ...). A handler returns JSON-able data, or a
:class:`Reply` carrying the data together with its text rendering, so the formatting of each
view lives with the code that owns the data and ``ipoib show`` only prints it. A failing
handler becomes an error reply; it never takes the daemon down.

Handlers run on the event loop thread, between batches of packets, so they see the cores in
a consistent state and must be quick.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import ipaddress
import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .netns import HostError

LINE_LIMIT = 1 << 20
"""Longest request line the server accepts (bytes)."""
SOCKET_MODE = 0o600

Handler = Callable[[Mapping[str, Any]], Any]
"""A command: gets the request's fields (``cmd`` included), returns data or a Reply."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A handler's answer: ``data`` for ``--json``, ``text`` for people (optional)."""

    data: Any
    text: str | None = None


class ControlError(HostError):
    """The daemon answered with an error."""


class DaemonNotRunning(HostError):
    """Nobody listens on the control socket."""


def jsonable(o: Any) -> Any:
    """JSON for the values cores hold: bytes as hex, addresses and enums by name, dataclasses
    (the views) as objects."""
    if isinstance(o, bytes | bytearray):
        return o.hex()
    if isinstance(o, enum.Enum):
        return o.name
    if isinstance(o, ipaddress.IPv4Address | ipaddress.IPv6Address |
                  ipaddress.IPv4Interface | ipaddress.IPv6Interface |
                  ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(o)
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
    return str(o)


def encode_line(obj: Any) -> bytes:
    """One JSON line (compact, newline-terminated)."""
    return json.dumps(obj, default=jsonable, separators=(",", ":")).encode() + b"\n"


class ControlServer:
    """Serves handlers on a unix socket at ``path`` while the event loop runs."""

    def __init__(self, path: str | os.PathLike[str],
                 handlers: Mapping[str, Handler] | None = None,
                 after: Callable[[], None] | None = None) -> None:
        self.path = Path(path)
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.after = after
        self.requests = 0
        self._server: asyncio.AbstractServer | None = None

    def register(self, name: str, handler: Handler) -> None:
        """Route command ``name`` to ``handler`` (replacing any earlier one)."""
        self.handlers[name] = handler

    def dispatch(self, request: Any) -> dict[str, Any]:
        """Answer one decoded request (the transport-free part, usable directly)."""
        self.requests += 1
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'a request is a JSON object with a "cmd" string'}
        cmd = request["cmd"]
        handler = self.handlers.get(cmd)
        if handler is None:
            have = ", ".join(sorted(self.handlers)) or "none"
            return {"ok": False, "error": f"the daemon has no command {cmd!r} (have: {have})"}
        try:
            result = handler(request)
        except Exception as e:  # noqa: BLE001 - a handler bug must not stop the daemon
            msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
            text = msg.splitlines()[0] if msg.strip() else type(e).__name__
            return {"ok": False, "error": f"{cmd}: {text}"}
        finally:
            if self.after is not None:
                self.after()
        if isinstance(result, Reply):
            return {"ok": True, "data": result.data, "text": result.text}
        return {"ok": True, "data": result}

    async def start(self) -> None:
        """Bind the socket with mode 0600 (no moment with a wider mode) and listen."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(self.path))
        except BaseException:
            sock.close()
            raise
        finally:
            os.umask(old)
        os.chmod(self.path, SOCKET_MODE)
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=LINE_LIMIT)

    async def close(self) -> None:
        """Stop listening and remove the socket file."""
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(encode_line({"ok": False, "error": "request line too long"}))
                    break
                if not line:
                    break
                try:
                    request = json.loads(line)
                except ValueError:
                    reply: dict[str, Any] = {"ok": False, "error": "request is not JSON"}
                else:
                    reply = self.dispatch(request)
                try:
                    data = encode_line(reply)
                except (TypeError, ValueError) as e:
                    data = encode_line({"ok": False, "error": f"reply not encodable: {e}"})
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def request(path: str | os.PathLike[str], cmd: str, *, timeout: float = 5.0,
            **args: Any) -> Reply:
    """Send one command to the daemon at ``path`` and return its :class:`Reply`.

    Raises :class:`DaemonNotRunning` when nothing listens, :class:`ControlError` when the
    daemon answers with an error (or not at all within ``timeout``).
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonNotRunning(f"no daemon is running (nothing listens on {path})") from None
        sock.sendall(encode_line({"cmd": cmd, **args}))
        buf = bytearray()
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    except TimeoutError:
        raise ControlError(f"the daemon did not answer {cmd!r} within {timeout:g} s") from None
    finally:
        sock.close()
    if not buf:
        raise ControlError(f"the daemon closed the connection without answering {cmd!r}")
    try:
        reply = json.loads(buf)
    except ValueError:
        raise ControlError(f"the daemon's answer to {cmd!r} is not JSON") from None
    if not isinstance(reply, dict) or not reply.get("ok"):
        error = reply.get("error") if isinstance(reply, dict) else None
        raise ControlError(str(error or f"the daemon refused {cmd!r}"))
    return Reply(reply.get("data"), reply.get("text"))
