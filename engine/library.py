"""The library use case: upload, list, read, tag and delete images, and find their files.

Uploads are stored under the library's ``uploads`` folder with safe names and indexed
through the indexing use case, so an upload and a reindex can never disagree about a file.
A delete moves the files to ``data_dir/trash`` (a mistaken delete can be undone by hand, and
a reconcile does not re-add them) and removes the point and its mirror row.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.atomic import atomic_write
from engine.errors import BadInput, NotFound, UndecodableImage
from engine.search import check_id
from store.base import Filter, point_id_for_sha256

if TYPE_CHECKING:
    from engine.folder import PathKeys
    from engine.indexing import Indexing
    from engine.read_policy import ReadPolicy
    from store.base import Store

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
_SUFFIX_FOR_FORMAT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


@dataclass
class Page:
    items: list[dict[str, Any]]  # {"id": ..., **payload}
    total: int
    offset: int
    limit: int


class Library:
    def __init__(
        self,
        store: Callable[[], Store],
        reader: ReadPolicy,
        indexing: Indexing,
        keys: PathKeys,
        library_dir: Path,
        trash_dir: Path,
        sync_mirror: Callable[..., Any],
    ) -> None:
        self._store = store
        self._reader = reader
        self._indexing = indexing
        self._keys = keys
        self._library_dir = library_dir
        self._trash_dir = trash_dir
        self._sync_mirror = sync_mirror

    @property
    def upload_folder(self) -> Path:
        return self._library_dir / UPLOAD_FOLDER

    def get(self, image_id: str) -> dict[str, Any]:
        """One image: ``{"id": ..., **payload}``."""
        return self._reader.image(check_id(image_id))

    def list_images(self, flt: Filter, *, offset: int = 0, limit: int = 50) -> Page:
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise BadInput(f"offset must be >= 0 and limit between 1 and {MAX_PAGE}.")
        store = self._store()
        items: list[dict[str, Any]] = []
        # Scroll is in id order, so pages are stable while nothing is written.
        for i, record in enumerate(store.scroll(flt, batch=min(offset + limit, 1000))):
            if i >= offset + limit:
                break
            if i >= offset:
                items.append({"id": record.id, **record.payload})
        return Page(items=items, total=store.count(flt), offset=offset, limit=limit)

    def set_tags(self, image_id: str, tags: Sequence[str]) -> dict[str, Any]:
        clean = sorted({check_tag(t) for t in tags})
        point_id = check_id(image_id)
        self._reader.stored_image(point_id)
        self._store().set_payload([point_id], {"tags": clean})
        self._sync_mirror()
        return self.get(point_id)

    def file_path(self, image_id: str) -> Path:
        """The first file of the image that exists on disk inside the library (served to
        users). Only the library is served: a path outside it (a folder the CLI indexed, a
        symlink leading out, a key holding '..') is never opened, whatever the store says."""
        image = self.get(image_id)
        for key in image.get("paths") or ():
            # The resolved path is both the one checked and the one served: a symlink
            # swapped after the check cannot redirect the read.
            path = self._keys.path(key).resolve()
            if path.is_relative_to(self._keys.root) and path.is_file():
                return path
        raise NotFound(
            f"The files of image {image_id} are not on disk inside the library; run a reconcile."
        )

    def delete(self, image_id: str) -> None:
        """Remove the point and move its files inside the library to the trash."""
        image = self._reader.stored_image(check_id(image_id))  # nothing moves while down
        trash = self._trash_dir / image["id"]
        for key in image.get("paths") or ():
            path = self._keys.path(key)
            if path.is_file() and self._keys.is_inside(path):
                trash.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), trash / path.name)
        self._store().delete([image["id"]])
        self._sync_mirror(removed=[image["id"]])

    def upload(
        self, files: Sequence[tuple[str, bytes]], tags: Sequence[str] = ()
    ) -> list[dict[str, Any]]:
        """Validate every file first (nothing is written if any is bad), then store each
        under the upload folder and index exactly those files."""
        from embedder.decode import decode_image
        from embedder.errors import DecodeError

        if not files:
            raise BadInput("No file was uploaded: send one or more multipart fields named 'files'.")
        tag_list = [check_tag(t) for t in tags]
        decoded = []
        for name, data in files:
            try:
                decoded.append(decode_image(data, name))
            except DecodeError as exc:
                raise UndecodableImage(str(exc)) from exc
        folder = self.upload_folder
        # The lock is held from before the first file is written: a reindex never sees a
        # file that is about to be rolled back, and a refused upload has written nothing.
        with self._indexing.writing(timeout=UPLOAD_WAIT_S):
            folder.mkdir(parents=True, exist_ok=True)
            created: list[Path] = []
            try:
                written = []
                for i, (name, data) in enumerate(files):
                    path, new = _write_unique(folder, safe_filename(name), data, decoded[i].format)
                    written.append(path)
                    created += [path] if new else []
                report = self._indexing.index_files(written, tags=tag_list)
                if report.failed:
                    raise UndecodableImage("; ".join(f"{k}: {r}" for k, r in report.failed))
            except BaseException:
                self._roll_back(created)
                raise
            ids = [point_id_for_sha256(hashlib.sha256(data).hexdigest()) for _, data in files]
            return [self.get(pid) for pid in dict.fromkeys(ids)]

    def _roll_back(self, created: Sequence[Path]) -> None:
        """Remove the files this upload wrote, and any claim on them already stored."""
        for path in created:
            path.unlink(missing_ok=True)
        if not created:
            return
        try:
            self._indexing.unindex_files(created)
        except Exception as exc:  # the store is down: the next reconcile drops the claims
            log.warning("could not drop the claims of a failed upload: %s", exc)

    def sweep_stale_uploads(self, older_than_s: float = STALE_TEMP_S) -> int:
        """Delete temporary files left by uploads that a crash cut short; returns how many."""
        folder = self.upload_folder
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


def check_tag(tag: str) -> str:
    tag = str(tag).strip()
    if not tag or len(tag) > 64 or any(c in tag for c in ",\n\r\t"):
        raise BadInput(f"A tag must be 1 to 64 characters with no comma or newline; got {tag!r}.")
    return tag


def parse_tags(text: str | None) -> list[str]:
    return [check_tag(t) for t in (text or "").split(",") if t.strip()]


def safe_filename(name: str) -> str:
    """A filename that cannot escape the upload folder or upset a filesystem."""
    base = unicodedata.normalize("NFKC", name.replace("\\", "/").rsplit("/", 1)[-1])
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")[:100] or "image"
    suffix = _UNSAFE.sub("", suffix)[:10].lower()
    return f"{stem}.{suffix}" if suffix else stem


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
    # A crash never leaves half an image behind; a leftover temporary file is swept.
    atomic_write(target, data, prefix=TEMP_PREFIX)
    return target, True
