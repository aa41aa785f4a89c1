"""The control socket: mode 0600, JSON lines both ways, handlers, errors as one line."""

from __future__ import annotations

import asyncio
import enum
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator, Mapping
from ipaddress import IPv4Address, IPv6Interface
from pathlib import Path
from typing import Any

import pytest

from ipoib.host import control
from ipoib.host.control import ControlError, ControlServer, DaemonNotRunning, Reply


class Color(enum.Enum):
    RED = 1


class Served:
    """A ControlServer on its own loop thread."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ControlServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(5)
        return self.server

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def calls() -> list[str]:
    """What the server's ``after`` hook saw."""
    return []


@pytest.fixture
def served(tmp_path: Path, calls: list[str]) -> Iterator[ControlServer]:

    def echo(req: Mapping[str, Any]) -> Any:
        return {"you_sent": dict(req)}

    def view(req: Mapping[str, Any]) -> Reply:
        rows = [{"host": "h1", "gid": b"\xfe\x80" + bytes(14), "addr": IPv4Address("10.0.0.1"),
                 "ll": IPv6Interface("fe80::1/64"), "kind": Color.RED}]
        return Reply(rows, "h1  fe80::")

    def broken(req: Mapping[str, Any]) -> Any:
        if req.get("key"):
            raise KeyError("hca-9")
        raise ValueError("no such neighbour\nsecond line")

    server = ControlServer(tmp_path / "c.sock", {"echo": echo, "view": view, "broken": broken},
                           after=lambda: calls.append("after"))
    with Served(server) as s:
        yield s


def test_socket_is_mode_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        with Served(ControlServer(tmp_path / "u.sock")) as s:
            st = os.stat(s.path)
            assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    finally:
        os.umask(old)
    assert not (tmp_path / "u.sock").exists()  # removed on close


def test_round_trip_with_data_and_text(served: ControlServer, calls: list[str]) -> None:
    r = control.request(served.path, "view")
    assert r.text == "h1  fe80::"
    assert r.data == [{"host": "h1", "gid": "fe80" + "00" * 14, "addr": "10.0.0.1",
                       "ll": "fe80::1/64", "kind": "RED"}]
    r = control.request(served.path, "echo", host="h1", n=3)
    assert r.data == {"you_sent": {"cmd": "echo", "host": "h1", "n": 3}} and r.text is None
    assert calls == ["after", "after"]


def test_errors_are_replies_and_the_server_keeps_serving(served: ControlServer) -> None:
    with pytest.raises(ControlError) as e:
        control.request(served.path, "nope")
    assert "no command 'nope'" in str(e.value) and "echo" in str(e.value)
    with pytest.raises(ControlError) as e:
        control.request(served.path, "broken")
    assert str(e.value) == "broken: no such neighbour"
    with pytest.raises(ControlError) as e:
        control.request(served.path, "broken", key=True)
    assert str(e.value) == "broken: hca-9"
    assert control.request(served.path, "echo").data == {"you_sent": {"cmd": "echo"}}


def test_several_requests_on_one_connection_and_bad_lines(served: ControlServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(served.path))
        s.sendall(b'{"cmd": "echo", "a": 1}\nnot json\n[1, 2]\n{"cmd": "echo"}\n')
        f = s.makefile("rb")
        replies = [json.loads(f.readline()) for _ in range(4)]
    assert replies[0] == {"ok": True, "data": {"you_sent": {"cmd": "echo", "a": 1}}}
    assert replies[1] == {"ok": False, "error": "request is not JSON"}
    assert replies[2]["ok"] is False and "cmd" in replies[2]["error"]
    assert replies[3]["ok"] is True


def test_no_daemon_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning) as e:
        control.request(tmp_path / "missing.sock", "hosts")
    assert "no daemon is running" in str(e.value)
    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()  # a socket file nobody listens on (a daemon killed with SIGKILL)
    with pytest.raises(DaemonNotRunning):
        control.request(dead, "hosts")


def test_dispatch_without_transport() -> None:
    server = ControlServer("/nonexistent", {"x": lambda req: 42})
    assert server.dispatch({"cmd": "x"}) == {"ok": True, "data": 42}
    assert server.dispatch({"cmd": 3})["ok"] is False
    assert server.dispatch("x")["ok"] is False
    assert server.requests == 3
