"""N JPEG files on disk made from the packaged photos (bench/photos.py), for benchmarks that
need more images than there are distinct photos: random crops (50-100 % of the area, any
aspect between 3:4 and 16:9) scaled so the longer side is 1024-2048 px where the photo is
that large (a typical archive photo; the small scikit-image ones stay smaller), saved at
quality 90. One in five files is an edited copy (tests/edits.py) of an earlier crop, which
gives a near-duplicate retrieval check. Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.photos import Photo, package_photos
from tests.edits import STANDARD_EDITS

LONG_SIDE = (1024, 2048)
EDITED_SHARE = 0.2


@dataclass
class Corpus:
    paths: list[Path]
    source_of: dict[Path, Path]  # edited copy -> the crop it was made from
    megapixels: float  # median


def photos(small: bool = False) -> list[Photo]:
    """The Debian wallpapers when installed (65 photos), else the PyPI ones (17); ``small``:
    only the PyPI ones (<= 1.4k px, quick to decode: for smoke tests)."""
    found = [] if small else package_photos(debian=True)
    return found if len(found) > 17 else package_photos(debian=False)


def make(out_dir: Path, n: int, seed: int = 0, *, small: bool = False) -> Corpus:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = photos(small)
    loaded: dict[int, Image.Image] = {}
    paths: list[Path] = []
    source_of: dict[Path, Path] = {}
    crops: list[tuple[Path, Image.Image]] = []
    edits = list(STANDARD_EDITS.items())
    pixels = []
    for i in range(n):
        path = out_dir / f"img{seed:02d}-{i:05d}.jpg"
        if crops and rng.random() < EDITED_SHARE:
            origin, image = crops[int(rng.integers(len(crops)))]
            _, edit = edits[int(rng.integers(len(edits)))]
            out = edit(image).convert("RGB")
            source_of[path] = origin
        else:
            k = int(rng.integers(len(sources)))
            if k not in loaded:
                if len(loaded) >= 8:  # decoded wallpapers reach 60 MB each
                    loaded.pop(next(iter(loaded)))
                loaded[k] = sources[k].load()
            out = _crop(loaded[k], rng)
            crops.append((path, out))
            crops = crops[-200:]  # edits pick from recent crops: bounded memory
        out.save(path, "JPEG", quality=90)
        paths.append(path)
        pixels.append(out.width * out.height)
    return Corpus(paths, source_of, float(np.median(pixels)) / 1e6)


def _crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = img.size
    area = rng.uniform(0.5, 1.0) * w * h
    aspect = rng.uniform(0.75, 16 / 9)
    cw = int(min(w, round((area * aspect) ** 0.5)))
    ch = int(min(h, round(area / max(cw, 1))))
    x = int(rng.integers(0, w - cw + 1))
    y = int(rng.integers(0, h - ch + 1))
    crop = img.crop((x, y, x + cw, y + ch))
    target = rng.uniform(*LONG_SIDE)
    scale = min(1.0, target / max(crop.size))
    if scale < 1.0:
        size = (max(1, round(crop.width * scale)), max(1, round(crop.height * scale)))
        crop = crop.resize(size, Image.Resampling.LANCZOS)
    return crop
