"""Copy detection end to end through the real engine (issue 18): mAP per edit family with
verification off, on, and on with "look inside", search latency, and the indexing cost of
keeping keypoints. Prints one JSON object and writes bench/RESULTS_copy_detection.md.

The library is the quality bench's database (bench/quality_data.py: the source photos, then
>= 5,000 distractors: held-out photos, their tiles as near-misses, Fashion-MNIST), written
as JPEG files under ``--out`` (cached between runs) and indexed once by
``Lookalike.indexing.index()`` (keypoints are extracted then). Each query is a source under
one of the eight families of bench/copy_edits.py (deterministic per source and family), sent
as PNG bytes through ``Lookalike.search.run(SearchRequest(image=..., k=100))``. Its one
relevant item is its source: AP = 1 / rank within the top 100, else 0.

Configurations: ``off`` (``verification.candidates = 0``), ``verify`` (verification, never
looking inside), ``verify+inside`` (``inside=True``; a query under 128 px is refused with a
400 by the engine, so it counts with its ``verify`` answer, as a user would search again
without it) and ``default`` (the shipped settings: look inside only when the whole picture
proves no copy, ``LOOKALIKE_INSIDE=auto``).

Models: the weights that install offline, EfficientNet-Lite0 (ImageNet) + HSV histograms.
CLIP is off: its weights cannot be had offline.

    nice -n 5 python -m bench.copy_detection [--sources 30] [--throughput 500]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.copy_edits import background_index, families
from bench.quality_data import Item, build_dataset, iter_images
from bench.quality_edits import edit_rng

OUT = Path("bench/out/copy_detection")
RESULTS = Path("bench/RESULTS_copy_detection.md")
MODELS: dict[str, Any] = {
    "clip_weights": "off",
    "cnn": "effnet-lite0",
    "cnn_weights": "imagenet",
    "hsv": True,
}
K = 100
CONFIGS = ("off", "verify", "verify+inside", "default")
# What each configuration asks of 'look inside': never, never, always, the setting (auto).
INSIDE = {"off": False, "verify": False, "verify+inside": True, "default": None}
LOOKED = [0]  # queries the default configuration looked inside (auto)


def file_name(item: Item) -> str:
    return item.key.replace("/", "-") + ".jpg"


def write_library(db: list[Item], library: Path) -> None:
    """Every database image as a JPEG file (quality 92); a run reuses the files it finds."""
    library.mkdir(parents=True, exist_ok=True)
    todo = [i for i in db if not (library / file_name(i)).is_file()]
    for item, img in iter_images(todo):
        tmp = library / (file_name(item) + ".part")
        img.save(tmp, "JPEG", quality=92)
        tmp.rename(library / file_name(item))


def make_queries(
    sources: list[Item], backgrounds: list[tuple[str, Image.Image]], only: str | None
) -> list[tuple[int, str, bytes, str]]:
    """(source row, family, PNG bytes, the background's stem or '') per source and family."""
    fams = families([img for _, img in backgrounds])
    out = []
    for item, base in iter_images(sources):
        row = sources.index(item)
        stem = item.key.split("/", 1)[1]
        for name, edit in fams.items():
            if only and name != only:
                continue
            key = f"copy/{stem}/{name}"
            img = edit(base, edit_rng(key)).convert("RGB")
            buf = io.BytesIO()
            img.save(buf, "PNG", compress_level=1)
            bg = ""
            if name == "pasted":
                bg = backgrounds[background_index(edit_rng(key), len(backgrounds))][0]
            out.append((row, name, buf.getvalue(), bg))
    return out


def parts_of(stem: str, id_of: dict[str, str]) -> set[str]:
    """The library images a pasted query also holds: its background photo and the tiles
    cut from it. They are true matches too, so AP ignores them (junk, as in the Oxford
    and DISC21 protocols); ``pasted_strict`` counts them as errors."""
    if not stem:
        return set()
    return {
        i for f, i in id_of.items() if f == f"photo-{stem}.jpg" or f.startswith(f"tile-{stem}-")
    }


def engine(data_dir: Path, library: Path, **settings: Any) -> Any:
    from engine.composition import Lookalike
    from engine.settings import Settings

    return Lookalike(Settings(data_dir=data_dir, library_dir=library, **MODELS, **settings))


def search(lk: Any, data: bytes, config: str, candidates: int) -> tuple[list[str], float, bool]:
    """Ranked ids, wall milliseconds, and whether 'inside' was refused (query too small)."""
    from engine.errors import BadInput
    from engine.search_request import SearchRequest

    lk.verification.candidates = 0 if config == "off" else candidates
    t0 = time.perf_counter()
    refused = False
    try:
        result = lk.search.run(SearchRequest(image=data, k=K, inside=INSIDE[config]))
    except BadInput:
        refused = True
        result = lk.search.run(SearchRequest(image=data, k=K, inside=False))
    ms = (time.perf_counter() - t0) * 1e3
    if config == "default" and "inside_embed_ms" in result.timings:
        LOOKED[0] += 1  # auto looked inside this one
    return [h.id for h in result.hits], ms, refused


def ap(ranked: list[str], want: str) -> float:
    return 1.0 / (ranked.index(want) + 1) if want in ranked else 0.0


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def throughput(library: Path, n: int, root: Path, rounds: int = 1) -> dict[str, Any]:
    """Index the same ``n`` files into fresh data directories with keypoints off, then on,
    ``rounds`` times (alternating, so drift on shared cores shows); models are loaded before
    the clock starts."""
    files = sorted(library.glob("*.jpg"))
    step = max(1, len(files) // n)
    sample = root / "sample"
    sample.mkdir(parents=True)
    for f in files[::step][:n]:
        os.link(f, sample / f.name)
    runs: dict[str, list[float]] = {"off": [], "on": []}
    for i, verify in enumerate((False, True) * rounds):
        lk = engine(root / f"data{i}", sample, verify=verify)
        try:
            lk.resources.embedder()  # model load, not timed
            t0 = time.perf_counter()
            report = lk.indexing.index()
            elapsed = time.perf_counter() - t0
            if report.failed or report.embedded != report.scanned:
                raise RuntimeError(f"index run incomplete: {report.as_dict()}")
            runs["on" if verify else "off"].append(report.embedded / elapsed)
        finally:
            lk.close()
    off, on = statistics.mean(runs["off"]), statistics.mean(runs["on"])
    return {
        "files": len(list(sample.iterdir())),
        "img_s_verify_off": round(off, 1),
        "img_s_verify_on": round(on, 1),
        "runs_img_s": {k: [round(v, 1) for v in vs] for k, vs in runs.items()},
        "slowdown_pct": round(100 * (1 - on / off), 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    LOOKED[0] = 0
    out: Path = args.out
    ds = build_dataset(
        out,
        n_distractors=args.distractors,
        fm_db=0,
        fm_queries=0,
        install=not args.no_install,
    )
    n_src = ds.n_sources
    sources = ds.db[:n_src][: args.sources]
    library = out / "library"
    t0 = time.perf_counter()
    write_library(ds.db, library)
    write_s = time.perf_counter() - t0
    photos = [i for i in ds.db if i.kind == "photo"]
    backgrounds = [(i.key.split("/", 1)[1], img.copy()) for i, img in iter_images(photos)]
    queries = make_queries(sources, backgrounds, args.family)

    lk = engine(out / "data", library)
    if args.exact:  # the mirror's exact scan instead of its int8 first stage (a diagnosis)
        lk.mirror.exact_below = 10**9
    try:
        lk.resources.embedder()
        t0 = time.perf_counter()
        report = lk.indexing.index()
        index_s = time.perf_counter() - t0
        id_of = {Path(p).name: r.id for r in lk.store.scroll() for p in r.payload["paths"]}
        # Records of an older format (or lost) are rebuilt, as reconcile does after an upgrade.
        repaired = lk.verification.repair(sorted(set(id_of.values())))
        want = [id_of[file_name(s)] for s in sources]
        default_n = lk.verification.candidates
        search(lk, queries[0][2], "verify+inside", default_n)  # warm-up: cv2, first batches
        aps: dict[str, dict[str, list[float]]] = {c: defaultdict(list) for c in CONFIGS}
        ms: dict[str, list[float]] = {c: [] for c in CONFIGS}
        refused = 0
        misses: dict[str, list[str]] = {c: [] for c in CONFIGS[1:]}
        strict: dict[str, list[float]] = {c: [] for c in CONFIGS}
        for row, fam, data, bg in queries:
            junk = parts_of(bg, id_of)
            for config in CONFIGS:
                ranked, took, no = search(lk, data, config, default_n)
                if fam == "pasted":
                    strict[config].append(ap(ranked, want[row]))
                ranked = [i for i in ranked if i not in junk]
                aps[config][fam].append(ap(ranked, want[row]))
                if config != "off" and ranked[:1] != [want[row]]:  # rank 0: not in the top K
                    stem = sources[row].key.split("/", 1)[1]
                    rank = ranked.index(want[row]) + 1 if want[row] in ranked else 0
                    misses[config].append(f"{fam}:{stem}@{rank}")
                ms[config].append(took)
                refused += no
        sweep: dict[str, Any] = {}
        if args.sweep:
            weakest = min(aps["verify"], key=lambda f: np.mean(aps["verify"][f]))
            subset = [q for q in queries if q[1] == weakest]
            sweep = {"family": weakest}
            for n in (30, 50, 100):
                for config in ("verify", "verify+inside"):
                    got = [(search(lk, d, config, n), r, b) for r, _, d, b in subset]
                    sweep[f"{config}@{n}"] = {
                        "map": round(
                            float(
                                np.mean(
                                    [
                                        ap(
                                            [i for i in g[0] if i not in parts_of(b, id_of)],
                                            want[r],
                                        )
                                        for g, r, b in got
                                    ]
                                )
                            ),
                            4,
                        ),
                        "p50_ms": pct([g[1] for g, _, _ in got], 50),
                    }
        points = lk.store.count()
        weights = lk.search.defaults().weights
        models = lk.catalog.names()
    finally:
        lk.close()

    fams = list(aps["off"])
    per_family = {c: {f: round(float(np.mean(aps[c][f])), 4) for f in fams} for c in CONFIGS}
    result: dict[str, Any] = {
        "models": models,
        "weights": weights,
        "clip": "off: its weights cannot be had offline",
        "verify_candidates": default_n,
        "mirror_exact": bool(args.exact),
        "library": {
            "points": points,
            "sources": n_src,
            "distractors": ds.composition["distractors"],
            "distractor_photos": ds.composition["distractor_photos"],
            "distractor_tiles": ds.composition["distractor_tiles"],
            "distractor_fmnist": ds.composition["distractor_fmnist"],
            "index_s": round(index_s, 1),
            "embedded_this_run": report.embedded,
            "keypoint_records_rebuilt": repaired,
            "write_files_s": round(write_s, 1),
        },
        "queries": {"sources": len(sources), "families": len(fams), "total": len(queries)},
        "map": per_family,
        "macro": {c: round(float(np.mean(list(per_family[c].values()))), 4) for c in CONFIGS},
        "min_family": {c: min(per_family[c].values()) for c in CONFIGS},
        "latency_ms": {c: {"p50": pct(ms[c], 50), "p90": pct(ms[c], 90)} for c in CONFIGS},
        "pasted_strict": {c: round(float(np.mean(v)), 4) if v else None for c, v in strict.items()},
        "inside_refused_small": refused,
        "default_looked_inside": LOOKED[0],
        "not_first": misses,  # family:source@rank of each query whose source is not first
    }
    if sweep:
        result["candidates_sweep"] = sweep
    if args.throughput:
        print(json.dumps(result), file=sys.stderr, flush=True)  # the figures so far
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            result["index_throughput"] = throughput(
                library, args.throughput, Path(tmp), args.rounds
            )
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    return result


def markdown(r: dict[str, Any], command: str) -> str:
    lines = [
        "# Copy detection through the engine (issue 18)",
        "",
        f"`{command}`: {r['queries']['sources']} sources x {r['queries']['families']} families, "
        f"library of {r['library']['points']} points ({r['library']['distractors']} distractors: "
        f"{r['library']['distractor_photos']} held-out photos, {r['library']['distractor_tiles']} "
        f"tiles of them, {r['library']['distractor_fmnist']} Fashion-MNIST). Models "
        f"{', '.join(r['models'].values())}, weights {r['weights']}; CLIP off "
        "(no weights offline). "
        f"Verification checks the best {r['verify_candidates']}. AP of the source in the top {K}.",
        "",
        "| family | off | verify | verify+inside | default (auto) |",
        "|---|---|---|---|---|",
    ]
    for fam in r["map"]["off"]:
        lines.append(f"| {fam} | " + " | ".join(f"{r['map'][c][fam]:.3f}" for c in CONFIGS) + " |")
    lines.append("| **macro** | " + " | ".join(f"**{r['macro'][c]:.3f}**" for c in CONFIGS) + " |")
    lines.append(
        "| p50 / p90 ms | "
        + " | ".join(
            f"{r['latency_ms'][c]['p50']:.0f} / {r['latency_ms'][c]['p90']:.0f}" for c in CONFIGS
        )
        + " |"
    )
    lines += ["", "```json", json.dumps(r, indent=1), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--sources", type=int, default=30)
    parser.add_argument("--distractors", type=int, default=5000)
    parser.add_argument("--family", help="only this family (a quick look)")
    parser.add_argument("--throughput", type=int, default=500, help="files; 0: skip")
    parser.add_argument("--rounds", type=int, default=1, help="throughput: off/on pairs")
    parser.add_argument("--exact", action="store_true", help="mirror: exact scan always")
    parser.add_argument("--sweep", action="store_true", help="candidates 30/50/100, weakest")
    parser.add_argument("--no-install", action="store_true", help="no apt: a smaller corpus")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args)
    args.results.write_text(
        markdown(result, "python -m bench.copy_detection " + " ".join(argv or sys.argv[1:]))
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
