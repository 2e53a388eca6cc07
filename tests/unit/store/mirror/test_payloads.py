"""The payload cache beside the mirror: what hits show while the store is down."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from common.atomic import atomic_write
from store.base import Filter, Record
from store.mirror import PayloadCache, payloads


def _record(pid: str, rev: int, **extra: object) -> Record:
    return Record(pid, {"paths": [f"{pid}.jpg"], "tags": ["t"], "rev": rev, **extra})


def test_it_keeps_display_fields_and_survives_a_restart(tmp_path: Path) -> None:
    cache = PayloadCache(tmp_path / "p.msgpack")
    cache.put([_record("a", 1, files=[{"path": "a.jpg"}]), _record("b", 2)])
    cache.save()
    again = PayloadCache.load(tmp_path / "p.msgpack")
    assert again.get(["a", "b", "c"]) == {
        "a": {"paths": ["a.jpg"], "tags": ["t"], "rev": 1},  # 'files' is not for display
        "b": {"paths": ["b.jpg"], "tags": ["t"], "rev": 2},
    }
    assert again.matching(Filter(paths=["b.jpg"])) == ["b"]


@pytest.mark.parametrize(
    "body",
    [
        b"not msgpack at all",
        msgspec.msgpack.encode({"format": 99, "items": {}}),
        msgspec.msgpack.encode({"format": 1, "items": [1, 2]}),
        msgspec.msgpack.encode({"format": 1, "items": {"a": 5}}),
    ],
)
def test_a_damaged_file_gives_an_empty_cache(tmp_path: Path, body: bytes) -> None:
    path = tmp_path / "p.msgpack"
    path.write_bytes(body)
    assert len(PayloadCache.load(path)) == 0


def test_sync_follows_the_mirror(tmp_path: Path) -> None:
    cache = PayloadCache(tmp_path / "p.msgpack")
    cache.put([_record("a", 1), _record("b", 1)])
    fetched: list[str] = []

    def fetch(ids: Sequence[str]) -> list[Record]:
        fetched.extend(ids)
        return [_record(i, 2) for i in ids]

    # 'a' unchanged, 'b' dropped by the mirror, 'c' new, so only 'c' is fetched.
    assert cache.sync({"a": 1, "c": 2}, fetch) == 2
    assert fetched == ["c"]
    assert sorted(cache.get(["a", "b", "c"])) == ["a", "c"]


def test_a_failed_save_leaves_the_old_file_and_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "p.msgpack"
    cache = PayloadCache(path)
    cache.put([_record("a", 1)])
    cache.save()
    cache.put([_record("b", 1)])

    def disk_full(fh: object) -> None:
        raise OSError("disk full")

    real = atomic_write
    monkeypatch.setattr(payloads, "atomic_write", lambda p, data: real(p, disk_full))
    with pytest.raises(OSError, match="disk full"):
        cache.save()
    assert sorted(PayloadCache.load(path).get(["a", "b"])) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.msgpack"]  # no temporary left
    monkeypatch.undo()
    cache.save()  # still marked changed, so this one writes
    assert sorted(PayloadCache.load(path).get(["a", "b"])) == ["a", "b"]
