"""Vector search latency of the mirror (fused, k=10) at 10k, 100k and 1M points.

For each size: synthetic fused vectors with the real models' sizes (512 + 2048 + 512, see
bench/synthetic.py for why they are not isotropic noise) are written to a float32 .npy in a
temp directory and attached to a Mirror memory-mapped, as a restarted server holds them; the
projection is fitted and the codes made as the mirror does in use. Then, for fresh queries:

- ``p50_ms``/``p99_ms``: ``Mirror.search`` as served (two stages above EXACT_BELOW points);
- ``exact_p50_ms``: the same search with ``exact=True`` (a full scan), the naive baseline;
- ``recall_at_10``: overlap of the served top-10 with the exact top-10, computed separately
  in chunks over the whole matrix (float32 scan, float64 rescoring of the best 50);
- ``mirror_bytes``: full vectors + codes. ``ram_bytes`` is the part that must stay resident
  (codes); the vectors are a file mapping the page cache serves.

Query weights rotate over three sets (equal; CLIP only; colour-heavy), as users change them.
Single-threaded searches, one after the other. Prints one JSON object.

    python -m bench.search_latency [--sizes 10000,100000,1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.synthetic import BLOCKS, NOISE, Synthetic, point_id
from store.mirror import RERANK, Mirror

NAMES = [name for name, _ in BLOCKS]
WEIGHTS = [
    dict.fromkeys(NAMES, 1.0),
    {"clip-vit-b-32": 1.0, "resnet50": 0.0, "hsv-8x8x8": 0.0},
    {"clip-vit-b-32": 0.2, "resnet50": 1.0, "hsv-8x8x8": 2.0},
]
CHUNK = 32_768


def fused_query(query: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    total = sum(weights.values())
    parts = [weights[n] / total * query[n] / np.linalg.norm(query[n]) for n in NAMES]
    return np.concatenate(parts).astype(np.float64)


def exact_top10(rows: np.ndarray, queries: np.ndarray) -> list[list[int]]:
    """True top-10 rows per query: a float32 scan in chunks, then float64 on the best 50."""
    q32 = queries.astype(np.float32)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    best_s = np.zeros((len(queries), 0), dtype=np.float32)
    for start in range(0, len(rows), CHUNK):
        scores = np.asarray(rows[start : start + CHUNK]) @ q32.T  # (chunk, q)
        idx = np.concatenate(
            [best_i, (np.arange(len(scores)) + start)[None].repeat(len(q32), 0)], 1
        )
        sc = np.concatenate([best_s, scores.T], 1)
        keep = np.argpartition(-sc, min(50, sc.shape[1] - 1), axis=1)[:, :50]
        best_i = np.take_along_axis(idx, keep, 1)
        best_s = np.take_along_axis(sc, keep, 1)
    out = []
    for q, cand in zip(queries, best_i, strict=True):
        exact = np.asarray(rows[np.sort(cand)], dtype=np.float64) @ q
        out.append(np.sort(cand)[np.argsort(-exact, kind="stable")[:10]].tolist())
    return out


def measure(n: int, n_queries: int, workdir: Path, noise: float) -> dict[str, object]:
    syn = Synthetic(n, noise=noise)
    t0 = time.perf_counter()
    syn.write_npy(workdir / "vectors.npy")
    generate_s = time.perf_counter() - t0
    rows = np.load(workdir / "vectors.npy", mmap_mode="c")
    t0 = time.perf_counter()
    ids = [point_id(i) for i in range(n)]
    mirror = Mirror.from_rows(workdir / "mirror", BLOCKS, rows, ids, np.ones(n, np.int64))
    attach_s = time.perf_counter() - t0
    queries = syn.queries(n_queries)
    weights = [WEIGHTS[i % len(WEIGHTS)] for i in range(n_queries)]
    truth = exact_top10(
        rows, np.stack([fused_query(q, w) for q, w in zip(queries, weights, strict=True)])
    )

    for q, w in zip(queries[:10], weights[:10], strict=True):  # warm caches and imports
        mirror.search(q, w, 10)
    times, recalls = [], []
    for q, w, want in zip(queries, weights, truth, strict=True):
        t = time.perf_counter()
        hits = mirror.search(q, w, 10)
        times.append(time.perf_counter() - t)
        recalls.append(len({h.id for h in hits} & {point_id(i) for i in want}) / 10)
    exact_times = []
    for q, w in list(zip(queries, weights, strict=True))[: 5 if n >= 1_000_000 else 30]:
        t = time.perf_counter()
        mirror.search(q, w, 10, exact=True)
        exact_times.append(time.perf_counter() - t)
    mem = mirror.memory()
    return {
        "n": n,
        "p50_ms": round(float(np.percentile(times, 50)) * 1e3, 3),
        "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 3),
        "exact_p50_ms": round(float(np.percentile(exact_times, 50)) * 1e3, 3),
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "mirror_bytes": mem["vectors"] + mem["codes"],
        "ram_bytes": mem["codes"],
        "min_recall_at_10": min(recalls),
        "two_stage": n >= mirror.exact_below,
        "queries": n_queries,
        "generate_s": round(generate_s, 1),
        "fit_and_encode_s": round(attach_s, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--noise", type=float, default=NOISE, help="isotropic share (synthetic.py)")
    ap.add_argument("--dir", default=None, help="where the temporary vector files go")
    args = ap.parse_args(argv)
    sizes = []
    for n in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            sizes.append(measure(n, args.queries, Path(tmp), args.noise))
    result = {"sizes": sizes, "noise": args.noise, "rerank": RERANK}
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)  # other tenants of the cores
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
