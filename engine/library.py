"""The library use case: list, read, tag and delete images, and find their files.

Uploads live in ``engine.uploads``. A delete moves the files to ``data_dir/trash`` (a
mistaken delete can be undone by hand, and a reconcile does not re-add them) and removes
the point and its mirror row. A file is served with the media type of its decoded format,
never one guessed from its name, and only from a path with an image suffix.
"""

from __future__ import annotations

import logging
import re
import shutil
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BadInput, Conflict, NotFound
from engine.folder import IMAGE_SUFFIXES
from engine.search import check_id
from store.base import Filter

if TYPE_CHECKING:
    from engine.folder import PathKeys
    from engine.read_policy import ReadPolicy
    from store.base import Store

log = logging.getLogger(__name__)

MAX_PAGE = 500
# The media type a file is served with, by its decoded format (Pillow's name, kept in the
# payload): a file's name never decides how a browser treats it.
MEDIA_TYPE_FOR_FORMAT = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
# The suffix a file is stored and served with, from its decoded format: never the client's.
# MPO is a JPEG carrying extra pictures (most phone photos).
SUFFIX_FOR_FORMAT = {
    "JPEG": "jpg",
    "MPO": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tif",
}
# Letters and digits of any script stay (a studio names files in its own language); what
# a shell or a filesystem could read as syntax does not.
_UNSAFE = re.compile(r"[^\w.-]+")
_SUFFIX_UNSAFE = re.compile(r"[^A-Za-z0-9]+")
# A tag: 1 to 64 characters, none of them a comma or a control character (a line break, a
# tab, NUL): api.schemas.Tag states the same for the API's document.
MAX_TAG_LENGTH = 64
MAX_TAGS = 100
_NOT_IN_TAG = re.compile(r"[,\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ImageFile:
    """An image's file as it may be served."""

    path: Path
    media_type: str  # image/*, from the decoded format
    download_name: str  # a safe name whose suffix matches the format


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
        keys: PathKeys,
        trash_dir: Path,
        sync_mirror: Callable[..., Any],
        unindex: Callable[[Sequence[Path]], Any] | None = None,
    ) -> None:
        self._unindex = unindex  # drops files' claims from their points (engine.indexing)
        self._store = store
        self._reader = reader
        self._keys = keys
        self._trash_dir = trash_dir
        self._sync_mirror = sync_mirror

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
        clean = check_tags(tags)
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
            # Only a name that says "image": a file indexed under another suffix (an old
            # upload named 'x.html') is never handed to a browser.
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if path.is_relative_to(self._keys.root) and path.is_file():
                return path
        raise NotFound(
            f"The files of image {image_id} are not on disk inside the library; run a reconcile."
        )

    def file(self, image_id: str) -> ImageFile:
        """The file to serve for an image: its path, the media type of its decoded format
        and a safe download name with that format's suffix."""
        path = self.file_path(image_id)
        fmt = str(self.get(image_id).get("format") or "") or _probe_format(path)
        media_type = MEDIA_TYPE_FOR_FORMAT.get(fmt.upper())
        if media_type is None:
            raise NotFound(f"The file of image {image_id} is not an image this library serves.")
        stem = safe_filename(path.stem).rsplit(".", 1)[0]
        return ImageFile(path, media_type, f"{stem}.{SUFFIX_FOR_FORMAT[fmt.upper()]}")

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

    def remove_file(self, image_id: str, key: str) -> dict[str, Any]:
        """One of an image's identical files moves to the trash; the image keeps the
        others (an exact copy cleared up). The last file on disk is not removed this way:
        that is deleting the image."""
        image = self._reader.stored_image(check_id(image_id))
        paths = list(image.get("paths") or ())
        if key not in paths:
            raise NotFound(f"Image {image['id']} has no file {key!r}; its files: {paths}.")
        path = self._keys.path(key)
        if not self._keys.is_inside(path):
            raise BadInput(
                f"{key!r} is outside the library folder: only the library's own files are removed."
            )
        others = [p for p in paths if p != key and self._keys.path(p).is_file()]
        if not others:
            raise Conflict(
                f"{key!r} is the only file of image {image['id']} on disk: delete the image "
                "instead (or run a reconcile if its other files were moved)."
            )
        if self._unindex is None:
            raise Conflict("Files cannot be removed one by one here.")
        if path.is_file() or path.is_symlink():
            trash = self._trash_dir / image["id"]
            trash.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), trash / path.name)
        self._unindex([path])  # the point lists the files left, and the mirror follows
        return self.get(image["id"])


def check_tag(tag: str) -> str:
    tag = str(tag).strip()
    if not tag or len(tag) > MAX_TAG_LENGTH or _NOT_IN_TAG.search(tag):
        shown = tag if len(tag) <= 40 else f"{tag[:40]}…"
        raise BadInput(
            f"A tag must be 1 to {MAX_TAG_LENGTH} characters with no comma, line break or "
            f"other control character; got {shown!r}."
        )
    return tag


def check_tags(tags: Sequence[str]) -> list[str]:
    """Each tag checked, duplicates dropped, sorted; at most MAX_TAGS of them."""
    clean = sorted({check_tag(t) for t in tags})
    if len(clean) > MAX_TAGS:
        raise BadInput(f"An image can have at most {MAX_TAGS} tags; got {len(clean)}.")
    return clean


def parse_tags(text: str | None, *, option: str = "tags") -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c']. Text that names no tag at all (',,,' or blanks) is a
    mistake, not a request for no tags: it is refused rather than silently ignored."""
    if text is None or text == "":
        return []
    tags = [t for t in text.split(",") if t.strip()]
    if not tags:
        raise BadInput(f"{option} names no tag: give tags separated by commas, like 'ring,gold'.")
    return check_tags(tags)


def safe_filename(name: str) -> str:
    """A filename that cannot escape the upload folder or upset a filesystem."""
    base = unicodedata.normalize("NFKC", name.replace("\\", "/").rsplit("/", 1)[-1])
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _UNSAFE.sub("_", stem).strip("._-")[:100]
    while len(stem.encode()) > 200:  # a file name is at most 255 bytes on most filesystems
        stem = stem[:-1]
    stem = stem or "image"
    suffix = _SUFFIX_UNSAFE.sub("", suffix)[:10].lower()
    return f"{stem}.{suffix}" if suffix else stem


def _probe_format(path: Path) -> str:
    """The format from the file's header, for a payload that lacks it (an old index)."""
    from embedder.decode import probe
    from embedder.errors import DecodeError

    try:
        return probe(path)[2]
    except DecodeError:
        return ""
