"""Secrets on disk: only hashes, owner-only files, changes seen without a restart."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from engine.accounts import ApiKeyStore, PasswordStore, load_secret_key
from engine.errors import BadInput, NotFound


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_password_is_stored_as_an_argon2_hash(tmp_path: Path) -> None:
    store = PasswordStore(tmp_path)
    assert not store.exists() and not store.verify("anything")
    store.set("first password")
    assert store.path.read_text().startswith("$argon2id$")
    assert "first password" not in store.path.read_text()
    assert _mode(store.path) == 0o600 and _mode(store.folder) == 0o700
    assert store.verify("first password") and not store.verify("first passwor")


def test_password_change_is_seen_by_another_instance(tmp_path: Path) -> None:
    server, cli = PasswordStore(tmp_path), PasswordStore(tmp_path)
    server.set("first password")
    before = server.fingerprint()
    cli.set("second password")  # `lookalike passwd` while the server runs
    assert server.verify("second password") and not server.verify("first password")
    assert server.fingerprint() != before


def test_short_passwords_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="at least 8"):
        PasswordStore(tmp_path).set("short")


def test_initial_password_is_set_once(tmp_path: Path) -> None:
    store = PasswordStore(tmp_path)
    written = store.ensure_initial(None)
    assert written == store.initial_path and _mode(written) == 0o600
    generated = written.read_text().strip()
    assert store.verify(generated) and store.must_change()
    assert store.ensure_initial(None) is None  # never regenerated, never shown again
    assert store.ensure_initial("from the environment") is None
    assert store.verify(generated)
    store.set("chosen by the admin")  # the generated one is gone with its file
    assert not store.must_change() and not written.exists()
    other = PasswordStore(tmp_path / "other")
    assert other.ensure_initial("from the environment") is None
    assert other.verify("from the environment") and not other.must_change()


def test_a_hash_with_old_parameters_is_upgraded_at_login(tmp_path: Path) -> None:
    from argon2 import PasswordHasher

    store = PasswordStore(tmp_path)
    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    store.path.write_text(weak.hash("an old password") + "\n")
    assert store._hasher.check_needs_rehash(store.path.read_text().strip())
    assert not store.verify("a wrong password")
    assert store._hasher.check_needs_rehash(store.path.read_text().strip())  # wrong: kept
    assert store.verify("an old password")
    upgraded = store.path.read_text().strip()
    assert not store._hasher.check_needs_rehash(upgraded)
    assert store.verify("an old password") and _mode(store.path) == 0o600


def test_api_keys_store_only_hashes(tmp_path: Path) -> None:
    keys = ApiKeyStore(tmp_path)
    read, read_secret = keys.create("read", name="ci")
    write, write_secret = keys.create("write")
    raw = keys.path.read_text()
    assert read_secret not in raw and write_secret not in raw
    assert _mode(keys.path) == 0o600
    assert keys.verify(read_secret) == read and keys.verify(write_secret) == write
    assert keys.verify(read_secret + "x") is None and keys.verify("") is None
    assert [k.id for k in ApiKeyStore(tmp_path).all()] == [read.id, write.id]
    assert json.loads(raw)["keys"][0]["scope"] == "read"


def test_revoked_keys_stop_working(tmp_path: Path) -> None:
    server, cli = ApiKeyStore(tmp_path), ApiKeyStore(tmp_path)
    key, secret = cli.create("write")
    assert server.verify(secret) == key
    cli.revoke(key.id)
    assert server.verify(secret) is None
    with pytest.raises(NotFound):
        cli.revoke(key.id)
    with pytest.raises(BadInput):
        cli.create("admin")


def test_secret_key_is_generated_once(tmp_path: Path) -> None:
    first = load_secret_key(tmp_path, None)
    assert len(first) == 64 and load_secret_key(tmp_path, None) == first
    assert _mode(tmp_path / "auth" / "secret_key") == 0o600
    assert load_secret_key(tmp_path, "configured") == "configured"
