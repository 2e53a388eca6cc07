"""The dominant-colour palette kept in each image's payload: k-means in CIE Lab.

Lab, not RGB, because distances there follow what people see (a delta E of about 2 is
barely visible), which is also what the colour filter measures. numpy only, deterministic
(k-means++ from a fixed seed), on a 64 px copy of the image: a few milliseconds per image.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from embedder.hsv import PALETTE_SIDE, downscale

K = 5
ITERATIONS = 12
SEED = 0x5EED
# sRGB D65 -> XYZ, and the D65 white point, as in IEC 61966-2-1 and CIE 15.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPS, _KAPPA = 216 / 24389, 24389 / 27


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) sRGB values in 0..255 -> (..., 3) CIE Lab (D65), float64."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPS, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    return np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])],
        axis=-1,
    )


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """(..., 3) CIE Lab -> (..., 3) sRGB in 0..255 (float64, clipped)."""
    lab = np.asarray(lab, dtype=np.float64)
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f**3 > _EPS, f**3, (116 * f - 16) / _KAPPA) * _WHITE
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    c = np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(c * 255.0, 0.0, 255.0)


def hex_of(rgb: np.ndarray) -> str:
    r, g, b = (int(v) for v in np.rint(rgb))
    return f"#{r:02x}{g:02x}{b:02x}"


def dominant_colours(image: Image.Image, k: int = K) -> list[str]:
    """Up to ``k`` colours as '#rrggbb', the largest cluster first."""
    small = downscale(image if image.mode == "RGB" else image.convert("RGB"), PALETTE_SIDE)
    pixels = np.asarray(small, dtype=np.uint8).reshape(-1, 3)
    # Cluster colours weighted by their counts, after grouping those that share the top 5
    # bits of each channel (a cube 8 levels wide) into their mean colour:
    # a photo's ~2,400 distinct colours become ~600, which makes k-means ~4x faster, and a
    # flat graphic, whose few colours each sit alone in their cube, still gets its exact
    # colours back.
    q = (pixels >> 3).astype(np.int32)
    cubes, inverse, counts = np.unique(
        (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2], return_inverse=True, return_counts=True
    )
    sums = np.stack(
        [np.bincount(inverse, weights=pixels[:, c], minlength=len(cubes)) for c in range(3)],
        axis=1,
    )
    colours = sums / counts[:, None]
    lab = rgb_to_lab(colours)
    centres, sizes = _kmeans(lab, counts.astype(np.float64), min(k, len(colours)))
    out: list[str] = []
    for i in np.argsort(-sizes, kind="stable"):
        if sizes[i] <= 0:
            break
        colour = hex_of(lab_to_rgb(centres[i]))
        if colour not in out:
            out.append(colour)
    return out


def _kmeans(points: np.ndarray, weights: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted k-means (k-means++ seeding from a fixed seed). Returns (centres, sizes)."""
    rng = np.random.default_rng(SEED)
    centres = [points[int(np.argmax(weights))]]
    for _ in range(1, k):
        d2 = np.min(_d2(points, np.array(centres)), axis=1)
        p = d2 * weights
        if p.sum() <= 0:
            break
        centres.append(points[int(rng.choice(len(points), p=p / p.sum()))])
    c = np.array(centres)
    for _ in range(ITERATIONS):
        labels = np.argmin(_d2(points, c), axis=1)
        sizes = np.bincount(labels, weights=weights, minlength=len(c))
        sums = np.stack(
            [
                np.bincount(labels, weights=weights * points[:, j], minlength=len(c))
                for j in range(3)
            ],
            axis=1,
        )
        moved = np.where(sizes[:, None] > 0, sums / np.maximum(sizes, 1e-12)[:, None], c)
        if np.allclose(moved, c, atol=1e-3):
            c = moved
            break
        c = moved
    labels = np.argmin(_d2(points, c), axis=1)
    return c, np.bincount(labels, weights=weights, minlength=len(c))


def _d2(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Squared distances (n, k), by expansion: one matrix product instead of an (n, k, 3) array."""
    d2 = (points**2).sum(1)[:, None] - 2 * points @ centres.T + (centres**2).sum(1)[None]
    return np.maximum(d2, 0.0)


def delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference (Euclidean in Lab) between broadcastable Lab arrays."""
    return np.sqrt(((np.asarray(a) - np.asarray(b)) ** 2).sum(-1))
