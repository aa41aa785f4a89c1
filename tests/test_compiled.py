"""The compiled hot modules (ipoib._compiled): the installed package runs them, IPOIB_PURE=1
runs the sources instead, and a compiled set that is not the build of the sources beside it
is never used."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ipoib import _compiled

SRC = Path(_compiled.__file__).resolve().parent.parent
_WHERE = "import ipoib.fabric.fabric as f, ipoib.sm.manager as m; print(f.__file__, m.__file__)"


def _where(pythonpath: Path, **env: str) -> tuple[list[str], str]:
    run = subprocess.run([sys.executable, "-c", _WHERE], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(pythonpath), **env}, check=True)
    return run.stdout.split(), run.stderr


def test_the_installed_package_runs_what_the_install_compiled() -> None:
    expected = (os.environ.get("IPOIB_PURE") != "1"
                and os.environ.get("IPOIB_COMPILE", "1") != "0")
    assert _compiled.compiled() == expected
    files, _ = _where(SRC)
    assert all(f.endswith(".so") == expected for f in files)


def test_pure_mode_imports_every_listed_module_from_source() -> None:
    files, err = _where(SRC, IPOIB_PURE="1")
    assert files == [str(_compiled.source("ipoib.fabric.fabric")),
                     str(_compiled.source("ipoib.sm.manager"))]
    assert err == ""


def test_an_edited_source_is_run_as_source_with_a_warning(tmp_path: Path) -> None:
    shutil.copytree(SRC, tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    copy = tmp_path / "src"
    files, err = _where(copy, IPOIB_PURE="0")
    assert all(f.endswith(".so") == _compiled.current() for f in files) and err == ""
    node = copy / "ipoib" / "fabric" / "node.py"
    node.write_text(node.read_text() + "\n# edited since the build\n")
    files, err = _where(copy, IPOIB_PURE="0")
    assert files == [str(copy / "ipoib" / "fabric" / "fabric.py"),
                     str(copy / "ipoib" / "sm" / "manager.py")]  # all or none, not a mix
    assert ("running pure Python" in err) == _compiled.current()


def test_the_digest_covers_every_listed_source() -> None:
    assert all(_compiled.source(m).is_file() for m in _compiled.MODULES)
    assert len(_compiled.digest()) == 64
