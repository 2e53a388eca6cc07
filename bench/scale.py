"""Qdrant-served search at scale: exact two-round fusion on Edge with int8 and HNSW.

For each size: synthetic vectors shaped like the real ones (bench/synthetic.py: CLIP 512,
ResNet-50 2048, HSV 512; grouped, with a common direction, not isotropic noise) go into an
Edge store created as ``LOOKALIKE_SEARCH=qdrant`` deployments create theirs (int8 scalar
quantization per named vector, HNSW; see docs/scaling.md), and the optimiser builds its
indexes. Then, for fresh queries with rotating weights (equal; CLIP only; colour-heavy):

- ``recall_at_10``: overlap of the served top-10 with the exact fp32 fused top-10, computed
  apart in chunks over every vector (``bench.search_latency.exact_top10``);
- ``max_score_error``: the largest gap between a served score and the exact fused score,
  rank by rank;
- ``p50_ms``/``p99_ms``: a search as the API runs it in qdrant mode (both rounds, then the
  ten hits' payloads), one after the other;
- ``prefetch_n``: round one's depth at this size (``engine.store_search.prefetch_n``), and
  ``deepened``: searches whose certificate sent round one deeper;
- ``rss_mb_qdrant_mode`` / ``rss_mb_mirror_mode``: resident memory of a fresh process that
  opens the store and serves the same searches, without a mirror and with one (a snapshot
  of the same vectors, as a restarted server loads it). No models are loaded. With Edge the
  embedded Qdrant lives in that process, so both figures include it; against a Qdrant
  server the API process holds only ``rss_mb_baseline`` plus what a search allocates.

    python -m bench.scale [--sizes 100000,1000000] [--queries 100] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.search_latency import WEIGHTS, exact_top10, fused_query
from bench.synthetic import BLOCKS, Synthetic, point_id
from engine import fused_index
from engine.store_search import StoreFusedSearch, prefetch_n
from store import Record, StoreConfig, open_store

CHUNK = 4096


def _config(data_dir: Path) -> StoreConfig:
    return StoreConfig(data_dir=data_dir)


def _memory_mb() -> dict[str, float]:
    """Resident memory: all of it, and the part that is the process's own (anonymous) rather
    than pages of memory-mapped files, which the kernel can drop and read again."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) / 1024
    return out


def fill(store: Any, rows: np.ndarray, n: int) -> float:
    """Upsert every row (payload like an image's: width, tags, folder); returns seconds."""
    t0 = time.perf_counter()
    names = [name for name, _ in BLOCKS]
    for start in range(0, n, CHUNK):
        part = np.asarray(rows[start : start + CHUNK])
        at, blocks = 0, {}
        for name, dim in BLOCKS:
            blocks[name] = part[:, at : at + dim]
            at += dim
        records = [
            Record(
                point_id(start + i),
                {"paths": [f"img/{start + i}.jpg"], "width": 100 + (start + i) % 1900},
                {name: blocks[name][i] for name in names},
            )
            for i in range(len(part))
        ]
        store.upsert(records)
    store.flush()
    return time.perf_counter() - t0


def serve(
    data_dir: Path,
    n: int,
    queries: list[dict],
    weights: list[dict],
    mirror: bool,
    with_two_round: bool = True,
) -> dict:
    """In this process: open the store (and the mirror), serve every query, measure."""
    baseline = _memory_mb()["VmRSS"]
    store = open_store(_config(data_dir))
    searcher = StoreFusedSearch(lambda: store, lambda: n)
    two_round = StoreFusedSearch(lambda: store, lambda: n, fused=False)
    if mirror:
        from store.mirror import Mirror

        kept = Mirror.load(data_dir / "mirror", BLOCKS)
        assert kept is not None, "no mirror snapshot"
    times, answers, depths, slow_times, slow_answers = [], [], [], [], []
    for q, w in zip(queries, weights, strict=True):
        t = time.perf_counter()
        if mirror:
            hits = kept.search(q, w, 10)
        else:
            hits = searcher.search(q, w, 10)
            depths.append(searcher.last_n)
        store.retrieve([h.id for h in hits])  # the payloads the API shows
        times.append(time.perf_counter() - t)
        answers.append([(h.id, h.score) for h in hits])
    memory = _memory_mb()  # before the comparison: what the shipped path holds
    for q, w in zip(queries, weights, strict=True):
        if mirror or not with_two_round:
            break
        t = time.perf_counter()
        hits = two_round.search(q, w, 10)  # the same search without the fused index
        store.retrieve([h.id for h in hits])
        slow_times.append(time.perf_counter() - t)
        slow_answers.append([(h.id, h.score) for h in hits])
        depths.append(two_round.last_n)
    out = {
        "times": times,
        "answers": answers,
        "depths": depths,
        "two_round_times": slow_times,
        "two_round_answers": slow_answers,
        "rss_mb": memory["VmRSS"],
        "anon_mb": memory["RssAnon"],
        "rss_mb_baseline": baseline,
    }
    store.close()
    return out


def _child(data_dir: Path, n: int, n_queries: int, mirror: bool) -> dict:
    """``serve`` in a fresh process, so its memory is measured alone."""
    cmd = [sys.executable, "-m", "bench.scale", "--child", str(data_dir), "--n", str(n)]
    cmd += ["--queries", str(n_queries)] + (["--mirror"] if mirror else [])
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _workload(n: int, n_queries: int) -> tuple[Synthetic, list[dict], list[dict]]:
    syn = Synthetic(n)
    queries = syn.queries(n_queries)
    weights = [WEIGHTS[i % len(WEIGHTS)] for i in range(n_queries)]
    return syn, queries, weights


