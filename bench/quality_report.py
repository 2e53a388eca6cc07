"""bench/RESULTS.md and engine/calibration.json from one bench/quality.py result."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

CALIBRATION_VERSION = 1


def _f(x: object) -> str:
    return f"{x:.3f}" if isinstance(x, float) else "–" if x is None else str(x)


def _short(name: str) -> str:
    return name.replace(" (alone)", "").replace("imagededup-", "idd-").replace("imagehash-", "ih-")


def write_results(path: Path, r: dict[str, Any]) -> None:
    d = r["dataset"]
    test, all_ = r["copy_detection"]["test"], r["copy_detection"]["all"]
    lines = [
        "# Quality benchmark results",
        "",
        "Written by `python -m bench.quality`; the method and the choices are in",
        "[QUALITY.md](QUALITY.md), the data in [DATA.md](DATA.md).",
        "",
        f"Copy detection: {d['sources']} source photos, {d['edits_per_source']} edited copies "
        f"each ({d['queries']} queries), {d['distractors']} distractors "
        f"({d['distractor_photos']} held-out photos, {d['distractor_tiles']} tiles of them, "
        f"{d['distractor_fmnist']} Fashion-MNIST images). Fusion weights and thresholds are "
        f"chosen on the {d['train_sources']} train sources; the table is the "
        f"{d['test_sources']} test sources ({d['test_sources'] * d['edits_per_source']} queries), "
        "and the last column all queries.",
        "",
        "Models measured (weights source): "
        + ", ".join(f"{k} ({v})" for k, v in r["models"]["measured"].items())
        + "; inference precision: "
        + (", ".join(f"{k} {v}" for k, v in r["models"].get("precision", {}).items()) or "–")
        + ".",
        "",
        "| Method | mAP | recall@1 | recall@10 | µAP | mAP (all queries) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in sorted(test, key=lambda n: -test[n]["mAP"]):
        m = test[name]
        lines.append(
            f"| {name} | {_f(m['mAP'])} | {_f(m['recall@1'])} | {_f(m['recall@10'])} "
            f"| {_f(m['µAP'])} | {_f(all_[name]['mAP'])} |"
        )
    for name, why in r["models"]["not_measured"].items():
        lines.append(f"| {name} | {_reason(why)} | | | | |")
    for note in r.get("peer_notes", []):
        lines.append(f"| {note} | | | | | |")

    lines += ["", "## Targets", ""]
    for key, t in r["targets"].items():
        if not isinstance(t, dict) or "test" not in t:
            continue
        for split in ("test", "all"):
            s = t[split]
            closest = s.get("closest")
            margin = ""
            if closest is not None:
                lo, hi = s["margin_ci95_over_closest"]
                margin = (
                    f" (smallest margin {s['mAP_margin_over'][closest]:+.3f}, over {closest}; "
                    f"95% interval over sources {lo:+.3f} to {hi:+.3f})"
                )
            lines.append(
                f"- fused {key}, {split} queries: mAP {_f(s['mAP'])}, recall@10 "
                f"{_f(s['recall@10'])}; beats every single model and peer on mAP: "
                f"**{'yes' if s['beats_all_on_mAP'] else 'no'}**{margin}"
            )

    edits = r["per_edit_recall@10"]
    names = list(edits)
    lines += [
        "",
        "## recall@10 per edit (all queries)",
        "",
        "| Edit | " + " | ".join(_short(n) for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for e in next(iter(edits.values()), {}):
        lines.append(f"| {e} | " + " | ".join(_f(edits[n][e]) for n in names) + " |")

    lines += [
        "",
        "## Default weights and near-duplicate threshold (precision >= 0.95)",
        "",
        "Weights: grid search on the train sources (mAP). Threshold: the lowest fused score at "
        "which precision stays >= 0.95 on the train and on the test sources, each on its own. "
        "P / R: precision and recall of 'score >= threshold' over all (query, db) pairs. The "
        "last column is the held-out check of a threshold fitted on the train sources alone.",
        "",
        "| Models | Weights | Threshold | train P / R | test P / R | test mAP (equal weights) "
        "| train-only threshold: test P / R |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, c in r["calibration"].items():
        w = ", ".join(f"{k}={v:g}" for k, v in c["weights"].items())
        tr, te = c["train"], c.get("test", {})
        eq = c.get("test_equal_weights", {}).get("mAP")
        only = c.get("train_only_threshold", {})
        lines.append(
            f"| {key} | {w} | {_f(c['near_duplicate_threshold'])} "
            f"| {_f(tr.get('threshold_precision'))} / {_f(tr.get('threshold_recall'))} "
            f"| {_f(te.get('threshold_precision'))} / {_f(te.get('threshold_recall'))} "
            f"| {_f(te.get('mAP'))} ({_f(eq)}) "
            f"| {_f(only.get('threshold'))}: {_f(only.get('test_precision'))} / "
            f"{_f(only.get('test_recall'))} |"
        )

    cat = r["category_fmnist"]
    lines += ["", "## Category retrieval, Fashion-MNIST", ""]
    if "not_measured" in cat:
        lines.append(cat["not_measured"])
    else:
        lines += [
            f"{cat['queries']} test images as queries against {cat['db']} train images; "
            "same class = relevant. Chance precision@10: "
            f"{_f(cat['chance_precision@10'])}.",
            "",
            "| Model | mAP@10 | precision@10 |",
            "|---|---:|---:|",
        ]
        for name, m in cat.items():
            if isinstance(m, dict):
                lines.append(f"| {name} | {_f(m['mAP@10'])} | {_f(m['precision@10'])} |")
    speed = r.get("speed_images_per_s", {})
    if speed:
        lines += ["", "## Speed (images/s on this machine, one pass)", ""]
        lines += [f"- {k}: {v:.1f}" for k, v in speed.items()]
    path.write_text("\n".join(lines) + "\n")


def _reason(why: str) -> str:
    return "not measured: weights unavailable offline" if "unavailable" in why else why


def calibration_file(path: Path, r: dict[str, Any]) -> dict[str, Any]:
    """Write the calibrated sets into ``path``, keeping sets this run could not measure
    (e.g. CLIP sets calibrated on a machine that has its weights)."""
    old = json.loads(path.read_text()) if path.is_file() else {}
    sets = dict(old.get("sets", {}))
    for key, c in r["calibration"].items():
        sets[key] = entry(c, origin="bench.quality")
    doc = {
        "version": CALIBRATION_VERSION,
        "target_precision": 0.95,
        "note": "Written by python -m bench.quality; see bench/QUALITY.md. Weights are by "
        "role; the threshold applies to the fused score sum(w*cos)/sum(w) with these weights "
        "and keeps precision >= 0.95 on each half of the benchmark's sources.",
        "sets": sets,
    }
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return doc


def entry(c: dict[str, Any], *, origin: str) -> dict[str, Any]:
    measured: dict[str, float] = {}
    for half in ("train", "test"):
        res = c.get(half, {})
        for k, v in (
            ("mAP", res.get("mAP")),
            ("recall@10", res.get("recall@10")),
            ("precision_at_threshold", res.get("threshold_precision")),
            ("recall_at_threshold", res.get("threshold_recall")),
        ):
            if isinstance(v, float):
                measured[f"{half}_{k}"] = round(v, 4)
    threshold = c["near_duplicate_threshold"]
    if threshold is not None:
        # Rounded *up*, so the rounding never flags a pair the measured threshold did not.
        threshold = math.ceil(threshold * 1e4) / 1e4
    return {
        "roles": c["roles"],
        "weights": c["weights"],
        "near_duplicate_threshold": threshold,
        "origin": origin,
        "measured": measured,
    }
