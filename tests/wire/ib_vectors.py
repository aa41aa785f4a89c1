"""The native-IB packets of wire-formats.md §1.8, as bytes, for the wire and peer tests.

They were built from the documented rules and decode cleanly in tshark; the CRC bytes are
the ones the reference quotes.
"""

from __future__ import annotations

UD_UNICAST = bytes.fromhex(
    "00020003001800026400ffff00000049000000000000000b00000048080000004500003c00014000"
    "400126be0a0000010a00000208003b27123400016162636465666768696a6b6c6d6e6f7071727374"
    "757677616263646566676869"
)
"""UD IPoIB/ICMP echo 10.0.0.1 -> 10.0.0.2, DLID 3, SLID 2, DestQP 0x49, SrcQP 0x48, no GRH."""
UD_UNICAST_ICRC = bytes.fromhex("dd98c2a5")
UD_UNICAST_VCRC = bytes.fromhex("743a")

UD_MCAST = bytes.fromhex(
    "0003c001002200026000000000581b00fe800000000000000002c90300001001ff12401bffff0000"
    "00000000000000016400ffff00ffffff000000000000000b00000048080000004500003c00014000"
    "400150be0a000001e000000108003b27123400016162636465666768696a6b6c6d6e6f7071727374"
    "757677616263646566676869"
)
"""UD multicast with GRH: ICMP to 224.0.0.1, DLID 0xC001, DGID ff12:401b:ffff::1."""
UD_MCAST_ICRC = bytes.fromhex("5c3885b7")
UD_MCAST_VCRC = bytes.fromhex("2b7e")

DR_SMP_ICRC = bytes.fromhex("6b5a7e17")
DR_SMP_VCRC = bytes.fromhex("3118")
DR_SMP_LRH = bytes.fromhex("f002ffff0048ffff")

IPOIB_ICMP = UD_UNICAST[28:]
"""The UD payload of :data:`UD_UNICAST`: the 4-byte IPoIB header and a 60-byte IPv4 packet."""


def dr_smp_nodeinfo_get_mad() -> bytes:
    """The 256-byte DR SMP SubnGet(NodeInfo) of §1.8, laid out by hand (wire-formats.md §3.2).

    BaseVersion 1, class 0x81, ClassVersion 1, Get; HopPointer 0, HopCount 1; TID 0x42;
    attribute 0x0011; DrSLID = DrDLID = 0xFFFF; InitialPath[1] = 1.
    """
    mad = bytearray(256)
    mad[0:4] = bytes((0x01, 0x81, 0x01, 0x01))
    mad[7] = 1
    mad[8:16] = (0x42).to_bytes(8, "big")
    mad[16:18] = (0x0011).to_bytes(2, "big")
    mad[32:36] = b"\xff\xff\xff\xff"
    mad[128 + 1] = 1
    return bytes(mad)
