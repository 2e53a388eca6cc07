"""Every CLI failure is one plain line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from cli import main
from engine.local_server import credential_path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOOKALIKE_LIBRARY_DIR", str(tmp_path / "library"))
    return tmp_path


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def test_a_server_that_is_gone_is_one_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = credential_path(env / "data")
    path.parent.mkdir(parents=True)
    # A live pid (this one) whose server does not answer: a server stuck or gone.
    path.write_text(
        json.dumps({"url": f"http://127.0.0.1:{port}", "key": "lk_x", "pid": os.getpid()})
    )
    assert main(["status"]) == 2
    line = _one_error_line(capsys)
    assert "holds the data directory but does not answer" in line and line.endswith(".")


def test_bad_settings_and_bad_input_are_one_line(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["search", "--weights", "smell=1", "x.jpg"]) == 2
    assert "Weights must look like" in _one_error_line(capsys)
    monkeypatch.setenv("LOOKALIKE_QDRANT_API_KEY", "k")
    assert main(["status"]) == 2
    assert "LOOKALIKE_QDRANT_URL" in _one_error_line(capsys)


def test_an_unexpected_error_is_one_line(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import cli.commands

    def broken() -> object:
        raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(cli.commands, "settings", broken)
    assert main(["status"]) == 2
    line = _one_error_line(capsys)
    assert line == (
        "error: Unexpected RuntimeError: the disk caught fire; run with --verbose for details."
    )
