"""Library management use cases: list, read, tag, delete and upload images."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BadInput, NotFound, UndecodableImage
from store.base import Filter, point_id_for_sha256

if TYPE_CHECKING:
    from engine.core import Engine

MAX_PAGE = 500
UPLOAD_FOLDER = "uploads"
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
    get_image(engine, image_id)
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
    """The first file of the image that exists on disk (served to users)."""
    image = get_image(engine, image_id)
    for key in image.get("paths") or ():
        path = engine.keys.path(key)
        if path.is_file():
            return path
    raise NotFound(f"The files of image {image_id} are no longer on disk; run a reconcile.")


def delete_image(engine: Engine, image_id: str) -> None:
    """Remove the point and move its files inside the library to the trash (data/trash),
    so a mistaken delete can be undone by hand and a reconcile does not re-add them."""
    image = get_image(engine, image_id)
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
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        _write_unique(folder, safe_filename(name), data, decoded[i].format)
        for i, (name, data) in enumerate(files)
    ]
    report = engine.index_files(written, tags=tag_list)
    if report.failed:
        raise UndecodableImage("; ".join(f"{k}: {r}" for k, r in report.failed))
    ids = [point_id_for_sha256(hashlib.sha256(data).hexdigest()) for _, data in files]
    return [get_image(engine, pid) for pid in dict.fromkeys(ids)]


_SUFFIX_FOR_FORMAT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}


def _write_unique(folder: Path, name: str, data: bytes, fmt: str) -> Path:
    stem, _, suffix = name.rpartition(".")
    if not stem:
        stem, suffix = name, ""
    # The suffix follows the content, so a PNG uploaded as 'x.jpg' is saved as 'x.png'.
    suffix = _SUFFIX_FOR_FORMAT.get(fmt, suffix or fmt.lower() or "img")
    target = folder / f"{stem}.{suffix}"
    n = 1
    while target.exists():
        if target.read_bytes() == data:
            return target  # the same upload again: index is a no-op for it
        n += 1
        target = folder / f"{stem}-{n}.{suffix}"
    # Write to a temporary file and rename, so a crash never leaves half an image behind.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
