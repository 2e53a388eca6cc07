"""Library management use cases: list, read, tag, delete and upload images."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import STORE_DOWN, BadInput, NotFound, StoreUnavailableError, UndecodableImage
from store.base import Filter, StoreUnavailable, point_id_for_sha256

if TYPE_CHECKING:
    from engine.core import Engine

log = logging.getLogger(__name__)

MAX_PAGE = 500
UPLOAD_FOLDER = "uploads"
# An upload arriving during a reindex waits for it rather than being refused (the user's
# files would be lost); a reindex of a large library can outlast any HTTP client, though.
UPLOAD_WAIT_S = 60.0
TEMP_PREFIX = ".upload-"
# Temporary files of uploads cut short by a crash. Younger ones may belong to an upload in
# flight in another process sharing the library, so they are left alone.
STALE_TEMP_S = 15 * 60
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Page:
    items: list[dict[str, Any]]  # {"id": ..., **payload}
    total: int
    offset: int
    limit: int


def _check_id(image_id: str) -> str:
    try:
        return str(uuid.UUID(image_id))
    except (ValueError, AttributeError, TypeError):
        raise BadInput(f"{image_id!r} is not an image id (a UUID).") from None


def get_image(engine: Engine, image_id: str) -> dict[str, Any]:
    point_id = _check_id(image_id)
    if engine.health.should_try():
        try:
            records = engine.store.retrieve([point_id])
        except StoreUnavailable as exc:
            engine.health.failed(exc)
        else:
            if not records:
                raise NotFound(f"No image with id {image_id}.")
            return {"id": records[0].id, **records[0].payload}
    # The store is down: hits found in the mirror can still be shown (file, thumbnail).
    cached = engine.payloads.get([point_id]).get(point_id)
    if cached is None:
        raise StoreUnavailableError(STORE_DOWN)
    return {"id": point_id, **cached}


def _stored_image(engine: Engine, image_id: str) -> dict[str, Any]:
    """``get_image`` from the store itself, never the cache: for changes, which must fail
    before they touch anything while the store is down."""
    if engine.health.down and not engine.check_store():
        raise StoreUnavailableError(STORE_DOWN)
    records = engine.store.retrieve([_check_id(image_id)])
    if not records:
        raise NotFound(f"No image with id {image_id}.")
    return {"id": records[0].id, **records[0].payload}


def list_images(engine: Engine, flt: Filter, *, offset: int = 0, limit: int = 50) -> Page:
    if offset < 0 or not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"offset must be >= 0 and limit between 1 and {MAX_PAGE}.")
    items: list[dict[str, Any]] = []
    # Scroll is in id order, so pages are stable while nothing is written.
    for i, record in enumerate(engine.store.scroll(flt, batch=min(offset + limit, 1000))):
        if i >= offset + limit:
            break
        if i >= offset:
            items.append({"id": record.id, **record.payload})
    return Page(items=items, total=engine.store.count(flt), offset=offset, limit=limit)


def set_tags(engine: Engine, image_id: str, tags: Sequence[str]) -> dict[str, Any]:
    clean = sorted({_check_tag(t) for t in tags})
    _stored_image(engine, image_id)
    engine.store.set_payload([_check_id(image_id)], {"tags": clean})
    engine.sync_mirror()
    return get_image(engine, image_id)


def _check_tag(tag: str) -> str:
    tag = str(tag).strip()
    if not tag or len(tag) > 64 or any(c in tag for c in ",\n\r\t"):
        raise BadInput(f"A tag must be 1 to 64 characters with no comma or newline; got {tag!r}.")
    return tag


def parse_tags(text: str | None) -> list[str]:
    return [_check_tag(t) for t in (text or "").split(",") if t.strip()]


def file_path(engine: Engine, image_id: str) -> Path:
    """The first file of the image that exists on disk inside the library (served to users).

    Only the library is served: a path outside it (a folder the CLI indexed, a symlink
    leading out, a key holding '..') is never opened, whatever the store says."""
    image = get_image(engine, image_id)
    for key in image.get("paths") or ():
        path = engine.keys.path(key)
        if engine.keys.is_inside(path) and path.is_file():
            return path
    raise NotFound(
        f"The files of image {image_id} are not on disk inside the library; run a reconcile."
    )


def delete_image(engine: Engine, image_id: str) -> None:
    """Remove the point and move its files inside the library to the trash (data/trash),
    so a mistaken delete can be undone by hand and a reconcile does not re-add them."""
    image = _stored_image(engine, image_id)  # no file moves while the store is down
    trash = engine.settings.data_dir / "trash" / image["id"]
    for key in image.get("paths") or ():
        path = engine.keys.path(key)
        if path.is_file() and engine.keys.is_inside(path):
            trash.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), trash / path.name)
    engine.store.delete([image["id"]])
    engine.sync_mirror(removed=[image["id"]])


def safe_filename(name: str) -> str:
    """A filename that cannot escape the upload folder or upset a filesystem."""
    base = unicodedata.normalize("NFKC", name.replace("\\", "/").rsplit("/", 1)[-1])
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")[:100] or "image"
    suffix = _UNSAFE.sub("", suffix)[:10].lower()
    return f"{stem}.{suffix}" if suffix else stem


def upload(
    engine: Engine, files: Sequence[tuple[str, bytes]], tags: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Validate every file first (nothing is written if any is bad), then store each under
    the library's upload folder and index exactly those files."""
    from embedder.decode import decode_image
    from embedder.errors import DecodeError

    if not files:
        raise BadInput("No file was uploaded: send one or more multipart fields named 'files'.")
    tag_list = [_check_tag(t) for t in tags]
    decoded = []
    for name, data in files:
        try:
            decoded.append(decode_image(data, name))
        except DecodeError as exc:
            raise UndecodableImage(str(exc)) from exc
    folder = engine.settings.library_dir / UPLOAD_FOLDER
    # The lock is held from before the first file is written: a reindex never sees a file
    # that is about to be rolled back, and a refused upload has written nothing.
    with engine.writing(timeout=UPLOAD_WAIT_S):
        folder.mkdir(parents=True, exist_ok=True)
        created: list[Path] = []
        try:
            written = []
            for i, (name, data) in enumerate(files):
                path, new = _write_unique(folder, safe_filename(name), data, decoded[i].format)
                written.append(path)
                created += [path] if new else []
            report = engine.index_files(written, tags=tag_list)
            if report.failed:
                raise UndecodableImage("; ".join(f"{k}: {r}" for k, r in report.failed))
        except BaseException:
            _roll_back(engine, created)
            raise
        ids = [point_id_for_sha256(hashlib.sha256(data).hexdigest()) for _, data in files]
        return [get_image(engine, pid) for pid in dict.fromkeys(ids)]


