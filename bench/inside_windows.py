"""Which windows "look inside" should search (engine.inside): mAP of the copy bench's pasted
family (a source pasted at 30-60 % of the width into an unrelated photo) with look inside
forced on, and the p50 of a search, for several window layouts in one run. Prints JSON.

Same library, models and queries as bench/copy_detection.py (run that once first: it
builds and indexes the library under bench/out/copy_detection). A layout is a list of
windows, each (left, top, side) in shares of the picture's width and height.

    python -m bench.inside_windows [--sources 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

import bench.copy_detection as cd
import engine.picture_search as picture_search
from bench.quality_data import build_dataset, iter_images
from engine.inside import check_size

Layout = list[tuple[float, float, float]]
HALF = [(0.0, 0.0, 0.5), (0.5, 0.0, 0.5), (0.0, 0.5, 0.5), (0.5, 0.5, 0.5)]
LAYOUTS: dict[str, Layout] = {
    "quarters (4)": HALF,
    "quarters + centre (5, shipped)": [*HALF, (0.25, 0.25, 0.5)],
    "quarters + 3/4 corners (8)": [
        *HALF,
        *((x, y, 0.75) for y in (0.0, 0.25) for x in (0.0, 0.25)),
    ],
    "two scales, a quarter apart (13, before)": [
        *((x, y, 0.5) for y in (0.0, 0.25, 0.5) for x in (0.0, 0.25, 0.5)),
        *((x, y, 0.75) for y in (0.0, 0.25) for x in (0.0, 0.25)),
    ],
}


def boxes_of(layout: Layout) -> Any:
    def windows(width: int, height: int) -> list[tuple[int, int, int, int]]:
        check_size(width, height)
        return [
            (round(x * width), round(y * height), round(s * width), round(s * height))
            for x, y, s in layout
        ]

    return windows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from engine.search_request import SearchRequest

    ap = argparse.ArgumentParser()
    ap.add_argument("--sources", type=int, default=60)
    args = ap.parse_args(argv)
    out = cd.OUT
    ds = build_dataset(out, n_distractors=5000, fm_db=0, fm_queries=0, install=False)
    sources = ds.db[: ds.n_sources][: args.sources]
    photos = [i for i in ds.db if i.kind == "photo"]
    backgrounds = [(i.key.split("/", 1)[1], img.copy()) for i, img in iter_images(photos)]
    queries = cd.make_queries(sources, backgrounds, "pasted")
    lk = cd.engine(out / "data", out / "library")
    shipped = picture_search.windows
    result: dict[str, Any] = {"sources": len(sources), "layouts": {}}
    try:
        lk.resources.embedder()
        lk.indexing.index()
        id_of = {Path(p).name: r.id for r in lk.store.scroll() for p in r.payload["paths"]}
        want = [id_of[cd.file_name(s)] for s in sources]
        lk.search.run(SearchRequest(image=queries[0][2], k=cd.K, inside=True))  # warm-up
        for name, layout in LAYOUTS.items():
            picture_search.windows = boxes_of(layout)
            aps, ms = [], []
            for row, _, data, bg in queries:
                junk = cd.parts_of(bg, id_of)
                t0 = time.perf_counter()
                hits = lk.search.run(SearchRequest(image=data, k=cd.K, inside=True)).hits
                ms.append((time.perf_counter() - t0) * 1e3)
                aps.append(cd.ap([h.id for h in hits if h.id not in junk], want[row]))
            result["layouts"][name] = {
                "windows": len(layout),
                "map_pasted": round(float(np.mean(aps)), 4),
                "p50_ms": round(statistics.median(ms), 1),
            }
    finally:
        picture_search.windows = shipped
        lk.close()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
