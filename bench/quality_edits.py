"""The edits that turn a source photo into a query (an "edited copy") for bench/quality.py.

Each edit is deterministic given its ``numpy.random.Generator``: the benchmark seeds one per
(source, edit), so a rebuild makes the same queries on any machine. The list covers what the
issue asks for and what copies of a design look like in practice: crops down to 40% of the
area, rotation and perspective, heavy JPEG, blur and noise, colour shift and greyscale, a text
and logo overlay, a flip, a thumbnail, and combinations of these.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from tests.edits import colour_shift, crop_keep, jpeg

Edit = Callable[[Image.Image, np.random.Generator], Image.Image]


def crop_at(img: Image.Image, fraction: float, rng: np.random.Generator) -> Image.Image:
    """Keep ``fraction`` of the area (same aspect ratio) at a random position."""
    scale = fraction**0.5
    w, h = img.size
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def rotate(
    img: Image.Image, rng: np.random.Generator, lo: float = 8, hi: float = 20
) -> Image.Image:
    """Rotate by lo..hi degrees either way, keeping the size: the corners fill with black,
    as a scanned or re-photographed print would show."""
    angle = float(rng.uniform(lo, hi)) * (1 if rng.random() < 0.5 else -1)
    return img.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=(0, 0, 0))


def _perspective_coeffs(
    src: list[tuple[float, float]], dst: list[tuple[float, float]]
) -> list[float]:
    # PIL's PERSPECTIVE maps output (x, y) to input ((ax+by+c)/(gx+hy+1), (dx+ey+f)/(gx+hy+1));
    # four point pairs give the eight unknowns.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    return [float(c) for c in np.linalg.solve(np.asarray(rows), np.asarray(rhs))]


def perspective(img: Image.Image, rng: np.random.Generator, strength: float = 0.12) -> Image.Image:
    """Move each corner inwards by up to ``strength`` of the size: a photo taken at an angle."""
    w, h = img.size
    corners = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)]
    signs = [(1, 1), (-1, 1), (-1, -1), (1, -1)]
    moved = [
        (x + sx * rng.uniform(0, strength) * w, y + sy * rng.uniform(0, strength) * h)
        for (x, y), (sx, sy) in zip(corners, signs, strict=True)
    ]
    coeffs = _perspective_coeffs(corners, moved)
    return img.transform(
        img.size, Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=(0, 0, 0)
    )


def blur(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    # Radius relative to the image, so a 1024 px source and its thumbnail blur alike.
    radius = min(img.size) * float(rng.uniform(0.006, 0.01))
    return img.filter(ImageFilter.GaussianBlur(radius))


def noise(img: Image.Image, rng: np.random.Generator, sigma: float = 25.0) -> Image.Image:
    arr = np.asarray(img, dtype=np.float32)
    noisy = arr + rng.normal(0.0, sigma, arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def hue_shift(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Rotate the hue by 25..60 degrees either way and boost saturation: a recoloured variant,
    the edit that hurts colour histograms most."""
    hsv = np.asarray(img.convert("HSV"), dtype=np.uint8).copy()
    turn = int(rng.integers(18, 43)) * (1 if rng.random() < 0.5 else -1)  # of 256 = 25-60 deg
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + turn).astype(np.uint8)  # hue wraps around
    shifted = Image.fromarray(hsv, "HSV").convert("RGB")
    return colour_shift(shifted, saturation=1.3, brightness=1.05)


def greyscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.grayscale(img).convert("RGB")


def overlay(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A caption banner (PIL's default font) and a simple logo in a corner, as on a
    watermarked preview or a reposted picture."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    size = max(12, h // 11)
    font = ImageFont.load_default(size=size)
    text = ["SAMPLE", "© STUDIO", "DRAFT 2", "NOT FOR SALE"][int(rng.integers(0, 4))]
    y = int(h * rng.uniform(0.55, 0.8))
    draw.rectangle((0, y - size // 4, w, y + size + size // 4), fill=(20, 20, 20))
    draw.text((w // 20, y), text, fill=(255, 255, 255), font=font)
    # Logo: a ring and a triangle, in a corner chosen per image.
    r = max(8, min(w, h) // 9)
    cx = r + w // 30 if rng.random() < 0.5 else w - r - w // 30
    cy = r + h // 30
    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=max(2, r // 4))
    tri = [(cx, cy - r // 2), (cx - r // 2, cy + r // 3), (cx + r // 2, cy + r // 3)]
    draw.polygon(tri, fill=colour)
    return out


def flip(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(img)


def thumbnail(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A 200 px preview saved at JPEG 50, as a chat app or a web page would serve it."""
    small = img.copy()
    small.thumbnail((200, 200), Image.Resampling.BICUBIC)
    return jpeg(small, 50)


# Name -> edit, in the order queries are made. Every source gets all of them.
EDITS: dict[str, Edit] = {
    "crop40": lambda im, rng: crop_at(im, 0.4, rng),
    "crop60": lambda im, rng: crop_keep(im, 0.6, ["tl", "br"][int(rng.integers(0, 2))]),
    "rotate": rotate,
    "perspective": perspective,
    "jpeg10": lambda im, rng: jpeg(im, 10),
    "blur": blur,
    "noise": noise,
    "hue": hue_shift,
    "grey": greyscale,
    "overlay": overlay,
    "flip": flip,
    "thumb": thumbnail,
    "crop50+hue+jpeg30": lambda im, rng: jpeg(hue_shift(crop_at(im, 0.5, rng), rng), 30),
    "rot5+grey+overlay": lambda im, rng: overlay(greyscale(rotate(im, rng, 4, 6), rng), rng),
    "flip+crop70+blur+noise": lambda im, rng: noise(
        blur(crop_at(flip(im, rng), 0.7, rng), rng), rng, sigma=15.0
    ),
}


def edit_rng(key: str) -> np.random.Generator:
    """One independent stream per query, seeded by its name (source and edit): adding a
    photo or an edit changes no other query."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8]))
