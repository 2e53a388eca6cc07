"""`lookalike passwd` and `lookalike apikey`, through the real CLI entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cli import main
from engine.accounts import ApiKeyStore, PasswordStore


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_passwd_from_stdin(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a new password\n"))
    assert main(["passwd", "--password-stdin"]) == 0
    assert PasswordStore(data_dir).verify("a new password")


def test_passwd_prompts_twice(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["one password", "another one"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["passwd"]) == 2  # they differ: refused, nothing stored
    assert not PasswordStore(data_dir).exists()
    answers = iter(["same password", "same password"])
    assert main(["passwd"]) == 0
    assert PasswordStore(data_dir).verify("same password")


def test_apikey_create_list_revoke(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apikey", "create", "--scope", "read", "--json", "--name", "ci"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["scope"] == "read" and created["key"].startswith("lk_")
    assert ApiKeyStore(data_dir).verify(created["key"]) is not None

    assert main(["apikey", "create", "--scope", "write"]) == 0
    plain = capsys.readouterr()
    assert plain.out.strip().startswith("lk_") and "shown only now" in plain.err

    assert main(["apikey", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["scope"] for k in listed] == ["read", "write"]
    assert all("key" not in k for k in listed)

    assert main(["apikey", "revoke", created["id"]]) == 0
    assert ApiKeyStore(data_dir).verify(created["key"]) is None
    assert main(["apikey", "revoke", created["id"]]) == 2


def test_apikey_scope_is_required() -> None:
    with pytest.raises(SystemExit):
        main(["apikey", "create", "--scope", "admin"])


def test_apikey_json_goes_to_stdout_when_run_as_a_module(data_dir: Path) -> None:
    # `python -m cli` once printed the key to stderr: the command imported a second
    # copy of the module, whose JSON output still pointed at the redirected stream.
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "cli", "apikey", "create", "--scope", "read", "--json"],
        env={**os.environ, "LOOKALIKE_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    created = json.loads(done.stdout)
    assert created["scope"] == "read" and created["key"] not in done.stderr
    assert ApiKeyStore(data_dir).verify(created["key"]) is not None
