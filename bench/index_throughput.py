"""Index throughput: JPEG files on disk -> vectors persisted in the store, ours vs a naive
baseline in the same run (issue 4). Prints one JSON object.

Both paths run the real ``Indexing.index`` (scan, hash, decode and preprocess on reader
threads overlapping inference, Qdrant Edge upserts, mirror sync) over the same N files
(bench/jpeg_corpus.py), each into its own temporary data directory, with all three seed
models (CLIP ViT-B/32, ResNet-50, HSV; random weights offline, same compute):

- baseline: eager fp32, batch 16, full-resolution PIL decode (draft mode off);
- ours: the defaults: bf16 autocast where native, fused attention, channels_last, JPEG draft
  decoding, torch.compile and int8 where it holds the vectors (compiled once up front, after
  a warm-up that gives int8 its calibration images, and timed separately: ``compile_s``).

Order: ours, baseline, ours again (after deleting the points), so drift on shared cores
shows up as a gap between the two ``ours`` runs; ``ours_img_s`` is their mean.

Fidelity: ``min_cosine_vs_fp32`` is the smallest cosine, over every image and neural model,
between our stored vector and the baseline's (which also differs by the full decode);
``min_cosine_same_decode`` isolates precision and compilation (fp32 eager with draft decode
as reference). Near-duplicate retrieval: for each edited copy in the set, whether its
nearest other image (fused, equal weights) is its source or another copy of it.

    python -m bench.index_throughput [--n 500]

``--whole``: the whole-process figures instead (bench/whole_process.py): ``lookalike index``
in child processes, cold (fresh data directory, empty compiler cache), warm (a second
folder into the same data directory, empty ``$TMPDIR``) and the naive baseline, each over N
images, with ``--compile auto`` (the default there: the compile rule decides) or ``on``.

    python -m bench.index_throughput --whole [--n 600] [--light] [--compile auto|on]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import jpeg_corpus, whole_process
from embedder import int8, pipeline
from engine.composition import Lookalike
from engine.settings import Settings

MODELS = {"clip_weights": "random", "cnn": "resnet50", "cnn_weights": "random", "hsv": True}
# For the smoke test: one small CNN, loaded in a fraction of the time.
LIGHT = {"clip_weights": "off", "cnn": "effnet-lite0", "cnn_weights": "random", "hsv": True}
NEURAL = ("clip-vit-b-32", "resnet50", "effnet-lite0")


def engine(root: Path, library: Path, models: dict[str, Any], **settings: Any) -> Lookalike:
    return Lookalike(Settings(data_dir=root, library_dir=library, **models, **settings))


def timed_index(eng: Lookalike) -> float:
    t0 = time.perf_counter()
    report = eng.indexing.index()
    elapsed = time.perf_counter() - t0
    if report.failed or report.embedded != report.scanned:
        raise RuntimeError(f"index run incomplete: {report.as_dict()}")
    return elapsed


def stored(eng: Lookalike) -> dict[str, dict[str, np.ndarray]]:
    """file name -> the point's vectors, as persisted."""
    out = {}
    for rec in eng.store.scroll(with_payload=["paths"], with_vectors=True):
        for path in rec.payload["paths"]:
            out[Path(path).name] = {n: np.asarray(v, np.float32) for n, v in rec.vectors.items()}
    return out


def min_cosine(a: dict[str, dict[str, np.ndarray]], b: dict[str, dict[str, np.ndarray]]) -> float:
    return min(
        float(np.dot(a[f][m], b[f][m]) / (np.linalg.norm(a[f][m]) * np.linalg.norm(b[f][m])))
        for f in a
        for m in NEURAL
        if m in a[f]
    )


