"""Image bytes or a file -> one RGB PIL image, plus the facts the payload records.

numpy and Pillow only: this runs on decoding threads, many at once. Pillow releases the GIL
while it decodes and resizes, which is what lets decoding overlap inference.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from embedder.errors import DecodeError
from embedder.metadata import EmbeddedMetadata, read_metadata

# Pillow plugins tried when opening. A JPEG carrying extra pictures (most phone and camera
# photos) opens through the JPEG plugin and reports its format as 'MPO'.
SUPPORTED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
SUPPORTED_LABEL = "JPEG, PNG, WebP, GIF, BMP or TIFF"

# JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale for a fraction of the cost, as long as
# both sides stay at least this long. Every model resizes the shorter side to at most 256
# (then crops 224), so nothing is upscaled. 448 (twice that) left ~1 MP photos at full size:
# per 1 MP photo, decoding went from 2.6 to 1.8 ms and the CLIP + ResNet crops from 3.3 to
# 1.7 ms, vectors within cosine 0.999 of a full decode (bench/index_throughput.py).
DRAFT_MIN_SIDE = 256

# Other formats have no draft mode: a big one is reduced (box filter, by a whole factor)
# right after loading, before any colour conversion or copy, to no shorter side than this.
# An 80 MP PNG then costs one decode buffer instead of four full-size copies (the RGB
# conversion, the upright copy, ...), and the models see the same picture: each shrinks it
# to 224-256 px anyway.
REDUCE_MIN_SIDE = 512

_WHITE = (255, 255, 255, 255)
_ORIENTATION_TAG = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # these rotate by 90 degrees: width and height swap
_ALPHA_MODES = {"RGBA", "LA", "La", "RGBa", "PA"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


@dataclass(frozen=True)
class Decoded:
    image: Image.Image  # RGB, upright; may be smaller than width x height (JPEG draft)
    width: int  # original size in pixels, after EXIF orientation
    height: int
    format: str  # Pillow's format name: 'JPEG', 'PNG', 'WEBP', ...
    metadata: EmbeddedMetadata = field(default_factory=EmbeddedMetadata)  # when asked for


def decode_image(
    source: bytes | Path,
    name: str | None = None,
    *,
    draft: bool = True,
    metadata: bool = False,
    max_pixels: int | None = None,
) -> Decoded:
    """Decode ``source`` into an upright RGB image. Raises ``DecodeError`` naming the file.

    ``draft=False`` decodes at full resolution (for callers that crop in original pixel
    coordinates); otherwise JPEGs decode at a reduced scale and other formats are reduced
    by an integer factor right after decoding, before any copy is made. ``metadata=True``
    also reads the words embedded in the file (``embedder.metadata``), as indexing does.
    ``max_pixels`` lowers the decompression-bomb limit (query images use a lower one).
    """
    label = _label(source, name)
    with _open(source, label) as im:
        try:
            fmt = str(im.format)
            _refuse_bombs(im, label, max_pixels)
            width, height = im.size  # before draft mode shrinks it
            words = read_metadata(im, label) if metadata else EmbeddedMetadata()
            if draft and fmt in ("JPEG", "MPO"):
                im.draft("RGB", (DRAFT_MIN_SIDE, DRAFT_MIN_SIDE))
            im.load()
            orientation = _orientation(im)  # loaded: a PNG's late eXIf chunk is read too
            if orientation in _TRANSPOSED_ORIENTATIONS:
                width, height = height, width
            rgb = _upright(to_rgb(_reduced(im) if draft else im), orientation)
            if rgb is im:  # closing the file below would destroy it
                rgb = im.copy()
        except DecodeError:
            raise
        except Image.DecompressionBombError as exc:
            raise DecodeError(label, _TOO_LARGE) from exc
        # Pillow's parsers signal corrupt data with many unrelated types (OSError, SyntaxError,
        # EOFError, struct.error, ...): at this boundary every one of them means "bad file".
        except Exception as exc:
            raise DecodeError(label, f"the file is corrupt or truncated ({exc})") from exc
    return Decoded(image=rgb, width=width, height=height, format=fmt, metadata=words)


def probe(source: bytes | Path, name: str | None = None) -> tuple[int, int, str]:
    """(width, height, format) from the header only, without decoding pixels."""
    label = _label(source, name)
    with _open(source, label) as im:
        _refuse_bombs(im, label)
        width, height = _oriented_size(im)
        return width, height, str(im.format)


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited on white, as a viewer shows it."""
    if im.mode in _SIXTEEN_BIT_MODES or im.mode in ("I", "F"):
        im = _high_depth_to_l(im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    if im.mode != "RGB":
        return im.convert("RGB")
    return im


def _label(source: bytes | Path, name: str | None) -> str:
    if name:
        return name
    return str(source) if isinstance(source, Path) else "<uploaded bytes>"


def _open(source: bytes | Path, label: str) -> Image.Image:
    fp: IO[bytes] | Path
    if isinstance(source, bytes | bytearray | memoryview):
        if len(source) == 0:
            raise DecodeError(label, "the file is empty")
        fp = io.BytesIO(source)
    else:
        path = Path(source)
        try:
            if path.stat().st_size == 0:
                raise DecodeError(label, "the file is empty")
        except OSError as exc:
            raise DecodeError(label, f"the file cannot be read ({exc.strerror or exc})") from exc
        fp = path
    try:
        return Image.open(fp, formats=SUPPORTED_FORMATS)
    except UnidentifiedImageError as exc:
        raise DecodeError(label, f"not a supported image (expected {SUPPORTED_LABEL})") from exc
    except Image.DecompressionBombError as exc:
        raise DecodeError(label, _TOO_LARGE) from exc
    except OSError as exc:
        raise DecodeError(label, f"the file cannot be read ({exc})") from exc
    except Exception as exc:  # a header so broken that identification itself crashes
        raise DecodeError(label, f"the file is corrupt ({exc})") from exc


# Pillow's own words ("could be decompression bomb DOS attack") are for programmers.
_TOO_LARGE = "the image is too large to decode safely: it has far too many pixels"


def _refuse_bombs(im: Image.Image, label: str, max_pixels: int | None = None) -> None:
    # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that. A warning filter would be
    # process-global and not thread-safe, so the same limit is enforced here instead.
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    pixels = im.size[0] * im.size[1]
    if limit is not None and pixels > limit:
        raise DecodeError(
            label,
            f"the image is too large to decode safely: {im.size[0]} × {im.size[1]} pixels, "
            f"more than the {limit / 1e6:.3g} megapixels a file may have",
        )


def _oriented_size(im: Image.Image) -> tuple[int, int]:
    width, height = im.size
    if im.format == "PNG" and "exif" not in im.info:
        # Pillow's PNG getexif() decodes every pixel to look for an eXIf chunk after the
        # image data (1-2 s at 80 MP): from the header alone, a PNG is as wide as it says.
        return width, height
    if _orientation(im) in _TRANSPOSED_ORIENTATIONS:
        return height, width
    return width, height


def _reduced(im: Image.Image) -> Image.Image:
    factor = min(im.size) // REDUCE_MIN_SIDE
    if factor < 2:
        return im
    try:
        return im.reduce(factor)
    except ValueError:  # a mode reduce does not take (palette, 1-bit): convert first
        return to_rgb(im).reduce(factor)


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(_ORIENTATION_TAG)
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1
    return value if isinstance(value, int) else 1


_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _upright(im: Image.Image, orientation: int) -> Image.Image:
    """As ``ImageOps.exif_transpose`` does, from an orientation read before any reduction
    (a reduced copy no longer carries a TIFF's tags), and without a copy when upright."""
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return im if method is None else im.transpose(method)


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    # Pillow's own I/I;16 -> L conversion clips at 255 instead of scaling, which turns any
    # 16-bit image white. Scale the value range to 8 bits ourselves.
    arr = np.asarray(im)
    if im.mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    elif im.mode == "I" and arr.max(initial=0) <= 255 and arr.min(initial=0) >= 0:
        scaled = arr  # 8-bit data that happens to sit in a 32-bit container
    else:
        scaled = arr.astype(np.float32) / 257.0  # 0..65535 -> 0..255
    out = np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8)
    return Image.fromarray(out)  # 2-D uint8 -> mode 'L'