def _roll_back(engine: Engine, created: Sequence[Path]) -> None:
    """Remove the files this upload wrote, and any claim on them already stored."""
    for path in created:
        path.unlink(missing_ok=True)
    if not created:
        return
    try:
        engine.unindex_files(created)
    except Exception as exc:  # the store is down: the next reconcile drops the claims
        log.warning("could not drop the claims of a failed upload: %s", exc)


def sweep_stale_uploads(engine: Engine, older_than_s: float = STALE_TEMP_S) -> int:
    """Delete temporary files left by uploads that a crash cut short; returns how many."""
    folder = engine.settings.library_dir / UPLOAD_FOLDER
    cutoff = time.time() - older_than_s
    removed = 0
    for path in folder.glob(f"{TEMP_PREFIX}*") if folder.is_dir() else ():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue  # gone already, or not ours to remove
    return removed


_SUFFIX_FOR_FORMAT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


def _write_unique(folder: Path, name: str, data: bytes, fmt: str) -> tuple[Path, bool]:
    """Write ``data`` under a free name; returns (path, whether a file was created)."""
    stem, _, suffix = name.rpartition(".")
    if not stem:
        stem, suffix = name, ""
    # The suffix follows the content, so a PNG uploaded as 'x.jpg' is saved as 'x.png'.
    suffix = _SUFFIX_FOR_FORMAT.get(fmt, suffix or fmt.lower() or "img")
    target = folder / f"{stem}.{suffix}"
    n = 1
    while target.exists():
        if target.read_bytes() == data:
            return target, False  # the same upload again: index is a no-op for it
        n += 1
        target = folder / f"{stem}-{n}.{suffix}"
    # Write to a temporary file and rename, so a crash never leaves half an image behind.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, True
