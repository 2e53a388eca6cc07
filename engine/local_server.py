"""How the CLI finds the ``lookalike serve`` that holds its data directory, and talks to it.

The embedded store lets one process at a time open the data directory, so while a server
runs, the CLI's ``status``, ``search``, ``index``, ``reconcile`` and ``duplicates`` go
through it over HTTP. The server leaves a credential for that in ``data_dir/auth`` (a 0700
folder, the file 0600: only the directory's owner can read it): its URL, its process id
and an API key made for this start, of which the key store keeps only the hash. Each start
makes a new key; a clean stop revokes it and removes the file, and keys left by a server
that died are revoked by the next start. Nothing else is stored, and nobody is asked for a
password.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.accounts import ApiKeyStore, auth_dir, write_private
from engine.errors import LookalikeError
from store.base import StoreUnavailable
from store.edge_dir import check_free as _check_edge_free

log = logging.getLogger(__name__)

CREDENTIAL_FILE = "local_server.json"
KEY_NAME = "local CLI of lookalike serve (pid {pid}); rotated at every start"
_KEY_PID = re.compile(r"^local CLI of lookalike serve \(pid (\d+)\)")


@dataclass(frozen=True)
class LocalServer:
    url: str
    key: str
    pid: int


def credential_path(data_dir: Path) -> Path:
    return data_dir / "auth" / CREDENTIAL_FILE


def local_url(host: str, port: int) -> str:
    """Where a process on this machine reaches a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def claim(data_dir: Path) -> None:
    """Before a server starts on an embedded store. When another process (a server, a CLI
    index run) holds the data directory: ``StoreUnavailable`` or ``LookalikeError``, naming
    it; such a server could only ever answer 503, so it does not start. When none does, a
    credential left by a server that is gone is withdrawn (its key revoked), even if its
    pid now belongs to some other live process."""
    try:
        _check_edge_free(data_dir)  # the lock decides: a credential may outlive its server
    except StoreUnavailable:
        current = find(data_dir)
        if current is not None and current.pid != os.getpid():
            raise LookalikeError(
                f"A Lookalike server (pid {current.pid}) already serves the data directory "
                f"{data_dir} at {current.url}: open that one, or stop it before starting "
                "another."
            ) from None
        raise
    stale = _read(credential_path(data_dir))
    if stale is not None and stale.pid != os.getpid():
        log.info("withdrawing the credential of a server that is gone (pid %d)", stale.pid)
        withdraw(data_dir, stale)


def publish(data_dir: Path, url: str) -> LocalServer | None:
    """At a server's start: a fresh key and the file the CLI reads. None (and nothing
    written) while another live server's credential is there."""
    current = find(data_dir)
    if current is not None and current.pid != os.getpid():
        log.warning(
            "another Lookalike server (pid %d) is already published for this data directory; "
            "the CLI keeps using that one",
            current.pid,
        )
        return None
    keys = ApiKeyStore(data_dir)
    for key in keys.all():
        match = _KEY_PID.match(key.name)
        if match and not _alive(int(match.group(1))):
            keys.revoke(key.id)  # left by a server that did not stop cleanly
    _, secret = keys.create("write", name=KEY_NAME.format(pid=os.getpid()))
    server = LocalServer(url=url, key=secret, pid=os.getpid())
    body = {"url": server.url, "key": server.key, "pid": server.pid}
    auth_dir(data_dir)  # 0700
    write_private(credential_path(data_dir), json.dumps(body).encode())
    return server


def withdraw(data_dir: Path, server: LocalServer) -> None:
    """At a clean stop: revoke this start's key, and remove the file if it is still ours."""
    keys = ApiKeyStore(data_dir)
    for key in keys.all():
        if key.name == KEY_NAME.format(pid=server.pid):
            with contextlib.suppress(Exception):
                keys.revoke(key.id)
    current = _read(credential_path(data_dir))
    if current is not None and current.pid == server.pid:
        credential_path(data_dir).unlink(missing_ok=True)


def find(data_dir: Path) -> LocalServer | None:
    """The live server published for this data directory, if any. A file left by a
    process that is gone is ignored (the next start replaces it)."""
    server = _read(credential_path(data_dir))
    return server if server is not None and _alive(server.pid) else None


def _read(path: Path) -> LocalServer | None:
    try:
        data = json.loads(path.read_bytes())
        return LocalServer(url=str(data["url"]), key=str(data["key"]), pid=int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, unreadable by this user, or half-written by a crash


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
