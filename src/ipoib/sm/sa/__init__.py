"""The subnet administrator (IBA 15): GMP class 0x03 on QP1 of the SM's port.

:mod:`.server` dispatches requests and builds answers (one MAD, or RMPP for big tables);
:mod:`.path` answers PathRecord from the routes the LFTs hold; :mod:`.mcmember` keeps the
multicast groups (joins, leaves, queries); :mod:`.records` serves NodeRecord and
PortInfoRecord. Statuses follow OpenSM 3.3 (``osm_sa_*.c``) so clients see the same answers.
"""
