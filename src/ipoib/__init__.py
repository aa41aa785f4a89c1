"""ipoib: IP over InfiniBand in Python, with the simulated InfiniBand subnet it runs on."""

__version__ = "0.1.0"

from . import _compiled

_compiled.guard()
