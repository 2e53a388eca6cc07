"""Quality benchmark: copy detection on real photos, category retrieval on Fashion-MNIST.

    python -m bench.quality                       # full run; JSON on stdout, bench/RESULTS.md
    python -m bench.quality --write-calibration engine/calibration.json
    python -m bench.quality --calibrate-on DIR    # a studio's own originals and copies

The data is built from packages (bench/quality_data.py, bench/DATA.md): >= 60 source photos,
15 edited copies of each as queries, >= 5,000 distractors. Compared: each Lookalike model
whose real weights load here (never random weights), the fused default per set of models,
and the hash peers (imagehash pHash/dHash, imagededup PHash/DHash/WHash/AHash). Every image
is embedded or hashed once (cached under bench/out/quality/cache); all weightings are
evaluated from those vectors. bench/QUALITY.md explains the method and the choices.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.quality_data import Dataset, build_dataset
from bench.quality_fusion import calibrate, evaluate, fuse, model_sets, set_key
from bench.quality_methods import compute, hash_peers, hash_similarity, load_models
from bench.quality_metrics import expected_ranking_metrics, map_at_k, rank_bounds
from bench.quality_report import calibration_file, write_results

log = logging.getLogger("bench.quality")

OUT = Path(__file__).resolve().parent / "out" / "quality"
OFFLINE_SET = "effnet-lite0+hsv-8x8x8"  # the models whose weights always install offline


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    ds = build_dataset(
        args.out,
        n_sources=args.sources,
        n_distractors=args.distractors,
        fm_db=args.fm_db,
        fm_queries=args.fm_queries,
        install=not args.no_install,
    )
    models, unmeasured = load_models(tuple(args.roles.split(",")))
    peers, notes = hash_peers() if not args.no_peers else ({}, ["peers skipped (--no-peers)"])
    table = ds.table()
    row = {item.key: i for i, item in enumerate(table)}
    copy_keys = {i.key for i in [*ds.db, *ds.queries]}
    arrays, speed = compute(
        table, models, peers, args.out / "cache", ds.fingerprint(), hash_keys=copy_keys
    )
    speed = _remember_speed(args.out / "cache" / "speed.json", speed)
    t_data = time.perf_counter() - t0

    q_rows = [row[i.key] for i in ds.queries]
    d_rows = [row[i.key] for i in ds.db]
    relevant = ds.query_sources()
    train = ds.query_split() == "train"
    scores = {m.name: arrays[m.name][q_rows] @ arrays[m.name][d_rows].T for m in models}
    hashes = {p: hash_similarity(arrays[p][q_rows], arrays[p][d_rows]) for p in peers}

    by_role: dict[str, list[str]] = {}
    for m in models:
        by_role.setdefault(m.role, []).append(m.name)
    sets = {set_key(list(s.values())): s for s in model_sets(by_role)}
    calibration = {k: calibrate(scores, s, relevant, train) for k, s in sets.items()}

    methods: dict[str, np.ndarray] = {f"{m.name} (alone)": scores[m.name] for m in models}
    for key, entry in calibration.items():
        if len(sets[key]) > 1:
            role_weights: dict[str, float] = entry["weights"]  # type: ignore[assignment]
            w = {sets[key][r]: v for r, v in role_weights.items()}
            methods[f"fused {key}"] = fuse(scores, w)
    methods |= hashes
    copy = {
        split: {name: evaluate(s[mask], relevant[mask]) for name, s in methods.items()}
        for split, mask in (("test", ~train), ("train", train), ("all", np.ones_like(train)))
    }
    per_query = {
        name: expected_ranking_metrics(*rank_bounds(sc, relevant)) for name, sc in methods.items()
    }
    per_edit = _per_edit(ds, per_query)
    category = _category(ds, arrays, row, models)
    result = {
        "dataset": ds.composition,
        "models": {
            "measured": {m.name: m.weights for m in models},
            # bf16 or fp32: the engine's own setting (LOOKALIKE_PRECISION), as it would search.
            "precision": {
                k: v for m in models for k, v in getattr(m.embedder, "precision", {}).items()
            },
            "not_measured": {u.name: u.reason for u in unmeasured},
        },
        "peer_notes": notes,
        "copy_detection": copy,
        "per_edit_recall@10": per_edit,
        "calibration": calibration,
        "targets": _targets(copy, calibration, models, list(peers), per_query, relevant, train),
        "category_fmnist": category,
        "speed_images_per_s": speed,
        "seconds": {"data_and_vectors": t_data, "total": time.perf_counter() - t0},
    }
    return result


def _per_edit(
    ds: Dataset, per_query: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, float]]:
    """recall@10 per edit, all queries: which edits each method survives."""
    edits = np.asarray([q.edit for q in ds.queries])
    return {
        name: {e: float(m["recall@10"][edits == e].mean()) for e in dict.fromkeys(edits)}
        for name, m in per_query.items()
    }


def margin_ci(
    diff: np.ndarray, groups: np.ndarray, n_boot: int = 5000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the mean per-query difference, resampling *sources* (the 15 queries
    of one source are not independent, so resampling queries would overstate certainty)."""
    per = np.asarray([diff[groups == g].mean() for g in np.unique(groups)])
    rng = np.random.default_rng(seed)
    boots = per[rng.integers(0, len(per), (n_boot, len(per)))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return float(lo), float(hi)


def _category(
    ds: Dataset, arrays: dict[str, np.ndarray], row: dict[str, int], models: Sequence[Any]
) -> dict[str, Any]:
    if not ds.fm_queries:
        return {"not_measured": "Fashion-MNIST is not installed (dataset-fashion-mnist)"}
    q = [row[i.key] for i in ds.fm_queries]
    d = [row[i.key] for i in ds.fm_db]
    out: dict[str, Any] = {"queries": len(q), "db": len(d)}
    for m in models:
        if m.role == "hsv":
            continue  # grey images: a colour histogram has nothing to go on
        s = arrays[m.name][q] @ arrays[m.name][d].T
        out[m.name] = map_at_k(s, ds.fm_query_labels, ds.fm_db_labels, k=10)
    # Chance level: precision@10 of a random ranking is the class share in the db.
    out["chance_precision@10"] = float(
        np.mean(ds.fm_db_labels[None, :] == ds.fm_query_labels[:, None])
    )
    return out


def _targets(
    copy: dict[str, dict[str, dict[str, float]]],
    calibration: dict[str, Any],
    models: Sequence[Any],
    peers: Sequence[str],
    per_query: dict[str, dict[str, np.ndarray]],
    relevant: np.ndarray,
    train: np.ndarray,
) -> dict[str, Any]:
    """The issue's two targets, for every fused set, on the test sources and on all, with a
    source-bootstrap interval for the margin over the strongest other method."""
    out: dict[str, Any] = {}
    others = [f"{m.name} (alone)" for m in models] + list(peers)
    for key in calibration:
        name = f"fused {key}"
        if name not in copy["test"]:
            continue
        entry: dict[str, Any] = {}
        for split, mask in (("test", ~train), ("all", np.ones_like(train))):
            res = copy[split]
            margins = {o: res[name]["mAP"] - res[o]["mAP"] for o in others if o in res}
            closest = min(margins, key=lambda o: margins[o], default=None)
            entry[split] = {
                "mAP": res[name]["mAP"],
                "recall@10": res[name]["recall@10"],
                "mAP_margin_over": margins,
                "beats_all_on_mAP": all(v > 0 for v in margins.values()),
            }
            if closest is not None:
                diff = per_query[name]["ap"] - per_query[closest]["ap"]
                entry[split]["closest"] = closest
                entry[split]["margin_ci95_over_closest"] = margin_ci(diff[mask], relevant[mask])
        out[key] = entry
    if OFFLINE_SET in out:
        r10 = out[OFFLINE_SET]["test"]["recall@10"]
        out[OFFLINE_SET]["recall@10_target_0.95_met_on_test"] = r10 >= 0.95
    return out


def _remember_speed(path: Path, new: dict[str, float]) -> dict[str, float]:
    # Speed is measured only when vectors are computed; keep it for cached runs.
    old = json.loads(path.read_text()) if path.is_file() else {}
    merged = {**old, **new}
    path.write_text(json.dumps(merged, indent=1))
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quality", description=__doc__)
    parser.add_argument("--out", type=Path, default=OUT, help="data and cache folder")
    parser.add_argument("--sources", type=int, default=None, help="at most this many sources")
    parser.add_argument("--distractors", type=int, default=5000)
    parser.add_argument("--fm-db", type=int, default=6000, help="Fashion-MNIST train images")
    parser.add_argument("--fm-queries", type=int, default=2000, help="Fashion-MNIST test images")
    parser.add_argument("--no-install", action="store_true", help="run no apt-get")
    parser.add_argument("--roles", default="clip,cnn,hsv", help="model roles to measure")
    parser.add_argument("--no-peers", action="store_true", help="skip the hash peers")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--no-results", action="store_true", help="write no RESULTS.md")
    parser.add_argument("--write-calibration", type=Path, default=None, metavar="JSON")
    parser.add_argument(
        "--calibrate-on",
        type=Path,
        default=None,
        metavar="DIR",
        help="calibrate on DIR/originals + DIR/copies/<original stem>/ (bench/QUALITY.md)",
    )
    parser.add_argument(
        "--fit-weights",
        action="store_true",
        help="with --calibrate-on: also search the weights (needs many copies)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    if args.calibrate_on is not None:
        from bench.quality_calibrate import calibrate_on

        result = calibrate_on(
            args.calibrate_on, write=args.write_calibration, fit_weights=args.fit_weights
        )
        print(json.dumps(result, ensure_ascii=False))
        return 0
    result = run(args)
    if not args.no_results:
        write_results(args.results, result)
    if args.write_calibration is not None:
        calibration_file(args.write_calibration, result)
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
