"""The code stays typed (mypy --strict) and lint-clean (ruff): docs/conventions.md, Style."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)


def test_mypy_strict() -> None:
    p = _run("mypy", "src")
    assert p.returncode == 0, p.stdout + p.stderr


def test_ruff() -> None:
    p = _run("ruff", "check", "--output-format", "concise", "src", "tests", "bench")
    assert p.returncode == 0, p.stdout + p.stderr
