"""MAD protocol machinery shared by the SA and its clients, above the byte formats of ``wire``.

:mod:`ipoib.mad.rmpp` carries SA payloads bigger than one MAD (IBA 13.6). Like the other
cores it is sans-I/O: it takes MADs and ``now`` and returns MADs to send and a deadline.
"""