def near_duplicate_recall(vectors: dict[str, dict[str, np.ndarray]], corpus: Any) -> float:
    names = sorted(vectors)
    fused = np.stack(
        [
            np.concatenate(
                [vectors[n][m] / np.linalg.norm(vectors[n][m]) for m in sorted(vectors[n])]
            )
            for n in names
        ]
    )
    sims = fused @ fused.T
    np.fill_diagonal(sims, -np.inf)
    index = {n: i for i, n in enumerate(names)}
    family = {p.name: corpus.source_of.get(p, p).name for p in corpus.paths}
    copies = [p.name for p in corpus.source_of]
    hits = [family[names[int(np.argmax(sims[index[c]]))]] == family[c] for c in copies]
    return round(float(np.mean(hits)), 4) if hits else 1.0


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--compile", default=None, choices=["on", "off", "auto"])
    ap.add_argument("--light", action="store_true", help="EffNet-Lite0 + HSV (smoke test)")
    ap.add_argument("--whole", action="store_true", help="whole-process figures (issue 16)")
    args = ap.parse_args(argv)
    models = LIGHT if args.light else MODELS
    if args.whole:
        return whole(args.n, models, args.compile or "auto", small=args.light)
    args.compile = args.compile or "on"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus = jpeg_corpus.make(tmp / "library", args.n, small=args.light)
        library = tmp / "library"
        items = [(p.name, p) for p in corpus.paths]

        ours = engine(tmp / "ours", library, models, batch_size=args.batch_size)
        t0 = time.perf_counter()
        embedder = ours.resources.embedder()  # loads the models
        model_load_s = time.perf_counter() - t0
        # Warm-up, not stored: also the images int8 calibrates and checks on (the first ones
        # a model embeds, as in an index run).
        list(embedder.embed_files(items[: max(int8.SAMPLES, 2 * args.batch_size)]))
        t0 = time.perf_counter()
        if args.compile == "on":
            embedder.compile(background=False)
        compile_s = time.perf_counter() - t0
        ours_s = [timed_index(ours)]
        ours_vectors = stored(ours)

        base = engine(tmp / "base", library, models, batch_size=16, precision="fp32", compile="off")
        list(base.resources.embedder().embed_files(items[:16]))  # warm-up
        full_decode = functools.partial(pipeline.decode_image, draft=False)
        original, pipeline.decode_image = pipeline.decode_image, full_decode  # type: ignore[assignment]
        try:
            base_s = timed_index(base)
        finally:
            pipeline.decode_image = original  # type: ignore[assignment]
        base_vectors = stored(base)
        same_decode = {
            r.key: {m: v for m, v in (r.vectors or {}).items()}
            for r in base.resources.embedder().embed_files(items)
        }

        ours.store.delete([r.id for r in ours.store.scroll(with_payload=False, with_vectors=False)])
        ours.mirror_keeper.sync(full=True)
        ours_s.append(timed_index(ours))
        precision = embedder.precision
        runtime = embedder.runtime()  # the neural models
        compiled = all(r["compiled"] for r in runtime.values())
        int8_models = {name: r["int8"] for name, r in runtime.items()}
        ours.close()
        base.close()

    ours_img_s = args.n / float(np.mean(ours_s))
    baseline_img_s = args.n / base_s
    result = {
        "ours_img_s": round(ours_img_s, 2),
        "baseline_img_s": round(baseline_img_s, 2),
        "speedup": round(ours_img_s / baseline_img_s, 2),
        "min_cosine_vs_fp32": round(min_cosine(ours_vectors, base_vectors), 5),
        "n": args.n,
        "min_cosine_same_decode": round(min_cosine(ours_vectors, same_decode), 5),
        "near_dup_recall_at_1_ours": near_duplicate_recall(ours_vectors, corpus),
        "near_dup_recall_at_1_fp32": near_duplicate_recall(base_vectors, corpus),
        "near_dup_queries": len(corpus.source_of),
        "ours_runs_img_s": [round(args.n / s, 2) for s in ours_s],
        "model_load_s": round(model_load_s, 2),
        "compile_s": round(compile_s, 1),
        "compiled": compiled,
        "precision": precision,
        "int8": int8_models,
        "median_megapixels": round(corpus.megapixels, 2),
        "gpu_img_s": None,  # no GPU on this machine: not measured
        # Other tenants of the cores, at the end: the figures drift with this.
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


def whole(n: int, models: dict[str, Any], compile_mode: str, *, small: bool) -> dict[str, Any]:
    """The whole-process figures (bench/whole_process.py), and the cold run's fidelity."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        folders = (tmp / "library" / "first", tmp / "library" / "second")
        jpeg_corpus.make(folders[0], n, seed=0, small=small)
        jpeg_corpus.make(folders[1], n, seed=1, small=small)
        result = {**whole_process.run(tmp, folders, models, compile_mode), "n": n}
        ours, base = (engine(tmp / d, tmp / "library", models) for d in ("data", "base"))
        cold_vectors = {k: v for k, v in stored(ours).items() if k.startswith("img00-")}
        result["min_cosine_vs_fp32"] = round(min_cosine(cold_vectors, stored(base)), 5)
        ours.close()
        base.close()
    result["loadavg_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
