"""Region search: what index-time crops gain for small-detail queries, and what they cost.

Index-time crops (an option considered for issue 6, section 3) would embed a few crops per
image besides the whole image (4 quadrants + the centre, each a quarter of the area), so
that a query showing only a detail can match the crop that contains it; a crop hit counts
for its parent image, at the best score. This script measures that design without touching
the store: photos are embedded both ways with the real embedder, detail queries (random
crops of 4-10 % of a photo's area, not aligned with the quadrants) are searched exactly
(brute force, fused as the mirror does), and it prints recall@1/@10 both ways with the
cost in embedding time and vector memory.

    python -m bench.region [--photos 40] [--queries 3] [--models effnet-lite0+hsv]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from PIL import Image

from bench.photos import package_photos

SEED = 7


def crops(img: Image.Image) -> list[Image.Image]:
    """The four quadrants and the centre, each half the width and height."""
    w, h = img.size
    hw, hh = w // 2, h // 2
    boxes = [(0, 0, hw, hh), (hw, 0, w, hh), (0, hh, hw, h), (hw, hh, w, h)]
    boxes.append((w // 4, h // 4, w // 4 + hw, h // 4 + hh))
    return [img.crop(b) for b in boxes]


def detail(img: Image.Image, rng: np.random.Generator, lo: float, hi: float) -> Image.Image:
    """A random crop of ``lo``-``hi`` of the area, at a random place."""
    w, h = img.size
    area = rng.uniform(lo, hi)
    aspect = rng.uniform(0.75, 1.33)
    cw = int(min(w, np.sqrt(area * w * h * aspect)))
    ch = int(min(h, area * w * h / max(cw, 1)))
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return img.crop((x, y, x + cw, y + ch))


def fused(vectors: dict[str, np.ndarray]) -> np.ndarray:
    """Equal weights: concatenate unit blocks, scaled so one dot product is the mean cosine."""
    blocks = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in vectors.values()]
    return np.concatenate(blocks, axis=1) / np.sqrt(len(blocks))


def recall(scores: np.ndarray, owner: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Recall@k with rows of ``scores`` over index entries owned by ``owner`` (max per image)."""
    n_images = int(owner.max()) + 1
    per_image = np.full((scores.shape[0], n_images), -np.inf)
    for col in range(scores.shape[1]):
        np.maximum(per_image[:, owner[col]], scores[:, col], out=per_image[:, owner[col]])
    top = np.argsort(-per_image, axis=1)[:, :k]
    return float(np.mean([t in row for t, row in zip(truth, top, strict=True)]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--photos", type=int, default=200)
    p.add_argument("--queries", type=int, default=3, help="detail queries per photo")
    p.add_argument("--area", type=float, nargs=2, default=(0.04, 0.10), help="detail area range")
    args = p.parse_args(argv)

    from embedder.pipeline import Embedder
    from engine.settings import Settings

    settings = Settings(clip_weights="off", cnn="effnet-lite0", cnn_weights="imagenet")
    embedder = Embedder(settings.model_config_for_embedder())
    embedder.load()
    photos = [ph.load().convert("RGB") for ph in package_photos(min_side=256)[: args.photos]]
    for img in photos:
        img.thumbnail((640, 640))
    rng = np.random.default_rng(SEED)
    lo, hi = args.area
    queries = [
        (i, detail(img, rng, lo, hi)) for i, img in enumerate(photos) for _ in range(args.queries)
    ]
    truth = np.array([i for i, _ in queries])

    embedder.embed_images(photos[:8])  # warm-up: the first batches pay for lazy set-up
    t0 = time.perf_counter()
    whole = fused(embedder.embed_images(photos))
    t_whole = time.perf_counter() - t0
    parts = [c for img in photos for c in crops(img)]
    t0 = time.perf_counter()
    crop_vecs = fused(embedder.embed_images(parts))
    t_crops = time.perf_counter() - t0
    q = fused(embedder.embed_images([img for _, img in queries]))
    embedder.close()

    owner_whole = np.arange(len(photos))
    with_crops = np.concatenate([whole, crop_vecs])
    owner_crops = np.concatenate([owner_whole, np.repeat(owner_whole, 5)])
    s_whole, s_crops = q @ whole.T, q @ with_crops.T
    result = {
        "photos": len(photos),
        "detail_queries": len(queries),
        "detail_area": [lo, hi],
        "models": [m.name for m in embedder.models],
        "whole_only": {
            "recall@1": recall(s_whole, owner_whole, truth, 1),
            "recall@10": recall(s_whole, owner_whole, truth, 10),
        },
        "with_crops": {
            "recall@1": recall(s_crops, owner_crops, truth, 1),
            "recall@10": recall(s_crops, owner_crops, truth, 10),
        },
        "cost": {
            "embed_s_whole": round(t_whole, 3),
            "embed_s_crops_extra": round(t_crops, 3),
            "index_time_factor": round((t_whole + t_crops) / t_whole, 2),
            "vectors_per_image": 6,
            "memory_factor": round(with_crops.nbytes / whole.nbytes, 2),
            "bytes_per_image_whole": int(whole.nbytes // len(photos)),
        },
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
