"""Byte-exact InfiniBand, MAD, SA and IPoIB formats: each declared once (law 3).

Nothing here imports anything else of ours; every other layer imports from here.
"""

from .errors import DecodeError, EncodeError, WireError

__all__ = ["DecodeError", "EncodeError", "WireError"]
