"""The mirror's snapshot on disk: a manifest naming one generation of data files.

Layout of the snapshot directory::

    mirror.json              manifest: format, blocks, watermark, file names, sizes, CRCs
    index-<gen>.faiss        the faiss index (IndexIDMap2 over IndexFlatIP)
    ids-<gen>.npz            point uuids, their faiss ids and applied revs

A save writes the data files under fresh generation names, fsyncs them, then replaces the
manifest atomically (temp file, fsync, ``os.replace``, fsync of the directory). Until that
replace the old manifest still names the old, untouched files; after it, the new ones. A
crash at any point therefore leaves exactly one complete snapshot, plus strays that the
next save deletes. The CRCs are checked before faiss parses anything, because faiss trusts
the sizes it reads and a corrupt one can make it allocate without bound.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "mirror.json"
_CHUNK = 1 << 22


@dataclass
class Snapshot:
    index: Any  # faiss.IndexIDMap2
    uuids: list[str]
    fids: np.ndarray  # int64, aligned with uuids
    revs: np.ndarray  # int64, aligned with uuids
    watermark: int


def import_faiss() -> Any:
    """faiss, imported on first use because it is heavy. Typed as Any: its SWIG signatures
    do not show the keyword arguments and array conversions its Python layer adds."""
    return importlib.import_module("faiss")


class SnapshotError(Exception):
    """Why a snapshot cannot be used; the caller logs it and rebuilds."""


def write(directory: Path, blocks: tuple[tuple[str, int], ...], snap: Snapshot) -> None:
    faiss = import_faiss()
    directory.mkdir(parents=True, exist_ok=True)
    gen = uuid.uuid4().hex[:12]
    index_name, ids_name = f"index-{gen}.faiss", f"ids-{gen}.npz"

    crc = 0
    with open(directory / index_name, "wb") as f:

        def sink(chunk: bytes) -> None:
            nonlocal crc
            crc = zlib.crc32(chunk, crc)
            f.write(chunk)

        # Streamed through a callback so a large index is never copied in memory.
        faiss.write_index(snap.index, faiss.PyCallbackIOWriter(sink, _CHUNK))
        _sync(f)
    index_crc = crc

    buf = io.BytesIO()
    np.savez(
        buf,
        uuids=np.array(snap.uuids, dtype=np.str_),
        fids=np.asarray(snap.fids, dtype=np.int64),
        revs=np.asarray(snap.revs, dtype=np.int64),
    )
    ids_bytes = buf.getvalue()
    with open(directory / ids_name, "wb") as f:
        f.write(ids_bytes)
        _sync(f)

    manifest = {
        "format": FORMAT,
        "blocks": [[name, dim] for name, dim in blocks],
        "watermark": int(snap.watermark),
        "count": len(snap.uuids),
        "index": {
            "file": index_name,
            "bytes": (directory / index_name).stat().st_size,
            "crc32": index_crc,
        },
        "ids": {"file": ids_name, "bytes": len(ids_bytes), "crc32": zlib.crc32(ids_bytes)},
    }
    _replace(directory / MANIFEST, json.dumps(manifest, indent=1).encode())
    _remove_strays(directory, keep={MANIFEST, index_name, ids_name})


def read(directory: Path, blocks: tuple[tuple[str, int], ...]) -> Snapshot | None:
    """The snapshot in ``directory``, or None (logged) when missing, corrupt or built for
    other blocks."""
    manifest_path = directory / MANIFEST
    if not manifest_path.exists():
        log.info("no mirror snapshot at %s", directory)
        return None
    try:
        return _read(directory, blocks)
    except SnapshotError as exc:
        log.warning("mirror snapshot at %s not used: %s", directory, exc)
    except Exception as exc:  # faiss/numpy/json failures on damaged files
        log.warning("mirror snapshot at %s not used: %s: %s", directory, type(exc).__name__, exc)
    return None


def _read(directory: Path, blocks: tuple[tuple[str, int], ...]) -> Snapshot:
    faiss = import_faiss()
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise SnapshotError(f"unreadable manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"unknown format {manifest.get('format')!r}, want {FORMAT}")
    saved_blocks = [tuple(b) for b in manifest.get("blocks", [])]
    if saved_blocks != list(blocks):
        raise SnapshotError(f"built for blocks {saved_blocks}, now {list(blocks)}")
    count = int(manifest["count"])

    index_path = _checked(directory, manifest["index"])
    index = faiss.read_index(str(index_path))
    if not isinstance(index, faiss.IndexIDMap2):
        raise SnapshotError(f"index is a {type(index).__name__}, want IndexIDMap2")
    dim = sum(d for _, d in blocks)
    if index.d != dim or index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise SnapshotError(f"index has d={index.d}, metric {index.metric_type}; want {dim}, IP")
    if index.ntotal != count:
        raise SnapshotError(f"index holds {index.ntotal} vectors, manifest says {count}")

    with np.load(_checked(directory, manifest["ids"]), allow_pickle=False) as ids:
        uuids = [str(u) for u in ids["uuids"]]
        fids, revs = ids["fids"].astype(np.int64), ids["revs"].astype(np.int64)
    if not (len(uuids) == len(fids) == len(revs) == count) or len(set(uuids)) != count:
        raise SnapshotError("id map does not match the index")
    if not np.array_equal(np.sort(fids), np.sort(faiss.vector_to_array(index.id_map))):
        raise SnapshotError("id map and index disagree on faiss ids")
    return Snapshot(index, uuids, fids, revs, int(manifest["watermark"]))


def _checked(directory: Path, entry: dict[str, Any]) -> Path:
    """The data file named by a manifest entry, once its size and CRC match."""
    name = str(entry["file"])
    if Path(name).name != name:
        raise SnapshotError(f"bad file name {name!r}")
    path = directory / name
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SnapshotError(f"{name} is missing") from exc
    if size != entry["bytes"]:
        raise SnapshotError(f"{name} has {size} bytes, want {entry['bytes']}")
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    if crc != entry["crc32"]:
        raise SnapshotError(f"{name} fails its checksum")
    return path


def _sync(f: Any) -> None:
    f.flush()
    os.fsync(f.fileno())


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            _sync(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    # The rename itself is only durable once the directory entry is.
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_strays(directory: Path, keep: set[str]) -> None:
    """Older generations and leftovers of interrupted saves. One writer per directory."""
    for path in directory.iterdir():
        if path.name in keep or not path.is_file():
            continue
        if path.name.startswith((f"{MANIFEST}.", "index-", "ids-")):
            path.unlink(missing_ok=True)
