"""The upload use case: images sent over HTTP join the library, one file at a time.

Every file gets its own answer, so one bad file never stops the others:

- ``added``: stored under the library's ``uploads`` folder and indexed;
- ``exists``: the same content is already in the library (nothing is written; the upload's
  tags, if any, are added to that image), with the existing image's id and paths;
- ``rejected``: not stored, with a sentence saying why.

Memory stays flat whatever the batch: a file is read, checked from its header (format,
size, the decompression-bomb guard; no pixels are decoded here), written and indexed before
the next one is read. The indexer decodes it once, to embed it; a file it cannot decode is
removed again and rejected. A file is stored with the suffix of its decoded format (a TIFF
named ``x.html`` is saved as ``x.tif``), so the library never holds a file whose name says
something other than what it is.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from common.atomic import atomic_write
from engine.errors import (
    STORE_DOWN,
    BadInput,
    LookalikeError,
    StoreUnavailableError,
    TooLarge,
    UndecodableImage,
)
from engine.library import SUFFIX_FOR_FORMAT, check_tag, safe_filename
from store.base import StoreUnavailable, point_id_for_sha256

if TYPE_CHECKING:
    from engine.folder import PathKeys
    from engine.indexing import Indexing
    from store.base import Store

log = logging.getLogger(__name__)

UPLOAD_FOLDER = "uploads"
# A request may carry several files (scripts do), but not without end: the page sends one
# per request, and a cap keeps one request's work (and its temporary files) bounded.
MAX_UPLOAD_FILES = 100
# An upload arriving during a reindex waits for it rather than being refused (the user's
# files would be lost); a reindex of a large library can outlast any HTTP client, though.
UPLOAD_WAIT_S = 60.0
TEMP_PREFIX = ".upload-"
# Temporary files of uploads cut short by a crash. Younger ones may belong to an upload in
# flight in another process sharing the library, so they are left alone.
STALE_TEMP_S = 15 * 60
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_READ_CHUNK = 1 << 20

Status = Literal["added", "exists", "rejected"]
# A file as the adapter hands it over: its name and its bytes, or an open binary file
# (the HTTP layer's spooled temporary file), read only when its turn comes.
Source = tuple[str, "bytes | IO[bytes]"]


@dataclass
class UploadOutcome:
    """What became of one uploaded file."""

    filename: str  # as the client named it (control characters removed)
    status: Status
    image: dict[str, Any] | None = None  # {"id": ..., **payload} when added or existing
    detail: str | None = None  # why it was rejected, as a sentence
    error: str | None = None  # the error code of a rejection
    http_status: int | None = None  # the status a rejection maps to (400, 413, 503)

    @property
    def id(self) -> str | None:
        return self.image["id"] if self.image else None

    @property
    def paths(self) -> list[str]:
        return list((self.image or {}).get("paths") or [])


@dataclass
class _Rejection(Exception):
    detail: str
    error: LookalikeError = field(default_factory=lambda: UndecodableImage(""))


class Uploads:
    def __init__(
        self,
        store: Callable[[], Store],
        indexing: Indexing,
        keys: PathKeys,
        library_dir: Path,
        image: Callable[[str], dict[str, Any]],
        sync_mirror: Callable[..., Any],
        max_file_bytes: int,
    ) -> None:
        self._store = store
        self._indexing = indexing
        self._keys = keys
        self._library_dir = library_dir
        self._image = image
        self._sync_mirror = sync_mirror
        self.max_file_bytes = max_file_bytes

    @property
    def folder(self) -> Path:
        return self._library_dir / UPLOAD_FOLDER

    def upload(self, files: Sequence[Source], tags: Sequence[str] = ()) -> list[UploadOutcome]:
        """Store and index each file in turn; one outcome per file, in order.

        Refused as a whole (nothing written) only for what concerns the request rather than
        a file: no file, too many files, a bad tag, the store down or the library busy."""
        if not files:
            raise BadInput("No file was uploaded: send one or more multipart fields named 'files'.")
        if len(files) > MAX_UPLOAD_FILES:
            raise BadInput(
                f"Send at most {MAX_UPLOAD_FILES} files per request; this one had {len(files)}."
            )
        tag_list = [check_tag(t) for t in tags]
        outcomes: list[UploadOutcome] = []
        # The lock is held from before the first file is written: a reindex never sees a
        # file that is about to be rolled back.
        with self._indexing.writing(timeout=UPLOAD_WAIT_S):
            for name, source in files:
                label = display_name(name)
                try:
                    outcomes.append(self._one(label, name, source, tag_list))
                except (StoreUnavailable, StoreUnavailableError):
                    if not any(o.status != "rejected" for o in outcomes):
                        raise  # nothing stored yet: the whole request is a 503
                    # Some files are in: say so (201), and which ones did not make it.
                    outcomes.append(_rejected(label, _Rejection(STORE_DOWN, _store_down())))
        return outcomes

    def _one(self, label: str, name: str, source: bytes | IO[bytes], tags: list[str]) -> Any:
        try:
            data = self._read(source)
            fmt = _check_image(data, label)
            point_id = point_id_for_sha256(hashlib.sha256(data).hexdigest())
            existing = self._existing(point_id)
            if existing is not None:
                return UploadOutcome(label, "exists", image=self._add_tags(existing, tags))
            self._store_file(name, data, fmt, tags)
            return UploadOutcome(label, "added", image=self._image(point_id))
        except _Rejection as rejection:
            return _rejected(label, rejection)

    def _read(self, source: bytes | IO[bytes]) -> bytes:
        limit = self.max_file_bytes
        if isinstance(source, bytes | bytearray):
            size = len(source)
        else:
            source.seek(0, 2)
            size = source.tell()
            source.seek(0)
        if size > limit:
            raise _Rejection(
                f"The file is {_mib(size)} MB; the limit is {_mib(limit)} MB per file "
                "(LOOKALIKE_MAX_UPLOAD_MB).",
                TooLarge(""),
            )
        if size == 0:
            raise _Rejection("The file is empty.")
        return bytes(source) if isinstance(source, bytes | bytearray) else source.read()

    def _existing(self, point_id: str) -> dict[str, Any] | None:
        """The stored image with this content, if one of its files is still in the library
        (otherwise the upload puts a file back, and the indexer attaches it to the point)."""
        records = self._store().retrieve([point_id])
        if not records:
            return None
        image = {"id": records[0].id, **records[0].payload}
        for key in image.get("paths") or ():
            path = self._keys.path(key)
            if self._keys.is_inside(path) and path.is_file():
                return image
        return None

    def _add_tags(self, image: dict[str, Any], tags: list[str]) -> dict[str, Any]:
        old = set(image.get("tags") or ())
        if not tags or set(tags) <= old:
            return image
        merged = sorted(old | set(tags))
        self._store().set_payload([image["id"]], {"tags": merged})
        self._sync_mirror()
        return {**image, "tags": merged}

    def _store_file(self, name: str, data: bytes, fmt: str, tags: list[str]) -> None:
        folder = self.folder
        made_folder = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        path, new = _write_unique(folder, safe_filename(name), data, SUFFIX_FOR_FORMAT[fmt])
        try:
            report = self._indexing.index_files([path], tags=tags)
        except BaseException:
            self._roll_back(path if new else None, folder if made_folder else None)
            raise
        if report.failed:
            self._roll_back(path if new else None, folder if made_folder else None)
            raise _Rejection(_sentence(_reason(report.failed[0][1])))

    def _roll_back(self, created: Path | None, folder: Path | None) -> None:
        """Remove the file this upload wrote, any claim on it already stored, and the
        upload folder if this upload made it: a rejected file leaves nothing behind."""
        if created is None:
            return
        created.unlink(missing_ok=True)
        try:
            self._indexing.unindex_files([created])
        except Exception as exc:  # the store is down: the next reconcile drops the claims
            log.warning("could not drop the claims of a failed upload: %s", exc)
        if folder is not None:
            with contextlib.suppress(OSError):  # not empty: another upload is using it
                folder.rmdir()

    def sweep_stale(self, older_than_s: float = STALE_TEMP_S) -> int:
        """Delete temporary files left by uploads that a crash cut short; returns how many."""
        folder = self.folder
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


def _check_image(data: bytes, label: str) -> str:
    """The decoded format, from the header alone: a supported image, not a bomb."""
    from embedder.decode import probe
    from embedder.errors import DecodeError

    try:
        _, _, fmt = probe(data, label)
    except DecodeError as exc:
        raise _Rejection(_sentence(exc.reason)) from None
    if fmt not in SUFFIX_FOR_FORMAT:  # Pillow only opens the supported ones; be sure
        raise _Rejection(f"Images in the {fmt} format are not supported.")
    return fmt


def _rejected(label: str, rejection: _Rejection) -> UploadOutcome:
    return UploadOutcome(
        label,
        "rejected",
        detail=rejection.detail,
        error=rejection.error.code,
        http_status=rejection.error.status,
    )


def _store_down() -> LookalikeError:
    return StoreUnavailableError(STORE_DOWN)


def _reason(text: str) -> str:
    """The indexer reports 'Cannot decode <key>: <reason>': keep the reason."""
    return text.split(": ", 1)[1] if text.startswith("Cannot decode ") and ": " in text else text


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f}".removesuffix(".0")


def display_name(name: str) -> str:
    """The client's file name as it may be shown back: no path, no control characters."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = _CONTROL.sub("", base).encode("utf-8", "replace").decode("utf-8")
    return base[:200] or "image"


def _write_unique(folder: Path, name: str, data: bytes, suffix: str) -> tuple[Path, bool]:
    """Write ``data`` under a free name with ``suffix`` (from the content, never the
    client); returns (path, whether a file was created)."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    target = folder / f"{stem}.{suffix}"
    n = 1
    while target.exists():
        if target.stat().st_size == len(data) and target.read_bytes() == data:
            return target, False  # the same upload again: index is a no-op for it
        n += 1
        target = folder / f"{stem}-{n}.{suffix}"
    # A crash never leaves half an image behind; a leftover temporary file is swept.
    atomic_write(target, data, prefix=TEMP_PREFIX)
    return target, True