def build(n: int, workdir: Path, syn: Synthetic, fused: bool = True) -> dict[str, float]:
    """The vectors file, the optimised store and the mirror snapshot, once per directory
    (``--keep``: a second run measures the same build again)."""
    done = workdir / "built.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    rows = syn.write_npy(workdir / "vectors.npy")
    data_dir = workdir / "data"
    store = open_store(_config(data_dir))
    store.create(dict(BLOCKS))
    if fused:  # as a LOOKALIKE_SEARCH=qdrant deployment starts: declared while still empty
        fused_index.ensure(store, True)
    fill_s = fill(store, rows, n)
    t0 = time.perf_counter()
    store.optimize()  # the HNSW graphs and int8 vectors now, not in the middle of measuring
    optimize_s = time.perf_counter() - t0
    store.close()
    from store.mirror import Mirror

    Mirror.from_rows(
        data_dir / "mirror", BLOCKS, rows, [point_id(i) for i in range(n)], np.ones(n, np.int64)
    ).save()
    timings = {"fill_s": round(fill_s, 1), "optimize_s": round(optimize_s, 1), "built_fused": fused}
    done.write_text(json.dumps(timings))
    return timings


def measure(n: int, n_queries: int, workdir: Path, fused: bool = True) -> dict[str, Any]:
    syn, queries, weights = _workload(n, n_queries)
    timings = build(n, workdir, syn, fused)
    rows = np.load(workdir / "vectors.npy", mmap_mode="r")
    data_dir = workdir / "data"
    truth = exact_top10(
        rows, np.stack([fused_query(q, w) for q, w in zip(queries, weights, strict=True)])
    )
    qdrant = _child(data_dir, n, n_queries, mirror=False)
    mirrored = _child(data_dir, n, n_queries, mirror=True)

    recalls, errors, gaps = [], [], []
    index_of = {point_id(i): i for i in range(n)}
    slow_recalls = [
        len({i for i, _ in got} & {point_id(i) for i in want}) / 10
        for want, got in zip(truth, qdrant["two_round_answers"], strict=False)
    ]
    for want, got, q, w in zip(truth, qdrant["answers"], queries, weights, strict=True):
        recalls.append(len({i for i, _ in got} & {point_id(i) for i in want}) / 10)
        fq = fused_query(q, w)
        exact = [float(np.asarray(rows[i], dtype=np.float64) @ fq) for i in want]
        # a served score against the exact fused score of the same image ...
        errors += [abs(s - float(np.asarray(rows[index_of[i]], np.float64) @ fq)) for i, s in got]
        # ... and against the exact score at the same rank (a missed image shows here)
        gaps += [abs(s - e) for (_, s), e in zip(got, exact, strict=False)]
    times = qdrant["times"][10:]  # the first ones warm the caches
    start = prefetch_n(n, 10)
    return {
        "n": n,
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "max_score_error": float(f"{max(errors):.2e}"),
        "max_rank_score_gap": float(f"{max(gaps):.2e}"),
        "p50_ms": round(float(np.percentile(times, 50)) * 1e3, 2),
        "p99_ms": round(float(np.percentile(times, 99)) * 1e3, 2),
        "fused_index": fused,
        # the same searches in the same process without the fused index (two rounds)
        "two_round_recall_at_10": round(float(np.mean(slow_recalls)), 4) if slow_recalls else None,
        "two_round_p50_ms": _p(qdrant["two_round_times"][10:], 50),
        "two_round_p99_ms": _p(qdrant["two_round_times"][10:], 99),
        "prefetch_n": start,
        "deepened": sum(d > start for d in qdrant["depths"]),
        "rss_mb_qdrant_mode": round(qdrant["rss_mb"]),
        "rss_mb_mirror_mode": round(mirrored["rss_mb"]),
        "rss_mb_baseline": round(qdrant["rss_mb_baseline"]),
        "anon_mb_qdrant_mode": round(qdrant["anon_mb"]),
        "anon_mb_mirror_mode": round(mirrored["anon_mb"]),
        "mirror_p50_ms": round(float(np.percentile(mirrored["times"][10:], 50)) * 1e3, 2),
        "min_recall_at_10": min(recalls),
        **timings,
        "queries": n_queries,
    }


def _p(times: list[float], q: int) -> float | None:
    return round(float(np.percentile(times, q)) * 1e3, 2) if times else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--dir", default=None, help="where the temporary files go")
    ap.add_argument("--keep", default=None, help="build into (and reuse) DIR/n<size>")
    ap.add_argument(
        "--no-fused", action="store_true", help="build without the fused index (store.fused)"
    )
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--mirror", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:  # one measuring process: see _child
        _, queries, weights = _workload(args.n, args.queries)
        out = serve(Path(args.child), args.n, queries, weights, args.mirror)
        print(json.dumps(out))
        return out
    sizes = []
    for n in (int(s) for s in args.sizes.split(",")):
        if args.keep:
            kept = Path(args.keep) / f"n{n}"
            kept.mkdir(parents=True, exist_ok=True)
            sizes.append(measure(n, args.queries, kept, not args.no_fused))
        else:
            with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
                sizes.append(measure(n, args.queries, Path(tmp), not args.no_fused))
        print(json.dumps(sizes[-1]), file=sys.stderr)
    result: dict[str, Any] = {"sizes": sizes, "loadavg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
