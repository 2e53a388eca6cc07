"""store.keypoints: round trip, damage detection, atomic replacement, deletion."""

from __future__ import annotations

import logging
import struct
import uuid
import zlib
from pathlib import Path

import numpy as np
import pytest

from store.keypoints import HEADER, MAX_RECORD, KeypointStore, KeypointStoreError

PID = str(uuid.uuid5(uuid.NAMESPACE_URL, "photo-1"))


def _record(n: int = 50, width: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 4000, (n, 2)).astype(np.float32), rng.integers(
        0, 256, (n, width), dtype=np.uint8
    )


@pytest.fixture
def store(tmp_path: Path) -> KeypointStore:
    return KeypointStore.under(tmp_path)


def test_round_trip_is_memory_mapped_and_exact(store: KeypointStore, tmp_path: Path) -> None:
    xy, desc = _record()
    size = store.put(PID, "sift", 4000, 3000, xy, desc)
    path = store.path(PID)
    assert path.parent.parent == tmp_path / "keypoints" and path.stat().st_size == size
    got = store.get(PID)
    assert got is not None and (got.kind, got.width, got.height, len(got)) == (
        "sift",
        4000,
        3000,
        50,
    )
    assert np.array_equal(got.descriptors, desc)
    # float16 positions: within 1/1024 of the value (2 px at 4000 px)
    assert np.allclose(got.xy.astype(np.float32), xy, rtol=1 / 1024, atol=0.01)
    assert not got.descriptors.flags.writeable  # a view of the read-only mapping
    assert list(store.ids()) == [PID]


def test_empty_record_is_not_missing(store: KeypointStore) -> None:
    store.put(PID, "orb", 10, 10, np.zeros((0, 2)), np.zeros((0, 32), np.uint8))
    got = store.get(PID)
    assert got is not None and len(got) == 0 and got.kind == "orb"


def test_missing_is_none_and_delete_removes_the_file(store: KeypointStore) -> None:
    assert store.get(PID) is None and not store.delete(PID)
    store.put(PID, "sift", 5, 5, *_record(3))
    assert store.has(PID) and store.delete(PID)
    assert not store.path(PID).exists() and store.get(PID) is None


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) - 7],  # truncated body
        lambda b: b[:10],  # truncated header
        lambda b: b"",  # empty file
        lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:],  # a flipped byte in the body
        lambda b: b"XXXX" + b[4:],  # bad magic
        lambda b: b[:4] + b"\x63\x00" + b[6:],  # a future version
        lambda b: b + b"\x00",  # trailing garbage
    ],
)
def test_damaged_records_read_as_missing_with_a_log_line(
    store: KeypointStore, damage, caplog: pytest.LogCaptureFixture
) -> None:
    store.put(PID, "sift", 100, 100, *_record(20))
    path = store.path(PID)
    path.write_bytes(damage(path.read_bytes()))
    with caplog.at_level(logging.INFO, logger="store.keypoints"):
        assert store.get(PID) is None
    assert PID in caplog.text and "rebuilt" in caplog.text


def test_the_layout_thumbnail_round_trips_and_fits_the_budget(store: KeypointStore) -> None:
    from embedder.keypoints import max_keypoints

    thumb = np.arange(1024, dtype=np.uint8)
    xy, desc = _record(max_keypoints("sift4"), width=64)
    size = store.put(PID, "sift4", 640, 480, xy, desc, thumb)
    assert size <= MAX_RECORD
    got = store.get(PID)
    assert got is not None and got.thumb is not None
    assert np.array_equal(got.thumb, thumb) and np.array_equal(got.descriptors, desc)
    store.put(PID, "sift4", 640, 480, xy[:3], desc[:3])  # no thumbnail: none comes back
    assert store.get(PID).thumb is None  # type: ignore[union-attr]
    with pytest.raises(KeypointStoreError, match="square"):
        store.put(PID, "sift4", 640, 480, xy[:3], desc[:3], np.zeros(1000, np.uint8))


def test_a_record_from_before_thumbnails_is_rebuilt_quietly(
    store: KeypointStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Version 1 (no thumbnail, a 24-byte header): read as missing, so search rebuilds it,
    logged at INFO (every record is rebuilt once after the upgrade: no warning flood)."""
    xy, desc = _record(4)
    body = xy.astype("<f2").tobytes() + desc.tobytes()
    head = struct.pack("<4sHBBIII", b"LKKP", 1, 1, 128, 4, 100, 100)
    crc = zlib.crc32(body, zlib.crc32(head))
    path = store.path(PID)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(head + struct.pack("<I", crc) + body)
    with caplog.at_level(logging.INFO, logger="store.keypoints"):
        assert store.get(PID) is None
    assert "version 1" in caplog.text and not [r for r in caplog.records if r.levelno > 20]


def test_overwrite_is_atomic_and_old_readers_keep_their_view(store: KeypointStore) -> None:
    xy1, d1 = _record(10, seed=1)
    xy2, d2 = _record(30, seed=2)
    store.put(PID, "sift", 100, 100, xy1, d1)
    old = store.get(PID)
    store.put(PID, "sift", 200, 200, xy2, d2)
    new = store.get(PID)
    assert old is not None and new is not None
    assert np.array_equal(old.descriptors, d1) and np.array_equal(new.descriptors, d2)
    assert new.width == 200
    leftovers = [p.name for p in store.path(PID).parent.iterdir()]
    assert leftovers == [store.path(PID).name]  # no temporary file left behind


def test_refuses_what_it_cannot_store(store: KeypointStore) -> None:
    n = (MAX_RECORD - HEADER.size) // 132 + 1
    with pytest.raises(KeypointStoreError, match="over"):
        store.put(PID, "sift", 10, 10, *_record(n))
    with pytest.raises(KeypointStoreError, match="kind"):
        store.put(PID, "surf", 10, 10, *_record(2))
    with pytest.raises(KeypointStoreError, match="point id"):
        store.put("../../etc/passwd", "sift", 10, 10, *_record(2))
    assert not store.has(PID)
