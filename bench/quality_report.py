"""bench/RESULTS.md and engine/calibration.json from one bench/quality.py result."""

from __future__ import annotations

import json
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
            worst = min(s["mAP_margin_over"].items(), key=lambda kv: kv[1], default=("–", 0.0))
            lines.append(
                f"- fused {key}, {split} queries: mAP {_f(s['mAP'])}, recall@10 "
                f"{_f(s['recall@10'])}; beats every single model and peer on mAP: "
                f"**{'yes' if s['beats_all_on_mAP'] else 'no'}** (smallest margin "
                f"{worst[1]:+.3f}, over {worst[0]})"
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
        "Chosen on the train sources; 'test' is how they carry over to the test sources.",
        "",
        "| Models | Weights | Threshold | train P / R | test P / R | test mAP (equal weights) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, c in r["calibration"].items():
        w = ", ".join(f"{k}={v:g}" for k, v in c["weights"].items())
        tr, te = c["train"], c["test"]
        eq = c.get("test_equal_weights", {}).get("mAP")
        lines.append(
            f"| {key} | {w} | {_f(c['near_duplicate_threshold'])} "
            f"| {_f(tr.get('threshold_precision'))} / {_f(tr.get('threshold_recall'))} "
            f"| {_f(te.get('threshold_precision'))} / {_f(te.get('threshold_recall'))} "
            f"| {_f(te['mAP'])} ({_f(eq)}) |"
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
        "role; the threshold applies to the fused score sum(w*cos)/sum(w).",
        "sets": sets,
    }
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return doc


def entry(c: dict[str, Any], *, origin: str) -> dict[str, Any]:
    test = c.get("test", {})
    return {
        "roles": c["roles"],
        "weights": c["weights"],
        "near_duplicate_threshold": c["near_duplicate_threshold"],
        "origin": origin,
        "measured": {
            k: round(v, 4)
            for k, v in {
                "test_mAP": test.get("mAP"),
                "test_recall@10": test.get("recall@10"),
                "test_precision_at_threshold": test.get("threshold_precision"),
                "test_recall_at_threshold": test.get("threshold_recall"),
            }.items()
            if isinstance(v, float)
        },
    }
