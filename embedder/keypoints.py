"""Image -> compact local features (keypoints + descriptors) for copy verification (issue 18).

The stored side (one record per indexed image) must stay under ``RECORD_BUDGET`` bytes, so
only some keypoints are kept: the strongest in each cell of a 4 x 4 grid in turn, so that a
crop of any quarter of the picture still holds its share. A keypoint costs 4 bytes of
float16 x, y in the *original* image's pixel space plus its descriptor: 64 bytes for the
default ``sift4`` (SIFT quantised to 4 bits in the square-root domain: 224 keypoints per
record), 128 for plain SIFT (115 per record), 32 for ORB (424), beside a 1 KB layout
thumbnail (``embedder.layout``: the evidence for copies too small for keypoints). The query
side has no bound: it keeps ``QUERY_KEYPOINTS``, because a copy inside a bigger picture
occupies part of it.

Detection runs on a greyscale copy whose longer side is at most ``max_side`` (SIFT doubles
it internally): its cost grows with the pixel count, and copies are judged by layout, not
by fine texture. Pictures smaller than ``min_side`` are enlarged first (a 64 px thumbnail
has too few pixels for the detectors' border and patch sizes). bench/verify_pick.py chose
the descriptor, the sizes and the contrast threshold; bench/RESULTS_verify.md has the
figures.

cv2 is imported inside the functions that need it, as torch is, so that a process which
never verifies (an Edge-only CLI start) does not pay for loading it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from embedder.decode import decode_image
from embedder.layout import THUMB_BYTES, thumb

Kind = Literal["sift", "sift4", "orb"]
KINDS: tuple[Kind, ...] = ("sift", "sift4", "orb")
DESCRIPTOR_BYTES: dict[str, int] = {"sift": 128, "sift4": 64, "orb": 32}
# sift4: each SIFT value v (0..~210) as a 4-bit level of sqrt(v / 160), two to a byte (the
# 0.5 % of values over 160 saturate). Half the bytes, so twice the keypoints per record, and
# matching in the square-root domain is RootSIFT's Hellinger distance, which matches better.
SIFT4_TOP = 160.0
XY_BYTES = 4  # two float16

RECORD_BUDGET = 16 * 1024  # bytes per stored image, header included (issue 18)
RECORD_HEADER = 64  # room kept for store.keypoints' header
DEFAULT_KIND: Kind = "sift4"
MAX_SIDE = 320  # longer side the detector sees (SIFT doubles it internally)
MIN_SIDE = 256  # shorter side below which the picture is enlarged before detection
QUERY_KEYPOINTS = 1000  # a query's features are never stored
QUERY_MAX_SIDE = 512  # a copy pasted at 30 % of a query still gets ~150 px (x2)
SIFT_CONTRAST = 0.02  # half OpenCV's default: more keypoints in flat, low-contrast photos
GRID = 4  # stored keypoints are spread over GRID x GRID cells
OVERSAMPLE = 4  # detect this many times the kept number, to choose from


def max_keypoints(kind: Kind, budget: int = RECORD_BUDGET) -> int:
    """How many keypoints of ``kind`` fit in one stored record, beside its layout
    thumbnail (``embedder.layout``)."""
    return (budget - RECORD_HEADER - THUMB_BYTES) // (DESCRIPTOR_BYTES[kind] + XY_BYTES)


@dataclass(frozen=True)
class Features:
    """Local features of one image. ``xy`` is in the pixel space of the image as decoded
    (upright, full size): ``width`` x ``height``. ``mirrored`` marks features taken from the
    left-right mirror of that image (their x runs from the right edge), which lets
    verification find mirrored copies; ``verify`` maps its polygons back."""

    kind: Kind
    width: int
    height: int
    xy: np.ndarray  # (n, 2) float32 (float16 when read from the store)
    descriptors: np.ndarray  # (n, 128) or (n, 32) uint8
    mirrored: bool = False
    thumb: np.ndarray | None = None  # the layout thumbnail (embedder.layout), uint8

    def __len__(self) -> int:
        return int(self.xy.shape[0])

    @property
    def nbytes(self) -> int:
        """Stored size without the header: float16 xy + uint8 descriptors + thumbnail."""
        size = len(self) * (XY_BYTES + DESCRIPTOR_BYTES[self.kind])
        return size + (0 if self.thumb is None else int(self.thumb.size))


def empty(kind: Kind, width: int, height: int) -> Features:
    return Features(
        kind,
        width,
        height,
        np.zeros((0, 2), np.float32),
        np.zeros((0, DESCRIPTOR_BYTES[kind]), np.uint8),
    )


def extract_bytes(
    source: bytes | Path, name: str | None = None, *, kind: Kind = DEFAULT_KIND
) -> Features:
    """Decode with the project's safe decoder (bomb guard, EXIF orientation, any mode to
    RGB) and extract the features to store. Raises ``DecodeError`` for a bad file, as
    embedding does; a good file without keypoints gives empty features."""
    # Draft decoding (what indexing does anyway) leaves the shorter side at >= 256 px, enough
    # for MAX_SIDE: index time can pass the image it already decoded to ``extract``.
    decoded = decode_image(source, name)
    return extract(decoded.image, kind=kind, size=(decoded.width, decoded.height))


def extract(
    image: Image.Image,
    *,
    kind: Kind = DEFAULT_KIND,
    limit: int | None = None,
    max_side: int = MAX_SIDE,
    min_side: int = MIN_SIDE,
    size: tuple[int, int] | None = None,
    mirrored: bool = False,
    spread: bool = True,
    contrast: float = SIFT_CONTRAST,
) -> Features:
    """Features of an upright, decoded image. ``limit`` keypoints at most (default: what
    fits in a stored record); ``size`` is the original size when ``image`` was decoded
    smaller; ``mirrored`` extracts from the left-right mirror (a query's second look)."""
    width, height = size or image.size
    limit = max_keypoints(kind) if limit is None else limit
    layout = None if mirrored else thumb(image)
    if min(image.size) < 8:
        return replace(empty(kind, width, height), mirrored=mirrored, thumb=layout)
    grey = image.convert("L")
    if mirrored:
        grey = grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    scale = _detect_scale(grey.size, max_side, min_side)
    if scale != 1.0:
        target = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    xy, desc = _detect(np.asarray(grey), kind, limit, spread, contrast)
    # Back to the original pixel space (not just the decoded one).
    xy[:, 0] *= width / grey.width
    xy[:, 1] *= height / grey.height
    return Features(kind, width, height, xy, desc, mirrored, layout)


def extract_query(
    image: Image.Image, *, kind: Kind = DEFAULT_KIND, size: tuple[int, int] | None = None
) -> tuple[Features, Features]:
    """A query's features as seen and mirrored, with more keypoints than a stored record.
    ``size``: the query's original size when ``image`` was decoded smaller (the polygons
    of a match are then in the original's pixel space)."""
    seen = extract(image, kind=kind, limit=QUERY_KEYPOINTS, max_side=QUERY_MAX_SIDE, size=size)
    if kind == "orb":  # BRIEF's test pattern has no mirror symmetry: describe it again
        kw = {"kind": kind, "limit": QUERY_KEYPOINTS, "max_side": QUERY_MAX_SIDE, "size": size}
        return seen, extract(image, mirrored=True, **kw)  # type: ignore[arg-type]
    return seen, mirror(seen)


# A SIFT descriptor is 4 x 4 cells (rows, columns in the keypoint's own frame) x 8 orientation
# bins. Mirroring the picture mirrors the keypoint's orientation (180 - angle) and, in its
# frame, turns the rows upside down and each gradient direction o into -o. Measured on
# skimage's astronaut: within 11 % (relative L2) of describing the mirrored picture again,
# about the noise between two detections, at no cost instead of a second SIFT pass.
_MIRROR_SIFT = np.arange(128).reshape(4, 4, 8)[::-1][:, :, (-np.arange(8)) % 8].reshape(-1)


def mirror(features: Features) -> Features:
    """The features of the left-right mirrored picture, from SIFT features without
    detecting again (x runs from the right edge; ``mirrored`` says so)."""
    if features.kind == "orb":
        raise ValueError("ORB features cannot be mirrored; extract(mirrored=True) instead")
    xy = np.array(features.xy, np.float32, copy=True)
    xy[:, 0] = features.width - xy[:, 0]
    if features.kind == "sift4":
        levels = np.rint(unpack_sift4(features.descriptors) * 15).astype(np.uint8)[:, _MIRROR_SIFT]
        desc = np.ascontiguousarray((levels[:, 0::2] << 4) | levels[:, 1::2])
    else:
        desc = np.ascontiguousarray(features.descriptors[:, _MIRROR_SIFT])
    return replace(features, xy=xy, descriptors=desc, mirrored=not features.mirrored)


def warm() -> None:
    """Import OpenCV and run one detection now (a server's start-up), so the first upload or
    search does not pay for it (0.2-1 s on a busy machine)."""
    grey = np.zeros((64, 64), np.uint8)
    grey[16:48, 16:48] = 255
    _detect(grey, DEFAULT_KIND, 8)


def _detect_scale(size: tuple[int, int], max_side: int, min_side: int) -> float:
    longer, shorter = max(size), min(size)
    if longer > max_side:
        return max_side / longer
    if shorter < min_side:
        # Enlarge a small picture, but never past max_side on its longer side.
        return min(min_side / shorter, max_side / longer)
    return 1.0


def _detect(
    grey: np.ndarray, kind: Kind, limit: int, spread: bool = True, contrast: float = 0.04
) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    # Detect several times more than kept, then keep an even spread (``_spread``).
    pool = limit * OVERSAMPLE if spread else limit
    detector: cv2.Feature2D
    if kind in ("sift", "sift4"):
        detector = cv2.SIFT.create(nfeatures=pool, contrastThreshold=contrast)
    else:
        detector = cv2.ORB.create(nfeatures=pool, fastThreshold=10)
    points, desc = detector.detectAndCompute(grey, None)
    n_bytes = DESCRIPTOR_BYTES[kind]
    if desc is None or len(points) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, n_bytes), np.uint8)
    xy = np.asarray([p.pt for p in points], np.float32).reshape(-1, 2)
    response = np.asarray([p.response for p in points], np.float32)
    if spread:
        keep = _spread(xy, response, grey.shape[1], grey.shape[0], limit)
    else:
        keep = np.argsort(-response, kind="stable")[:limit]
    if kind == "sift4":
        return xy[keep].copy(), pack_sift4(desc[keep])
    # SIFT descriptors are integers in 0..255 already (OpenCV scales and saturates them).
    d = np.clip(np.rint(desc[keep]), 0, 255).astype(np.uint8)
    return xy[keep].copy(), np.ascontiguousarray(d.reshape(-1, n_bytes))


