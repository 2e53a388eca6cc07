"""Every CLI failure is one plain line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from cli import main
from engine.accounts import ApiKeyStore
from engine.local_server import KEY_NAME, credential_path


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


def test_settings_are_refused_by_variable_name_not_by_pydantic(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOKALIKE_CNN", "vgg")
    assert main(["status"]) == 2
    line = _one_error_line(capsys)
    assert line == (
        "error: Invalid settings: LOOKALIKE_CNN must be 'resnet50', 'effnet-lite0' or 'off'; "
        "got 'vgg'."
    )
    monkeypatch.delenv("LOOKALIKE_CNN")
    monkeypatch.setenv("LOOKALIKE_EDGE_SHARDS", "0")
    assert main(["status"]) == 2
    line = _one_error_line(capsys)
    assert line == "error: Invalid settings: LOOKALIKE_EDGE_SHARDS must be at least 1; got '0'."
    assert "pydantic" not in line and "type=" not in line


def test_serve_refuses_a_port_that_cannot_be(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--port", "99999"])
    assert exited.value.code == 2
    assert "a port is a whole number from 1 to 65535, not '99999'" in capsys.readouterr().err


def test_serve_on_a_data_directory_held_elsewhere_stops_at_once(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    import uvicorn

    started: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append(a))
    lock = env / "data" / "qdrant-edge" / "lookalike.lock"
    lock.parent.mkdir(parents=True)
    lock.touch()
    # Another process holds the embedded store (as a CLI `index` run would).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl,sys,time; f=open({str(lock)!r},'a+'); "
            "fcntl.flock(f, fcntl.LOCK_EX); f.write('4242\\n'); f.flush(); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    path = credential_path(env / "data")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["serve", "--port", "5099"]) == 2
        line = _one_error_line(capsys)
        assert "is in use by another Lookalike process (pid 4242)" in line
        assert started == []  # never listened
        # The holder is a published server: named with its address.
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {"url": "http://127.0.0.1:5050", "key": "k", "pid": holder.pid}
        path.write_text(json.dumps(body))
        assert main(["serve", "--port", "5099"]) == 2
        line = _one_error_line(capsys)
        assert "already serves the data directory" in line and "http://127.0.0.1:5050" in line
        assert started == []
    finally:
        holder.kill()
        holder.wait()
    assert lock.read_text() == "4242\n"  # the refused server left the holder's record alone
    # A credential left behind whose pid now belongs to another live process (pid reuse
    # after a crash) does not keep the server from starting: the lock is free.
    path.write_text(json.dumps({"url": "http://127.0.0.1:5050", "key": "k", "pid": os.getppid()}))
    stale_key = ApiKeyStore(env / "data").create("write", name=KEY_NAME.format(pid=os.getppid()))
    published: list[int] = []
    monkeypatch.setattr(
        uvicorn, "run", lambda *a, **k: published.append(json.loads(path.read_text())["pid"])
    )
    assert main(["serve", "--port", "5099"]) == 0
    # It was withdrawn, with its key, and this server published its own while it ran.
    assert published == [os.getpid()]
    assert stale_key[0].id not in {key.id for key in ApiKeyStore(env / "data").all()}


def test_index_refuses_tags_that_name_no_tag(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (env / "library").mkdir()
    assert main(["index", "--tags", ",,,"]) == 2
    assert "--tags names no tag" in _one_error_line(capsys)
    assert main(["index", "--tags", "ok," + "x" * 65]) == 2
    assert "A tag must be 1 to 64 characters" in _one_error_line(capsys)
    assert not (env / "data" / "qdrant-edge").exists()  # refused before the store was opened


def test_a_contact_sheet_that_cannot_be_written_is_refused_before_searching(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "--text", "ring", "--sheet", str(env / "nowhere" / "x.pdf")]) == 2
    line = _one_error_line(capsys)
    assert line.endswith(f"the folder {env / 'nowhere'} does not exist.")
    assert not (env / "data" / "qdrant-edge").exists()  # no store opened, no model loaded


def test_a_refused_secret_setting_is_never_echoed() -> None:
    from engine.settings_text import settings_sentence

    errors = [
        {"loc": ("secret_key",), "msg": "Value should have at least 32 items", "input": "hunter2"}
    ]
    sentence = settings_sentence(errors)
    assert sentence.startswith("Invalid settings: LOOKALIKE_SECRET_KEY")
    assert "hunter2" not in sentence
    errors = [{"loc": ("port",), "msg": "Input should be a valid integer", "input": "x"}]
    assert (
        settings_sentence(errors)
        == "Invalid settings: LOOKALIKE_PORT must be a whole number; got 'x'."
    )
