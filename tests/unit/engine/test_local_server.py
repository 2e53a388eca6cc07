"""engine.local_server: the credential a running server leaves for the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.accounts import ApiKeyStore
from engine.local_server import credential_path, find, local_url, publish, withdraw


def test_publish_find_withdraw(tmp_path: Path) -> None:
    server = publish(tmp_path, "http://127.0.0.1:5050")
    assert server is not None and server.pid == os.getpid()
    path = credential_path(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert find(tmp_path) == server
    keys = ApiKeyStore(tmp_path)
    (key,) = keys.all()
    assert key.scope == "write" and keys.verify(server.key) == key  # only its hash is kept
    assert server.key not in (tmp_path / "auth" / "api_keys.json").read_text()

    again = publish(tmp_path, "http://127.0.0.1:5050")  # a restart of the same process
    assert again is not None and again.key != server.key
    withdraw(tmp_path, again)
    assert not path.exists() and find(tmp_path) is None
    assert keys.verify(again.key) is None


def test_a_dead_servers_credential_is_ignored_and_its_key_revoked(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    server = publish(tmp_path, "http://127.0.0.1:5050")
    assert server is not None
    body = json.loads(credential_path(tmp_path).read_text())
    credential_path(tmp_path).write_text(json.dumps({**body, "pid": pid}))
    keys = ApiKeyStore(tmp_path)
    (key,) = keys.all()
    keys.revoke(key.id)
    keys.create("write", name=f"local CLI of lookalike serve (pid {pid}); rotated at every start")
    assert find(tmp_path) is None  # that process is gone: the CLI works directly
    fresh = publish(tmp_path, "http://127.0.0.1:6060")
    assert fresh is not None and find(tmp_path) == fresh
    assert [k.name for k in keys.all()] == [
        f"local CLI of lookalike serve (pid {os.getpid()}); rotated at every start"
    ]


def test_local_url() -> None:
    assert local_url("0.0.0.0", 5050) == "http://127.0.0.1:5050"
    assert local_url("::", 80) == "http://[::1]:80"
    assert local_url("192.168.1.4", 8) == "http://192.168.1.4:8"
