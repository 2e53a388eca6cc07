"""Colour: the HSV histogram model (the palette kept in the payload is embedder.palette).

numpy and Pillow only. Both work on a small copy of the image: colour statistics do not need
more than a few thousand pixels, and Pillow's box filter averages the rest in C.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from PIL import Image

from embedder.base import Model, WeightsInfo, l2_normalise

HSV_SIDE = 128
PALETTE_SIDE = 64
BINS = 8  # per channel: 8 x 8 x 8 = 512 cells
_SHIFT = 5  # 256 levels // 8 bins = 32 = 2**5


def downscale(image: Image.Image, max_side: int) -> Image.Image:
    """A copy whose longer side is at most ``max_side`` (the image itself if already small)."""
    w, h = image.size
    if max(w, h) <= max_side:
        return image
    scale = max_side / max(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    # reducing_gap first shrinks by an integer factor, which is much faster on big images.
    return image.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def hsv_histogram(image: Image.Image) -> np.ndarray:
    """8x8x8 HSV histogram, square-rooted (Hellinger) and L2-normalised, float32 (512,)."""
    small = downscale(image if image.mode == "RGB" else image.convert("RGB"), HSV_SIDE)
    hsv = np.asarray(small.convert("HSV"), dtype=np.uint8)
    q = (hsv >> _SHIFT).astype(np.intp)
    cells = (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]
    counts = np.bincount(cells.ravel(), minlength=BINS**3).astype(np.float64)
    # sqrt of a distribution has unit L2 norm, so the inner product of two such vectors is the
    # Bhattacharyya coefficient: less dominated by one large flat area than raw counts are.
    hellinger = np.sqrt(counts / max(counts.sum(), 1.0))
    return l2_normalise(hellinger)


class HsvHistogram(Model):
    role: ClassVar[str] = "hsv"
    name = "hsv-8x8x8"
    dim = BINS**3

    def __init__(self) -> None:
        self.weights = WeightsInfo(source="none")

    def load(self) -> None:
        """Nothing to load: the histogram has no weights."""

    def preprocess(self, image: Image.Image) -> np.ndarray:
        # The whole model runs here, on the decoding threads; ``embed`` only stacks.
        return hsv_histogram(image)

    def embed(self, batch: list[np.ndarray]) -> np.ndarray:
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalise(np.stack(batch))
