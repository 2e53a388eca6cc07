"""The secrets on disk: the admin's password hash, API key hashes and the CSRF signing key.

Everything lives under ``data_dir/auth`` (folder 0700, files 0600) and is written by
temporary file + rename, so a crash never leaves half a file. The server re-reads a file
whenever its mtime changes, so `lookalike passwd` and `lookalike apikey` take effect on a
running server without a restart. No Litestar here: the CLI uses this module too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.atomic import atomic_write
from engine.errors import BadInput, NotFound

log = logging.getLogger(__name__)

Scope = Literal["read", "write"]
SCOPES: tuple[Scope, ...] = ("read", "write")
KEY_PREFIX = "lk_"
MIN_PASSWORD_LENGTH = 8


def auth_dir(data_dir: Path) -> Path:
    path = data_dir / "auth"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, readable by the owner only."""
    atomic_write(path, data, mode=0o600)


@contextlib.contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Serialise read-modify-write cycles between processes (CLI and server)."""
    with open(folder / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class _Cached:
    """A file's parsed content, re-read only when its (mtime, size) moved."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._value: Any = None
        self._lock = threading.Lock()

    def get(self, parse: Any) -> Any:
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp:
                self._value = parse(self.path.read_bytes()) if stamp else None
                self._stamp = stamp
            return self._value


class PasswordStore:
    """The single admin password, as an argon2id hash (argon2-cffi's tuned defaults).

    A generated first password is written once to ``initial_admin_password`` (0600) instead
    of the log, and must be changed at the first login: the file's presence is that flag,
    and setting a password removes it.
    """

    def __init__(self, data_dir: Path) -> None:
        self.folder = auth_dir(data_dir)
        self.path = self.folder / "admin_password.argon2"
        self.initial_path = self.folder / "initial_admin_password"
        self._hasher = PasswordHasher()
        self._cached = _Cached(self.path)

    def _hash(self) -> str | None:
        value: str | None = self._cached.get(lambda b: b.decode().strip())
        return value

    def exists(self) -> bool:
        return self._hash() is not None

    def set(self, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise BadInput(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
        write_private(self.path, self._hasher.hash(password).encode() + b"\n")
        self.initial_path.unlink(missing_ok=True)  # a generated password is not kept

    def must_change(self) -> bool:
        """The stored password is the generated one: the admin must choose their own."""
        return self.initial_path.exists()

    def verify(self, password: str) -> bool:
        stored = self._hash()
        if stored is None:
            return False
        try:
            ok = self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        if ok and self._hasher.check_needs_rehash(stored):
            # Stored with weaker parameters than today's defaults: upgrade it now, the one
            # moment the password is at hand. (Other sessions end: the fingerprint moves.)
            write_private(self.path, self._hasher.hash(password).encode() + b"\n")
        return ok

    def fingerprint(self) -> str:
        """Changes whenever the password does: sessions carry it, so `lookalike passwd`
        logs every existing session out."""
        stored = self._hash() or ""
        return hashlib.sha256(stored.encode()).hexdigest()[:16]

    def ensure_initial(self, initial: str | None) -> Path | None:
        """On first start, store ``initial`` or a generated password. A generated one is
        written to ``initial_path`` (0600), never logged; returns that path, or None."""
        with _exclusive(self.folder):
            if self.exists():
                if initial:
                    log.warning(
                        "LOOKALIKE_ADMIN_PASSWORD is set, but a password is stored already: "
                        "the variable only sets the first one and is ignored now. Remove it "
                        "from the environment; `lookalike passwd` changes the password."
                    )
                return None
            if initial:
                self.set(initial)
                return None
            generated = secrets.token_urlsafe(15)
            self.set(generated)
            write_private(self.initial_path, generated.encode() + b"\n")
            return self.initial_path


@dataclass(frozen=True)
class ApiKey:
    id: str
    scope: Scope
    name: str
    created_at: float
    sha256: str


class ApiKeyStore:
    """API keys for scripts. Only a SHA-256 of each key is stored.

    A plain hash is enough here, unlike for the password: a key carries 256 random bits, so
    nobody can guess one from its hash, and a fast hash keeps each authenticated request cheap
    (an argon2 check costs tens of milliseconds of CPU by design).
    """

    def __init__(self, data_dir: Path) -> None:
        self.folder = auth_dir(data_dir)
        self.path = self.folder / "api_keys.json"
        self._cached = _Cached(self.path)

    def all(self) -> list[ApiKey]:
        keys: list[ApiKey] = self._cached.get(_parse_keys) or []
        return keys

    def create(self, scope: str, name: str = "") -> tuple[ApiKey, str]:
        if scope not in SCOPES:
            raise BadInput(f"The scope must be 'read' or 'write'; got {scope!r}.")
        key_id = secrets.token_hex(4)
        secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        record = ApiKey(key_id, scope, name, time.time(), _digest(secret))
        with _exclusive(self.folder):
            self._write([*_read_keys(self.path), record])
        return record, secret

    def revoke(self, key_id: str) -> ApiKey:
        with _exclusive(self.folder):
            keys = _read_keys(self.path)
            kept = [k for k in keys if k.id != key_id]
            if len(kept) == len(keys):
                raise NotFound(
                    f"No API key with id {key_id!r}; `lookalike apikey list` shows them."
                )
            self._write(kept)
        return next(k for k in keys if k.id == key_id)

    def verify(self, secret: str) -> ApiKey | None:
        digest = _digest(secret)
        found = None
        for key in self.all():  # compare every one, in constant time each
            if hmac.compare_digest(key.sha256, digest):
                found = key
        return found

    def _write(self, keys: list[ApiKey]) -> None:
        body = json.dumps({"keys": [asdict(k) for k in keys]}, indent=2).encode()
        write_private(self.path, body)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _parse_keys(raw: bytes) -> list[ApiKey]:
    return [ApiKey(**k) for k in json.loads(raw)["keys"]]


def _read_keys(path: Path) -> list[ApiKey]:
    try:
        return _parse_keys(path.read_bytes())
    except FileNotFoundError:
        return []


def load_secret_key(data_dir: Path, configured: str | None) -> str:
    """The CSRF signing key: the configured one, else one generated once and kept on disk."""
    if configured:
        return configured
    folder = auth_dir(data_dir)
    path = folder / "secret_key"
    with _exclusive(folder):
        if not path.exists():
            write_private(path, secrets.token_hex(32).encode())
        return path.read_text().strip()
