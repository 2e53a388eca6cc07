"""Thumbnails: a WebP of about 256 px, made on first request and cached under data_dir/thumbs.

An image id is derived from the content's SHA-256, so a cached thumbnail can never go stale:
new content is a new id. That also lets browsers cache them for good (``immutable``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import UndecodableImage
from engine.images import file_path, get_image

if TYPE_CHECKING:
    from engine.core import Engine

THUMB_SIZE = 256
QUALITY = 80


def thumbnail_path(engine: Engine, image_id: str) -> Path:
    """The cached thumbnail of ``image_id``, made now if missing (blocking: run off the loop)."""
    image_id = get_image(engine, image_id)["id"]  # validates the id and that it exists
    target = engine.settings.data_dir / "thumbs" / image_id[:2] / f"{image_id}.webp"
    if target.is_file():
        return target
    from embedder.decode import decode_image
    from embedder.errors import DecodeError

    source = file_path(engine, image_id)
    try:
        image = decode_image(source, source.name).image
    except DecodeError as exc:
        raise UndecodableImage(str(exc)) from exc
    image.thumbnail((THUMB_SIZE, THUMB_SIZE))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: two requests racing for one thumbnail both succeed, and a reader
    # never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".thumb-", suffix=".webp")
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, "WEBP", quality=QUALITY, method=4)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
