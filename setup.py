"""Builds the package; with mypyc at hand, also compiles the modules ``ipoib._compiled``
lists and stamps them with the digest of their sources (IPOIB_COMPILE=0: pure Python)."""

import os
import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

listed = runpy.run_path("src/ipoib/_compiled.py")


class BuildAndStamp(build_ext):
    """build_ext, then the stamp that tells ``ipoib._compiled.guard`` these are current."""

    def run(self) -> None:
        if self.inplace:  # shared objects of modules no longer listed would shadow them
            wanted = {listed["shared_object"](m) for m in listed["MODULES"]}
            for so in Path("src").rglob("*.so"):
                if so.resolve() not in wanted and "__mypyc" not in so.name:
                    so.unlink()
            for so in Path("src").glob("*__mypyc*.so"):
                so.unlink()
        super().run()
        if self.extensions:
            base = Path("src") if self.inplace else Path(self.build_lib)
            (base / "ipoib" / listed["STAMP"]).write_text(listed["digest"]() + "\n")


ext_modules = []
if os.environ.get("IPOIB_COMPILE", "1") != "0":
    try:
        from mypyc.build import mypycify
    except ImportError:
        mypycify = None
    if mypycify is not None:
        ext_modules = mypycify([os.path.relpath(listed["source"](m)) for m in listed["MODULES"]],
                               opt_level="3", debug_level="0")

setup(ext_modules=ext_modules, cmdclass={"build_ext": BuildAndStamp})
