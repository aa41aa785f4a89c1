"""The SA answers the requests OpenSM 3.3.23 answered in the vectors with the same bytes.

Each test replays a request captured from a real client (saquery, or the raw ibsim client of
``client_exchange_hca3.txt``) from the same port of the same topology (``net.2sw2path4hca``,
SM on Switch1) and compares the answer byte for byte. Only TID bits 63-32 differ: ibsim put
its client slot there, our MAD layer its agent id. GetTableResp RMPP bytes differ by design:
the vectors went through umad2sim, which has no RMPP layer (wire-formats.md §5.1), so they
are compared separately.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ipoib.fabric import netfile
from ipoib.wire.mad import RMPP_FLAG_ACTIVE, RMPP_FLAG_FIRST, RMPP_FLAG_LAST, RmppHeader, SaMad

from ..vectors import read_hex
from .bringup import NET_EXAMPLES, SaClient, bring_up

TID_HIGH = slice(8, 12)
RMPP = slice(24, 36)


def _strip(mad: bytes) -> bytes:
    b = bytearray(mad)
    b[TID_HIGH] = bytes(4)
    return bytes(b)


def _exchange_text(vectors_dir: Path, title: str) -> tuple[bytes, bytes]:
    """(request MAD, reply MAD) of one exchange of ``client_exchange_hca3.txt``."""
    lines = (vectors_dir / "client_exchange_hca3.txt").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"=== {title}"))
    sent, reply, which = bytearray(), bytearray(), None
    for line in lines[start + 1:]:
        if line.startswith("==="):
            break
        if line.startswith("-- sent MAD"):
            which = sent
        elif line.startswith("-- reply MAD"):
            which = reply
        elif line.startswith("--") or line.strip() == "...":
            which = None if not line.startswith("-- sent MAD") else which
        elif which is not None and ":" in line:
            which.extend(bytes.fromhex(line.split(":", 1)[1]))
    return bytes(sent).ljust(256, b"\0"), bytes(reply)


@pytest.fixture
def subnet() -> tuple[object, SaClient, SaClient]:
    topo = netfile.load(NET_EXAMPLES / "net.2sw2path4hca")
    fabric, binding = bring_up(topo)
    return binding, SaClient(fabric, "Hca3"), SaClient(fabric, "Hca2")


@pytest.mark.parametrize("title", [
    "SA SubnAdmGet(PathRecord)", "SA SubnAdmGet(MCMemberRecord", "SA SubnAdmSet(MCMemberRecord)",
])
def test_client_exchange_replies_are_byte_exact(vectors_dir: Path, subnet: tuple[object, SaClient, SaClient],
                                                title: str) -> None:
    _binding, hca3, _hca2 = subnet
    request, want = _exchange_text(vectors_dir, title)
    hca3.send_raw(request, 1)
    (rx,) = hca3.collect()
    assert rx.slid == 1 and rx.src_qp == 1
    assert _strip(rx.mad[:len(want)]) == _strip(want)
    assert not any(rx.mad[len(want):])


@pytest.mark.parametrize("name", ["saquery_cpi", "saquery_pr", "saquery_mcmr", "saquery_nr_lid4"])
def test_saquery_replies_match_opensm(vectors_dir: Path, subnet: tuple[object, SaClient, SaClient],
                                      name: str) -> None:
    _binding, _hca3, hca2 = subnet  # saquery ran on Hca2 (LID 4)
    request, reply = (r for r in read_hex(vectors_dir / f"{name}.hex"))
    hca2.send_raw(request.mad, 1)
    (rx,) = hca2.collect()
    want = reply.valid
    got = rx.mad[:len(want)]
    assert _strip(got)[:RMPP.start] == _strip(want)[:RMPP.start]
    assert got[RMPP.stop:] == want[RMPP.stop:]
    assert not any(rx.mad[len(want):])
    sa = SaMad.decode(rx.mad)
    if sa.header.method == 0x92:
        # a whole table in one MAD: RMPP DATA segment 1 of 1 (OpenSM without the vendor
        # RMPP layer writes the same flags); PayloadLength = SA header + records.
        assert sa.rmpp == RmppHeader(rmpp_version=1, rmpp_type=1, r_resp_time=0x1F,
                                     rmpp_flags=RMPP_FLAG_ACTIVE | RMPP_FLAG_FIRST
                                     | RMPP_FLAG_LAST, segment_number=1,
                                     payload_length=len(want) - 36)
    else:
        assert got[RMPP] == want[RMPP]
