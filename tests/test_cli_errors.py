"""The command line's error contract: one readable line and a non-zero exit, never a traceback;
a reader that leaves early (``| head``) is not an error."""

from __future__ import annotations

import argparse

import pytest

from ipoib import cli


def _with(func: object, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    parser.set_defaults(func=func)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)


def test_broken_pipe_is_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(args: argparse.Namespace) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    _with(gone, monkeypatch)
    with open("/dev/null", "w") as devnull:  # main closes stderr: give it one of its own
        monkeypatch.setattr(cli.sys, "stderr", devnull)
        assert cli.main([]) == 0


def test_user_errors_are_one_line(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def bad(args: argparse.Namespace) -> int:
        raise cli.CliError("no daemon is running")

    _with(bad, monkeypatch)
    assert cli.main([]) == 2
    assert capsys.readouterr().err == "ipoib: no daemon is running\n"
