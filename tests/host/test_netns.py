"""Namespaces: names made safe, create/delete, entering and coming back, processes inside."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipoib.host import netns
from tests.host.helpers import ip_json, ip_netns_list, needs_root

ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@pytest.mark.parametrize("node,want", [
    ("hca-1", "ipoib-hca-1"),
    ("MT25408 ConnectX Mellanox Technologies", "ipoib-MT25408-ConnectX-Mellanox-Technologies"),
    ("H-0002c903000abcd", "ipoib-H-0002c903000abcd"),
    ("a/b//c", "ipoib-a-b-c"),
    ("../..", "ipoib-..-.."),
    ("..", "ipoib-node"),
    ("  ", "ipoib-node"),
])
def test_names_are_prefixed_and_sanitized(node: str, want: str) -> None:
    assert netns.name_for(node) == want


def test_long_names_are_cut_and_prefix_is_kept() -> None:
    name = netns.name_for("x" * 300, "p-")
    assert name.startswith("p-x") and len(name) == netns.MAX_NAME


@given(st.text(max_size=120), st.sampled_from(["ipoib-", "t-", ""]))
def test_any_node_name_gives_a_valid_namespace_name(node: str, prefix: str) -> None:
    name = netns.name_for(node, prefix)
    assert name and name not in (".", "..")
    assert set(name) <= ALLOWED and len(name) <= netns.MAX_NAME
    assert name.startswith(prefix[: netns.MAX_NAME])


def test_prefix_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(netns.PREFIX_ENV, "mine-")
    assert netns.default_prefix() == "mine-"
    monkeypatch.delenv(netns.PREFIX_ENV)
    assert netns.default_prefix() == "ipoib-"


@needs_root
def test_create_then_delete(prefix: str) -> None:
    name = f"{prefix}one"
    netns.create(name)
    try:
        assert name in ip_netns_list() and netns.exists(name)
        assert netns.list_names(prefix) == [name]
        (lo,) = ip_json(name, "link", "show", "lo")
        assert "UP" in lo["flags"]
        addrs = ip_json(name, "addr", "show", "lo")[0]["addr_info"]
        assert {"127.0.0.1", "::1"} <= {a["local"] for a in addrs}
    finally:
        netns.delete(name)
    assert name not in ip_netns_list() and not netns.exists(name)
    netns.delete(name)  # deleting what is gone is fine


@needs_root
def test_an_existing_namespace_is_taken_and_left_alone(prefix: str) -> None:
    name = f"{prefix}taken"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        with pytest.raises(netns.NamespaceTaken) as e:
            netns.create(name)
        assert name in str(e.value) and "\n" not in str(e.value)
        assert name in ip_netns_list()
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def _ns_inode(path: str) -> int:
    return os.stat(path).st_ino


@needs_root
def test_entered_switches_this_thread_and_comes_back(prefix: str) -> None:
    name = f"{prefix}in"
    netns.create(name)
    try:
        home = _ns_inode("/proc/thread-self/ns/net")
        with netns.entered(name):
            assert _ns_inode("/proc/thread-self/ns/net") == _ns_inode(str(netns.path(name)))
        assert _ns_inode("/proc/thread-self/ns/net") == home
        with pytest.raises(RuntimeError), netns.entered(name):
            raise RuntimeError("body fails")
        assert _ns_inode("/proc/thread-self/ns/net") == home
    finally:
        netns.delete(name)


@needs_root
def test_processes_inside_are_found_and_killed_by_delete(prefix: str) -> None:
    name = f"{prefix}procs"
    netns.create(name)
    try:
        p = netns.popen(name, ["sleep", "60"])
        outside = subprocess.Popen(["sleep", "60"])
        try:
            deadline = time.monotonic() + 5
            while p.pid not in netns.pids(name) and time.monotonic() < deadline:
                time.sleep(0.01)
            assert netns.pids(name) == [p.pid]
            netns.delete(name, grace=0.5)
            assert p.wait(5) is not None
            assert outside.poll() is None  # only the namespace's processes
        finally:
            outside.kill()
            outside.wait()
            if p.poll() is None:
                p.kill()
    finally:
        netns.delete(name)
