"""Thumbnails: a WebP of about 256 px, made on first request and cached under data_dir/thumbs.

An image id is derived from the content's SHA-256, so a cached thumbnail can never go stale:
new content is a new id. That also lets browsers cache them for good (``immutable``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from common.atomic import atomic_write
from engine.errors import UndecodableImage, library_file

THUMB_SIZE = 256
QUALITY = 80


class Thumbnails:
    def __init__(
        self,
        folder: Path,
        image: Callable[[str], dict[str, Any]],
        file_of: Callable[[str], Path],
    ) -> None:
        self._folder = folder
        self._image = image  # validates an id and that it exists
        self._file_of = file_of

    def path(self, image_id: str) -> Path:
        """The cached thumbnail of ``image_id``, made now if missing (blocking)."""
        image_id = self._image(image_id)["id"]
        target = self._folder / image_id[:2] / f"{image_id}.webp"
        if target.is_file():
            return target
        from embedder.decode import decode_image
        from embedder.errors import DecodeError

        source = self._file_of(image_id)
        with library_file(image_id):
            try:
                image = decode_image(source, source.name).image
            except DecodeError as exc:
                raise UndecodableImage(str(exc)) from exc
        image.thumbnail((THUMB_SIZE, THUMB_SIZE))
        target.parent.mkdir(parents=True, exist_ok=True)
        # Two requests racing for one thumbnail both succeed, and a reader never sees half a
        # file. Not fsynced: a thumbnail lost in a crash is made again.
        atomic_write(
            target,
            lambda fh: image.save(fh, "WEBP", quality=QUALITY, method=4),
            prefix=".thumb-",
            durable=False,
        )
        return target