def pack_sift4(desc: np.ndarray) -> np.ndarray:
    """(n, 128) SIFT values -> (n, 64) bytes of two 4-bit sqrt levels."""
    levels = np.rint(np.sqrt(np.clip(desc, 0, SIFT4_TOP) / SIFT4_TOP) * 15).astype(np.uint8)
    return np.ascontiguousarray((levels[:, 0::2] << 4) | levels[:, 1::2])


def unpack_sift4(packed: np.ndarray) -> np.ndarray:
    """(n, 64) bytes -> (n, 128) float32 in the square-root domain (level / 15)."""
    p = np.asarray(packed, np.uint8)
    out = np.empty((p.shape[0], p.shape[1] * 2), np.float32)
    out[:, 0::2] = p >> 4
    out[:, 1::2] = p & 15
    return out / 15.0


def _spread(
    xy: np.ndarray, response: np.ndarray, width: int, height: int, limit: int
) -> np.ndarray:
    """Indices of ``limit`` keypoints, taken round-robin over a GRID x GRID grid, strongest
    first in each cell. The strongest keypoints overall crowd into the busiest part of a
    picture; a crop of a quiet part would then find none of them. On bench/verify_pick.py's
    photos the two choices verified the same copies (crop inliers within 2)."""
    col = np.minimum((xy[:, 0] * GRID / max(width, 1)).astype(np.int64), GRID - 1)
    row = np.minimum((xy[:, 1] * GRID / max(height, 1)).astype(np.int64), GRID - 1)
    cell = row * GRID + col
    order = np.lexsort((-response, cell))  # by cell, strongest first within a cell
    sorted_cells = cell[order]
    starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank = np.arange(len(order)) - starts  # 0 for a cell's strongest, 1 for the next...
    pick = np.lexsort((-response[order], rank))[:limit]
    return order[pick]
