"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared/`` directory beside the project (reference docs and OpenSM vectors)."""
    assert SHARED.is_dir(), f"shared/ not found at {SHARED}"
    return SHARED


@pytest.fixture(scope="session")
def vectors_dir(shared_dir: Path) -> Path:
    """``shared/vectors/opensm``: real MAD bytes from OpenSM, saquery and ibsim."""
    return shared_dir / "vectors" / "opensm"
