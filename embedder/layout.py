"""Layout thumbnails: the evidence for a copy too small for local features (issue 18).

A 64 px blurred thumbnail keeps 5-170 SIFT keypoints, and only about half of such copies
verify geometrically (bench/RESULTS_copy_detection.md). What survives shrinking and blur is
the picture's layout: where it is light and dark. So every stored record also keeps a
``SIDE`` x ``SIDE`` greyscale thumbnail (1 KB, ``store.keypoints``), and a small query is
compared with its candidates' thumbnails by normalised cross-correlation (NCC: brightness
and contrast changes cancel out).

Layout alone is weak evidence: measured on the copy detection bench (5,060 images),

- a thumbnail query and its source: NCC 0.86-0.998 (30 of 30); the best other candidate
  in the top 100: at most 0.74;
- but two *different* Fashion-MNIST products (a silhouette on a plain background, what a
  catalogue looks like) reach 0.93 at the median and up to 0.99.

So a candidate counts as the same picture only when its correlation is high (``MIN_NCC``),
stands clear of every other candidate's (``MARGIN``: the look-alikes of a catalogue sit
together, a true copy stands apart), and it has the query's shape (``ASPECT``); the check
runs only for queries too small for local features (``SMALL``). Its confidence stays under
0.5, so the verdict reads "likely a copy", never a proof.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIDE = 32  # thumbnail side: 1,024 bytes a record
THUMB_BYTES = SIDE * SIDE
SMALL = 256  # a query whose longer side is at most this many pixels is a thumbnail
MIN_NCC = 0.85
MARGIN = 0.2  # above the next best candidate's correlation
ASPECT = 0.1  # width/height within 10 % (and a pixel of rounding) of the query's
FLAT = 2.0  # a thumbnail whose grey levels vary less than this (std) has no layout
MAX_CONFIDENCE = 0.45  # "likely a copy": below verification's 0.5
WHOLE_NCC = 0.9  # same_picture: the layouts correlate at least this much
WHOLE_BLOCK = 0.3  # ... and no 8 x 8 block differs by more (RMS, in contrast units)


def thumb(image: Image.Image) -> np.ndarray:
    """The (SIDE * SIDE,) uint8 greyscale layout of an upright image (aspect squashed)."""
    grey = image.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX)
    return np.asarray(grey, dtype=np.uint8).reshape(-1).copy()


def is_small(width: int, height: int) -> bool:
    return max(width, height) <= SMALL


def _unit(pixels: np.ndarray) -> np.ndarray | None:
    x = np.asarray(pixels, dtype=np.float32).reshape(-1)
    if x.size != THUMB_BYTES:
        return None
    x = x - x.mean()
    std = float(np.sqrt(np.mean(x * x)))
    if std < FLAT:
        return None
    return x / (std * np.sqrt(x.size))


def same_shape(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two sizes have the same aspect ratio, allowing a pixel of rounding on the
    smaller picture's shorter side."""
    (aw, ah), (bw, bh) = a, b
    if min(aw, ah, bw, bh) <= 0:
        return False
    ra, rb = aw / ah, bw / bh
    slack = ASPECT + 1.0 / min(aw, ah, bw, bh)
    return abs(ra - rb) <= slack * max(ra, rb)


def correlations(query: np.ndarray, thumbs: list[np.ndarray | None]) -> np.ndarray:
    """NCC of the query's thumbnail with each candidate's; NaN where either has none (or
    is flat)."""
    out = np.full(len(thumbs), np.nan, dtype=np.float32)
    q = _unit(query)
    if q is None:
        return out
    for i, t in enumerate(thumbs):
        u = None if t is None else _unit(t)
        if u is not None:
            out[i] = float(q @ u)
    return out


def same_picture(query: np.ndarray, candidate: np.ndarray | None) -> bool:
    """Whether the query *is* the candidate picture as a whole (re-encoded, resized,
    recoloured), not a picture that also holds something else: their layouts correlate at
    WHOLE_NCC or more and no 8 x 8 block of the thumbnail differs by more than WHOLE_BLOCK
    (RMS, in units of the picture's contrast). A design pasted onto a library photo leaves
    the photo's correlation high (0.90 at the median on the copy bench, up to 0.996) but
    one block far off (0.19-2.0); JPEG at quality 25 stays under 0.08, colour changes
    under 0.41 for nine in ten."""
    q = _unit(query)
    c = None if candidate is None else _unit(candidate)
    if q is None or c is None or float(q @ c) < WHOLE_NCC:
        return False
    residual = (q - c).reshape(SIDE, SIDE) * SIDE  # per pixel, in units of the contrast
    b = SIDE // 4
    blocks = residual.reshape(4, b, 4, b).transpose(0, 2, 1, 3).reshape(16, -1)
    return float(np.sqrt((blocks**2).mean(axis=1)).max()) <= WHOLE_BLOCK


def distinct_match(ncc: np.ndarray) -> int | None:
    """The index of the one candidate whose layout matches, or None: its NCC is at least
    MIN_NCC and MARGIN above every other candidate's."""
    valid = np.where(np.isnan(ncc), -np.inf, ncc)
    if not len(valid):
        return None
    best = int(np.argmax(valid))
    if valid[best] < MIN_NCC:
        return None
    others = np.delete(valid, best)
    second = float(others.max()) if len(others) else -np.inf
    return best if valid[best] - second >= MARGIN else None


def confidence(ncc: float) -> float:
    """0..MAX_CONFIDENCE, rising from MIN_NCC to a perfect correlation."""
    share = (ncc - MIN_NCC) / (1.0 - MIN_NCC)
    return round(MAX_CONFIDENCE * float(np.clip(share, 0.0, 1.0)), 4)
