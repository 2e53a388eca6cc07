"""Does a query of two images find the original better than either image alone?

Each original photo gets two different hard edits (by default a 40 % crop, and a rotated,
greyscale copy with a caption and logo: ``bench/quality_edits.py``). The library holds the
originals and distractors (other photos and tiles cut from them). Every original is searched
for with edit A alone, edit B alone, and both together, combined by ``any`` and by ``all``
(``engine/multi_query.py``). AP is 1 / the rank of the original; the JSON has the mAP of each.

    python -m bench.multi_query [--originals 40] [--models effnet] [--no-debian]

Real weights only (EfficientNet-Lite0 ships its ImageNet weights; CLIP cannot be had offline).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.photos import package_photos
from bench.quality_edits import EDITS, edit_rng

EDIT_A = "crop40"
EDIT_B = "rot5+grey+overlay"
K = 100


def _jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=88)
    return buf.getvalue()


def _tiles(img: Image.Image) -> list[Image.Image]:
    w, h = img.size
    return [img.crop((x, y, x + w // 2, y + h // 2)) for x in (0, w // 2) for y in (0, h // 2)]


def build(root: Path, originals: int, debian: bool) -> tuple[dict[str, list[bytes]], int]:
    """The library under ``root``; returns {original name: [edit A, edit B]} and the number
    of distractors."""
    photos = package_photos(min_side=256, debian=debian)
    if len(photos) < originals + 4:
        raise SystemExit(f"only {len(photos)} photos found; ask for fewer --originals")
    library = root / "library"
    library.mkdir(parents=True)
    queries: dict[str, list[bytes]] = {}
    distractors = 0
    for i, photo in enumerate(photos):
        img = photo.load().convert("RGB")
        img.thumbnail((512, 512))
        if i < originals:
            img.save(library / f"{photo.name}.jpg", quality=92)
            queries[photo.name] = [
                _jpeg(EDITS[edit](img, edit_rng(f"{photo.name}/{edit}")))
                for edit in (EDIT_A, EDIT_B)
            ]
        else:
            img.save(library / f"distractor-{photo.name}.jpg", quality=92)
            distractors += 1
        for t, tile in enumerate(_tiles(img)):  # near misses: parts of the same scenes
            tile.save(library / f"tile-{photo.name}-{t}.jpg", quality=92)
            distractors += 1
    return queries, distractors


def run(originals: int, models: dict[str, Any], debian: bool) -> dict[str, Any]:
    from engine.composition import Lookalike
    from engine.search_request import QueryImage, SearchRequest
    from engine.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        queries, distractors = build(root, originals, debian)
        settings = Settings(data_dir=root / "data", library_dir=root / "library", **models)
        lk = Lookalike(settings)
        try:
            lk.indexing.index()
            id_of = {Path(p).stem: r.id for r in lk.store.scroll() for p in r.payload["paths"]}
            aps: dict[str, list[float]] = {"A": [], "B": [], "any": [], "all": []}
            for name, (a, b) in queries.items():
                want = id_of[name]
                ask = {
                    "A": SearchRequest(image=a, k=K),
                    "B": SearchRequest(image=b, k=K),
                    "any": SearchRequest(queries=(QueryImage(a), QueryImage(b)), k=K),
                    "all": SearchRequest(
                        queries=(QueryImage(a), QueryImage(b)), combine="all", k=K
                    ),
                }
                for kind, request in ask.items():
                    ranked = [h.id for h in lk.search.run(request).hits]
                    aps[kind].append(1.0 / (ranked.index(want) + 1) if want in ranked else 0.0)
            models_used = lk.catalog.names()
            weights = lk.search.defaults().weights
        finally:
            lk.close()
    return {
        "originals": len(queries),
        "distractors": distractors,
        "edits": {"A": EDIT_A, "B": EDIT_B},
        "models": models_used,
        "weights": weights,
        "map": {kind: round(float(np.mean(v)), 4) for kind, v in aps.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--originals", type=int, default=40)
    parser.add_argument("--models", choices=("effnet", "hsv"), default="effnet")
    parser.add_argument("--no-debian", action="store_true", help="skimage/sklearn photos only")
    args = parser.parse_args(argv)
    models: dict[str, Any] = {"clip_weights": "off", "hsv": True}
    models.update(
        {"cnn": "effnet-lite0", "cnn_weights": "imagenet"}
        if args.models == "effnet"
        else {"cnn": "off"}
    )
    print(json.dumps(run(args.originals, models, not args.no_debian)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
