"""The payload cache beside the mirror: what hits show while the store is down."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest

from store.base import Filter, Record
from store.mirror import PayloadCache


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
