"""The on-disk keypoint store: one small file per point under ``<data_dir>/keypoints/``.

Copy verification (issue 18) re-reads the local features of ~50 candidates per search. They
are written once at index time, read through ``mmap`` (the page cache holds what is hot;
nothing is held by the process, nothing goes into the Qdrant payload) and derived from the
image files, so a missing or damaged record is rebuilt, never trusted.

Layout: ``keypoints/<first two hex digits of the id>/<id>.kp``. One file per point, in 256
shard folders, rather than one packed file with an offset index, because:

- writes and deletes are single atomic file operations (temp file + rename; unlink), safe
  with many indexing threads and with a crash at any point; a packed file needs a free-list
  or compaction, and its own crash recovery;
- at 1M images the shards hold ~4,000 files each (ext4 and xfs index directories), and a
  record of at most 16 KiB wastes under one 4 KiB block on average;
- the price is an open + mmap per read: bench/verify_pick.py --store measured ~38 us per
  record read here against ~9 us for a slice of one packed mmap (the CRC dominates), i.e.
  ~2 ms for 50 candidates, beside ~2-4 ms per candidate for the matching itself.

Record (version 2): a 28-byte little-endian header (magic ``LKKP``, version, descriptor
kind, descriptor width, count, width, height, thumbnail side, a reserved zero, CRC-32 of the
rest of the header and the body), then ``count`` float16 (x, y) pairs in the original
image's pixel space, then ``count`` descriptors of ``width`` bytes, then the greyscale
layout thumbnail (side x side bytes, ``embedder.layout``; side 0: none). Writes skip fsync:
the data can be rebuilt, and a record torn by a power cut fails its checksum and is rebuilt
like a missing one. A record of another version (version 1 had no thumbnail) is rebuilt
the same way, so an upgrade needs no migration step.
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.atomic import atomic_write

log = logging.getLogger(__name__)

MAGIC = b"LKKP"
VERSION = 2
# magic, version, kind, desc width, count, w, h, thumbnail side, reserved, crc
HEADER = struct.Struct("<4sHBBIIIHHI")
KIND_CODES = {"sift": 1, "orb": 2, "sift4": 3}
KIND_NAMES = {code: name for name, code in KIND_CODES.items()}
MAX_RECORD = 16 * 1024  # issue 18: at most 16 KiB per image
SUFFIX = ".kp"


class KeypointStoreError(ValueError):
    """A record that cannot be written (unknown kind, over the size bound, bad id)."""


class OtherVersion(ValueError):
    """A record written by another version of Lookalike: rebuilt, as a damaged one is."""


@dataclass(frozen=True)
class StoredKeypoints:
    """One record, read-only. ``xy`` and ``descriptors`` are views of the mapped file."""

    kind: str
    width: int
    height: int
    xy: np.ndarray  # (n, 2) float16
    descriptors: np.ndarray  # (n, d) uint8
    thumb: np.ndarray | None = None  # (side * side,) uint8 layout thumbnail

    def __len__(self) -> int:
        return int(self.xy.shape[0])


def encode(
    kind: str,
    width: int,
    height: int,
    xy: np.ndarray,
    descriptors: np.ndarray,
    thumb: np.ndarray | None = None,
) -> bytes:
    """The bytes of one record. Raises ``KeypointStoreError`` when it cannot be stored."""
    if kind not in KIND_CODES:
        raise KeypointStoreError(f"unknown descriptor kind {kind!r}")
    xy16 = np.ascontiguousarray(xy, dtype="<f2").reshape(-1, 2)
    desc = np.ascontiguousarray(descriptors, dtype=np.uint8)
    desc = desc.reshape(len(xy16), -1) if desc.size else desc.reshape(len(xy16), 0)
    count, dwidth = desc.shape
    if count != len(xy16) or not 0 <= dwidth <= 255:
        raise KeypointStoreError("descriptors and positions disagree in number or width")
    if not np.all(np.isfinite(xy16)):
        raise KeypointStoreError("keypoint positions must be finite (float16 overflows at 65504)")
    small = b"" if thumb is None else np.ascontiguousarray(thumb, dtype=np.uint8).tobytes()
    side = math.isqrt(len(small))
    if side * side != len(small) or side > 255:
        raise KeypointStoreError(f"a thumbnail of {len(small)} bytes is not a square, side <= 255")
    body = xy16.tobytes() + desc.tobytes() + small
    if HEADER.size + len(body) > MAX_RECORD:
        raise KeypointStoreError(
            f"{count} keypoints take {HEADER.size + len(body)} bytes, over {MAX_RECORD}"
        )
    head = HEADER.pack(MAGIC, VERSION, KIND_CODES[kind], dwidth, count, width, height, side, 0, 0)
    crc = zlib.crc32(body, zlib.crc32(head[: HEADER.size - 4]))
    return head[: HEADER.size - 4] + struct.pack("<I", crc) + body


def decode(buf: bytes | mmap.mmap | memoryview) -> StoredKeypoints:
    """A record from its bytes (zero-copy views). Raises ``ValueError`` saying what is wrong."""
    if len(buf) < 6:
        raise ValueError(f"truncated header ({len(buf)} bytes)")
    magic, version = struct.unpack_from("<4sH", buf, 0)
    if magic != MAGIC:
        raise ValueError("not a keypoint record (bad magic)")
    if version != VERSION:
        raise OtherVersion(f"record version {version}, this Lookalike reads {VERSION}")
    if len(buf) < HEADER.size:
        raise ValueError(f"truncated header ({len(buf)} bytes)")
    _, _, code, dwidth, count, width, height, side, _, crc = HEADER.unpack_from(buf, 0)
    if code not in KIND_NAMES:
        raise ValueError(f"unknown descriptor kind code {code}")
    body_len = count * (4 + dwidth) + side * side
    if len(buf) != HEADER.size + body_len:
        raise ValueError(f"{len(buf)} bytes where {HEADER.size + body_len} were written")
    with memoryview(buf) as view:  # released at once: a damaged mapping is closed after
        actual = zlib.crc32(view[HEADER.size :], zlib.crc32(view[: HEADER.size - 4]))
    if actual != crc:
        raise ValueError("checksum mismatch")
    xy = np.frombuffer(buf, dtype="<f2", count=count * 2, offset=HEADER.size).reshape(count, 2)
    at = HEADER.size + count * 4
    desc = np.frombuffer(buf, dtype=np.uint8, count=count * dwidth, offset=at)
    at += count * dwidth
    thumb = np.frombuffer(buf, dtype=np.uint8, count=side * side, offset=at) if side else None
    return StoredKeypoints(KIND_NAMES[code], width, height, xy, desc.reshape(count, dwidth), thumb)


class KeypointStore:
    """Keypoint records keyed by point id (a UUID), under ``root`` (``<data_dir>/keypoints``).

    Safe for concurrent writers of different ids and for readers at any time: a reader sees
    the old record or the new one. ``get`` answers None for a missing *or damaged* record
    (logging which), so the caller extracts the features again and ``put``s them.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def under(cls, data_dir: Path) -> KeypointStore:
        return cls(Path(data_dir) / "keypoints")

    def path(self, point_id: str) -> Path:
        key = _canonical(point_id)
        return self.root / key[:2] / f"{key}{SUFFIX}"

    def put(
        self,
        point_id: str,
        kind: str,
        width: int,
        height: int,
        xy: np.ndarray,
        descriptors: np.ndarray,
        thumb: np.ndarray | None = None,
    ) -> int:
        """Write (or atomically replace) the record of ``point_id``; returns its size."""
        data = encode(kind, width, height, xy, descriptors, thumb)
        path = self.path(point_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, durable=False)
        return len(data)

    def get(self, point_id: str) -> StoredKeypoints | None:
        """The record, memory-mapped; None when missing or damaged (logged)."""
        path = self.path(point_id)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                raise ValueError("empty file")
            mapped = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            log.warning("keypoints of %s are unreadable (%s); they will be rebuilt", point_id, exc)
            return None
        finally:
            os.close(fd)  # the mapping stays valid without the descriptor
        try:
            return decode(mapped)  # the arrays keep the mapping alive
        except OtherVersion as exc:  # expected once after an upgrade: not worth a warning
            mapped.close()
            log.info("keypoints of %s: %s; they will be rebuilt", point_id, exc)
            return None
        except ValueError as exc:
            mapped.close()
            log.warning("keypoints of %s are damaged (%s); they will be rebuilt", point_id, exc)
            return None

    def has(self, point_id: str) -> bool:
        return self.path(point_id).is_file()

    def delete(self, point_id: str) -> bool:
        """Remove the record; True when there was one."""
        try:
            self.path(point_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def ids(self) -> Iterator[str]:
        """Every stored point id (for reconcile: records of deleted points, missing ones)."""
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if shard.is_dir() and len(shard.name) == 2:
                for f in sorted(shard.glob(f"*{SUFFIX}")):
                    yield f.name[: -len(SUFFIX)]


def _canonical(point_id: str) -> str:
    """The id as a lower-case hyphenated UUID: it names a file, so nothing else is accepted."""
    try:
        return str(uuid.UUID(str(point_id)))
    except ValueError:
        raise KeypointStoreError(f"{point_id!r} is not a point id (a UUID)") from None
