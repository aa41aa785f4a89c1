"""The transport's real sockets: abstract unix names as libumad2sim makes them, and UDP.

A raw client (:class:`~tests.peers.umad.RawClient`) talks to a server running on its own
event loop in a thread: more clients than ibsim's ten, each answered on its own
``<base>:out<N>``; a client that vanishes without DISCONNECT is dropped when writing to it
fails, freeing its slot and its port; malformed control messages get no answer; and the UDP
mode of ``ibsim -r`` serves the same protocol.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from ipoib.fabric import netfile
from ipoib.fabric.node import CAP_IS_SM
from ipoib.wire.ibsim import (
    CtlType,
    SimClientInfo,
    SimCtl,
    SimPort,
    SimRequestHeader,
    abstract_name,
    ctl_payload,
    pack_request,
)
from ipoib.wire.mad import Method, build_dr_smp, build_smp
from ipoib.wire.smp import NodeInfo, SmpAttr

from ..peers.umad import InProcess, RawClient

NET = Path("/usr/share/doc/ibsim-utils/net-examples/net.2sw2path4hca")


def node_info(client: RawClient, path: list[int]) -> NodeInfo:
    head, mad = client.mad(0xFFFF, build_dr_smp(Method.GET, SmpAttr.NODE_INFO, tid=path[-1],
                                                initial_path=path), qp=0)
    assert head.status == 0 and mad[3] == Method.GET_RESP
    return NodeInfo.decode(mad, 64)


def test_more_than_ten_clients_each_on_its_own_socket() -> None:
    with InProcess(netfile.load(NET), sm="embedded") as server:
        clients = [RawClient(server.name, "Hca3", 7000 + i) for i in range(12)]
        try:
            assert [c.slot for c in clients] == list(range(12))
            for c in clients:
                assert node_info(c, [0, 1]).node_guid == 0x200000  # Switch1, one hop away
            head, mad = clients[11].mad(1, build_smp(Method.GET, SmpAttr.NODE_INFO), qp=0)
            assert head.slid == 1 and mad[8:10] == (11).to_bytes(2, "big")  # slot 11's TID
        finally:
            for c in clients:
                c.close()
        server.stop()
        assert not server.net.ibsim.server.clients  # type: ignore[union-attr]


def test_a_vanished_sm_client_is_disconnected_when_written_to() -> None:
    with InProcess(netfile.load(NET)) as server:
        core = server.net.ibsim.server  # type: ignore[union-attr]
        sw0 = server.net.fabric.node("Switch1").ports[0]
        sm = RawClient(server.name, "Switch1", 7100, issm=1)
        assert sw0.cap_mask & CAP_IS_SM
        asker = RawClient(server.name, "Hca1", 7101)
        sm.vanish()
        # SMInfo is no SMA's: it goes to the SM client, whose socket is gone
        asker.send(0xFFFF, build_dr_smp(Method.GET, SmpAttr.SM_INFO, initial_path=[0, 1]), qp=0)
        deadline = time.monotonic() + 10
        while sm.slot in core.clients and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sm.slot not in core.clients
        assert core.drops["client_gone"] >= 1
        again = RawClient(server.name, "Switch1", 7102, issm=1)  # the port is free again
        assert again.slot == sm.slot
        again.close()
        asker.close()


def test_malformed_control_messages_get_no_reply() -> None:
    with InProcess(netfile.load(NET)) as server:
        client = RawClient(server.name, "Hca2", 7200)
        client.ctl.send(b"\0" * 79)  # not 80 bytes
        client.ctl.send(SimCtl(magic=1, clientid=client.slot, type=CtlType.GET_PORT).encode())
        reply = client.call(CtlType.GET_PORT)  # the only answer is to this one
        assert reply.type == CtlType.GET_PORT and SimPort.decode(reply.data).state == 2
        client.data.send(b"\x01" * 100)  # a short data message: dropped
        assert node_info(client, [0, 1]).node_guid == 0x200001
        client.close()
        server.stop()
        drops = server.net.ibsim.server.drops  # type: ignore[union-attr]
        assert drops["bad_ctl"] == 2 and drops["bad_size"] == 1


def _free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_udp_mode_serves_the_same_protocol() -> None:
    port = _free_udp_port()
    with InProcess(netfile.load(NET), sm="embedded", udp_port=port):
        ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        data = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for s in (ctl, data):
                s.bind(("127.0.0.1", 0))
                s.settimeout(10)
            ctl.connect(("127.0.0.1", port))
            ident = data.getsockname()[1]  # remote mode: the id is the data port
            ctl.send(SimCtl(type=CtlType.CONNECT, data=ctl_payload(
                SimClientInfo(id=ident, nodeid="Hca4"))).encode())
            reply = SimCtl.decode(ctl.recv(1024))
            slot = SimClientInfo.decode(reply.data).id
            data.connect(("127.0.0.1", port + slot + 1))
            data.send(pack_request(0xFFFF, 0xFFFF, 0, 0, 0, 256,
                                   build_dr_smp(Method.GET, SmpAttr.NODE_INFO)))
            buf = data.recv(1024)
            assert SimRequestHeader.decode(buf).status == 0
            assert NodeInfo.decode(buf, 96).port_guid == 0x10000A
            ctl.send(SimCtl(clientid=slot, type=CtlType.DISCONNECT).encode())
            assert SimCtl.decode(ctl.recv(1024)).type == CtlType.DISCONNECT
        finally:
            ctl.close()
            data.close()


def test_names_are_exact_abstract_addresses() -> None:
    """A name without the trailing NUL is another socket: nothing answers there."""
    with InProcess(netfile.load(NET)) as server:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect(abstract_name(server.name, "ctl"))
            wrong = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                wrong.connect(b"\0" + f"{server.name}:ctl".encode())
                raise AssertionError("a name without its trailing NUL must not exist")
            except ConnectionRefusedError:
                pass
            finally:
                wrong.close()
        finally:
            probe.close()
