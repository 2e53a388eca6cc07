"""Pick the local descriptor for copy verification (issue 18) by measurement; prints JSON.

Real photos (skimage.data + sklearn samples, bench.photos) are the stored images. Each gets
the issue's 8 edit families (two or three edits each, reusing bench.quality_edits and
tests.edits where they exist); each edited copy is verified against its source (a true
copy) and against every other stored photo (non-copies). Near-misses: the non-overlapping
left/right and top/bottom parts of one photo, and the other view of the motorcycle stereo
pair. For each configuration (descriptor, detection sizes) it reports per family the share
of copies verified and the false verifications at each inlier threshold, the inlier
distributions, where the matched region landed (IoU with the truth, crops and pastes), the
cost (ms per extraction, per pair, bytes per stored image).

    python -m bench.verify_pick [--sources 17] [--configs sift320,orb640]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from bench.photos import _package_dir, package_photos
from bench.quality_edits import edit_rng, flip, greyscale, hue_shift, overlay, perspective, rotate
from embedder.keypoints import DESCRIPTOR_BYTES, Features, Kind, extract, max_keypoints, mirror
from embedder.verify import Verified, verify, verify_many
from tests.edits import jpeg

THRESHOLDS = (6, 8, 10, 12, 15, 20)
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Config:
    name: str
    kind: Kind
    db_side: int
    query_side: int
    query_keypoints: int = 1000
    spread: bool = True
    contrast: float = 0.04


CONFIGS = {
    c.name: c
    for c in (
        Config("sift320", "sift", 320, 512),
        Config("sift4-320", "sift4", 320, 512),
        Config("sift4-480", "sift4", 480, 640),
        Config("sift4-320-top", "sift4", 320, 512, spread=False),
        Config("sift4-320-c02", "sift4", 320, 512, contrast=0.02),  # the default
        Config("sift4-320-c02-top", "sift4", 320, 512, spread=False, contrast=0.02),
        Config("sift320-top", "sift", 320, 512, spread=False),
        Config("sift480", "sift", 480, 640),
        Config("orb640", "orb", 640, 1024),
        Config("orb640-top", "orb", 640, 1024, spread=False),
    )
}


@dataclass
class Query:
    source: int  # index of the stored photo it copies; -1 for a near-miss
    family: str
    edit: str
    image: Image.Image
    hit_box: Box | None = None  # truth in the source's pixel space (crops)
    query_box: Box | None = None  # truth in the query's pixel space (pastes)
    exclude: tuple[int, ...] = ()  # stored photos that are also in the query (paste host)


def crop_box(img: Image.Image, fraction: float, rng: np.random.Generator) -> Query:
    w, h = img.size
    s = fraction**0.5
    cw, ch = round(w * s), round(h * s)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    box = (x, y, x + cw, y + ch)
    return Query(-1, "crop", f"crop{round(fraction * 100)}", img.crop(box), hit_box=box)


def posterize(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.posterize(img, 3)


def banners(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Heavy overlays: two wide semi-opaque coloured bands with text, ~40 % of the area."""
    out = img.convert("RGBA")
    layer = Image.new("RGBA", out.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    w, h = out.size
    font = ImageFont.load_default(size=max(12, h // 9))
    for top in (rng.uniform(0.05, 0.25), rng.uniform(0.55, 0.75)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        y0 = int(h * top)
        draw.rectangle((0, y0, w, y0 + h // 5), fill=(*colour, 200))
        draw.text((w // 15, y0 + h // 40), "SALE -50% NOW", fill=(255, 255, 255, 255), font=font)
    return Image.alpha_composite(out, layer).convert("RGB")


def screenshot(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Box]:
    """The picture shown at ~70 % in a desktop window: title bar, side panel, text."""
    w, h = img.size
    scale = float(rng.uniform(0.6, 0.8))
    shown = img.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (w, h + h // 12), (236, 236, 240))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, w, h // 12), fill=(48, 52, 60))
    font = ImageFont.load_default(size=max(10, h // 40))
    for i in range(12):
        draw.text(
            (w // 60, h // 8 + i * h // 16), f"file_{i:02d}.jpg", fill=(30, 30, 30), font=font
        )
    x, y = w - shown.width - w // 30, h // 12 + (h - shown.height) // 2
    canvas.paste(shown, (x, y))
    return jpeg(canvas, 85), (x, y, x + shown.width, y + shown.height)


def frame(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Box]:
    """A passe-partout and a dark frame around the picture, then shrunk back."""
    w, h = img.size
    m = int(min(w, h) * rng.uniform(0.08, 0.15))
    framed = ImageOps.expand(
        ImageOps.expand(img, m, fill=(245, 240, 230)), m // 2, fill=(40, 25, 15)
    )
    k = w / framed.width
    box = (1.5 * m * k, 1.5 * m * k, (1.5 * m + w) * k, (1.5 * m + h) * k)
    return framed.resize((w, round(framed.height * k)), Image.Resampling.BILINEAR), box


def paste(img: Image.Image, host: Image.Image, share: float, rng: np.random.Generator):
    """``img`` at ``share`` of the host's width, somewhere inside the host photo."""
    hw, hh = host.size
    pw = round(hw * share)
    ph = min(round(img.height * pw / img.width), hh)
    pw = round(img.width * ph / img.height)
    small = img.resize((pw, ph), Image.Resampling.BILINEAR)
    x, y = int(rng.integers(0, hw - pw + 1)), int(rng.integers(0, hh - ph + 1))
    out = host.copy()
    out.paste(small, (x, y))
    return jpeg(out, 85), (x, y, x + pw, y + ph)


def thumb64(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    small = img.copy()
    small.thumbnail((64, 64), Image.Resampling.BICUBIC)
    return jpeg(small.filter(ImageFilter.GaussianBlur(0.6)), 75)


def thumb128(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    small = img.copy()
    small.thumbnail((128, 128), Image.Resampling.BICUBIC)
    return jpeg(small, 50)


SIMPLE: dict[str, dict[str, Callable[[Image.Image, np.random.Generator], Image.Image]]] = {
    "geometry": {"rotate": rotate, "perspective": perspective, "mirror": flip},
    "colour": {"hue": hue_shift, "grey": greyscale, "posterize": posterize},
    "overlay": {"overlay": overlay, "banners": banners},
    "thumbnail": {"thumb64blur": thumb64, "thumb128": thumb128},
    "jpeg": {"jpeg25": lambda im, rng: jpeg(im, 25)},
}


def make_queries(photos: list[Image.Image], stems: list[str]) -> list[Query]:
    out: list[Query] = []
    for i, (img, stem) in enumerate(zip(photos, stems, strict=True)):
        for frac in (0.25, 0.4):
            q = crop_box(img, frac, edit_rng(f"{stem}/crop{frac}"))
            q.source = i
            out.append(q)
        for family, edits in SIMPLE.items():
            for name, fn in edits.items():
                out.append(
                    Query(i, family, name, fn(img, edit_rng(f"{stem}/{name}")).convert("RGB"))
                )
        shot, box = screenshot(img, edit_rng(f"{stem}/shot"))
        out.append(Query(i, "screenshot", "screenshot", shot, query_box=box))
        framed, box = frame(img, edit_rng(f"{stem}/frame"))
        out.append(Query(i, "screenshot", "frame", framed, query_box=box))
        for share in (0.3, 0.6):
            h = (i + 1 + int(share * 10)) % len(photos)
            host = photos[h]
            pasted, box = paste(img, host, share, edit_rng(f"{stem}/paste{share}"))
            name = f"paste{round(share * 100)}"
            out.append(Query(i, "paste", name, pasted, query_box=box, exclude=(h,)))
    return out


def near_misses(photos: list[Image.Image]) -> list[tuple[Image.Image, Image.Image, str]]:
    """(stored, query) pairs of the same scene that share no pixels."""
    pairs = []
    for img in photos:
        w, h = img.size
        pairs.append((img.crop((0, 0, int(w * 0.45), h)), img.crop((int(w * 0.55), 0, w, h)), "lr"))
        pairs.append((img.crop((0, 0, w, int(h * 0.45))), img.crop((0, int(h * 0.55), w, h)), "tb"))
    root = _package_dir("skimage")
    if root is not None and (root / "data" / "motorcycle_right.png").is_file():
        left = Image.open(root / "data" / "motorcycle_left.png").convert("RGB")
        right = Image.open(root / "data" / "motorcycle_right.png").convert("RGB")
        pairs.append((left, right, "stereo"))
    return pairs


def iou(poly: list[tuple[float, float]], box: Box, size: tuple[int, int]) -> float:
    s = 256 / max(size)
    a, b = Image.new("1", (257, 257)), Image.new("1", (257, 257))
    if len(poly) >= 3:
        ImageDraw.Draw(a).polygon([(x * s, y * s) for x, y in poly], fill=1)
    ImageDraw.Draw(b).rectangle([c * s for c in box], fill=1)
    x, y = np.asarray(a, bool), np.asarray(b, bool)
    return float((x & y).sum() / max((x | y).sum(), 1))


def best(query: tuple[Features, Features], cand: Features, timing: list[float]) -> Verified | None:
    t = time.perf_counter()
    found = [v for q in query if (v := verify(q, cand, min_inliers=min(THRESHOLDS)))]
    timing.append(time.perf_counter() - t)
    return max(found, key=lambda v: v.inliers, default=None)


def dist(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values)
    return {f"p{p}": float(np.percentile(a, p)) for p in (10, 50, 90)} | {"max": int(a.max())}


def run_config(cfg: Config, photos: list[Image.Image], queries: list[Query], nm: list) -> dict:
    t = time.perf_counter()
    db = [
        extract(p, kind=cfg.kind, max_side=cfg.db_side, spread=cfg.spread, contrast=cfg.contrast)
        for p in photos
    ]
    ms_db = (time.perf_counter() - t) * 1000 / len(db)

    def q_feats(img: Image.Image) -> tuple[Features, Features]:
        kw: dict[str, Any] = {
            "kind": cfg.kind,
            "limit": cfg.query_keypoints,
            "max_side": cfg.query_side,
            "contrast": cfg.contrast,
        }
        seen = extract(img, **kw)
        if cfg.kind == "orb":  # as keypoints.extract_query: ORB is described again mirrored
            return seen, extract(img, mirrored=True, **kw)
        return seen, mirror(seen)

    pos: dict[str, list[int]] = {}
    neg: dict[str, list[int]] = {}
    ious: dict[str, list[float]] = {}
    timing: list[float] = []
    t = time.perf_counter()
    q_ms = []
    for q in queries:
        t0 = time.perf_counter()
        qf = q_feats(q.image)
        q_ms.append(time.perf_counter() - t0)
        for j, cand in enumerate(db):
            if j in q.exclude:
                continue
            v = best(qf, cand, timing)
            n = v.inliers if v else 0
            if j == q.source:
                pos.setdefault(q.edit, []).append(n)
                if v and q.hit_box is not None:
                    ious.setdefault(q.edit, []).append(
                        iou(v.hit_polygon, q.hit_box, photos[j].size)
                    )
                if v and q.query_box is not None:
                    ious.setdefault(q.edit, []).append(
                        iou(v.query_polygon, q.query_box, q.image.size)
                    )
            else:
                neg.setdefault(q.family, []).append(n)
    near: dict[str, list[int]] = {}
    for stored, query, kind in nm:
        v = best(
            q_feats(query),
            extract(
                stored,
                kind=cfg.kind,
                max_side=cfg.db_side,
                spread=cfg.spread,
                contrast=cfg.contrast,
            ),
            timing,
        )
        near.setdefault(kind, []).append(v.inliers if v else 0)
    # A re-rank: one query against 51 stored records in one call (embedder.verify_many).
    rerank = []
    for q in queries[:: max(1, len(queries) // 12)]:
        t0 = time.perf_counter()
        verify_many(q_feats(q.image), (db * 3)[:51])
        rerank.append(time.perf_counter() - t0)
    families = {q.edit: q.family for q in queries}
    all_neg = [n for v in neg.values() for n in v]
    near_all = [n for k, v in near.items() if k != "stereo" for n in v]
    return {
        "config": cfg.__dict__,
        "bytes_per_image": 24 + max_keypoints(cfg.kind) * (4 + DESCRIPTOR_BYTES[cfg.kind]),
        "keypoints_per_image": {"mean": float(np.mean([len(f) for f in db]))},
        "ms_extract_stored": round(ms_db, 1),
        "ms_extract_query_both_views": round(1000 * float(np.mean(q_ms)), 1),
        "ms_per_pair_both_views": round(1000 * float(np.mean(timing)), 2),
        "ms_rerank_51_candidates_p50": round(1000 * float(np.median(rerank)), 1),
        "verified_share": {
            e: {str(t): round(float(np.mean(np.asarray(v) >= t)), 3) for t in THRESHOLDS}
            for e, v in pos.items()
        },
        "family_of": families,
        "inliers_true": {e: dist(v) for e, v in pos.items()},
        "false_verified": {
            str(t): round(float(np.mean(np.asarray(all_neg) >= t)), 4) for t in THRESHOLDS
        },
        "inliers_noncopy": dist(all_neg) | {"n": len(all_neg)},
        "near_miss_false_verified": {
            str(t): round(float(np.mean(np.asarray(near_all) >= t)), 3) for t in THRESHOLDS
        },
        "inliers_near_miss": {k: dist(v) for k, v in near.items()},
        "region_iou_median": {e: round(float(np.median(v)), 3) for e, v in ious.items()},
    }


def store_cost(n: int = 5000, reads: int = 2000) -> dict[str, float]:
    """Per-record read cost: one file per point (store.keypoints) against slices of one
    packed, memory-mapped file with an offset index (the alternative it was chosen over)."""
    import mmap
    import tempfile
    import uuid

    from store.keypoints import KeypointStore, decode, encode

    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1000, (123, 2)).astype(np.float32)
    desc = rng.integers(0, 256, (123, 128), dtype=np.uint8)
    ids = [str(uuid.UUID(int=int(rng.integers(0, 2**62)) << 64 | i)) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        store = KeypointStore(Path(tmp) / "keypoints")
        t = time.perf_counter()
        for i in ids:
            store.put(i, "sift", 1000, 800, xy, desc)
        write_us = (time.perf_counter() - t) * 1e6 / n
        record = encode("sift", 1000, 800, xy, desc)
        packed = Path(tmp) / "packed.bin"
        packed.write_bytes(record * n)
        with open(packed, "rb") as f:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        pick = rng.integers(0, n, reads)
        t = time.perf_counter()
        for k in pick:
            assert store.get(ids[k]) is not None
        file_us = (time.perf_counter() - t) * 1e6 / reads
        t = time.perf_counter()
        size = len(record)
        for k in pick:
            decode(memoryview(mm)[int(k) * size : (int(k) + 1) * size])
        packed_us = (time.perf_counter() - t) * 1e6 / reads
    return {
        "records": n,
        "record_bytes": len(record),
        "us_write_per_record": round(write_us, 1),
        "us_read_per_record_file": round(file_us, 1),
        "us_read_per_record_packed": round(packed_us, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=int, default=17)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--store", action="store_true", help="only measure the keypoint store")
    args = ap.parse_args(argv)
    if args.store:
        print(json.dumps(store_cost(), indent=1))
        return 0
    chosen = package_photos(debian=False)[: args.sources]
    photos = [p.load() for p in chosen]
    for p in photos:
        p.thumbnail((1024, 1024))  # as a library holds them (bench.quality_data)
    queries = make_queries(photos, [p.stem for p in chosen])
    nm = near_misses(photos)
    report = {
        "sources": len(photos),
        "queries": len(queries),
        "near_miss_pairs": len(nm),
        "results": [run_config(CONFIGS[c], photos, queries, nm) for c in args.configs.split(",")],
    }
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
