"""Command groups of the ``ipoib`` command line (see :mod:`ipoib.cli`)."""
