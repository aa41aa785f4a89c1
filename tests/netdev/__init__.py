"""Tests of the IPoIB driver's sans-I/O state machines."""
