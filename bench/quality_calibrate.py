"""``python -m bench.quality --calibrate-on DIR``: the threshold (and optionally the weights)
on a studio's own images, with the models it runs.

DIR layout (any image format Lookalike reads):

    DIR/originals/NAME.jpg          one file per original design
    DIR/copies/NAME/*.jpg           known copies of originals/NAME.* (crops, recolours, ...)
    DIR/others/**/*.jpg             optional: unrelated library images, more negatives

Each copy is a query whose one relevant item is its original; every other original and
every image under others/ is a negative. The threshold is the lowest fused score at which
precision stays >= 0.95 (bench/quality_metrics.py). With 20 or more originals, half of them
(by a hash of the name) are held out to report how the threshold carries over.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bench.quality_data import split_of
from bench.quality_fusion import calibrate, set_key
from bench.quality_report import CALIBRATION_VERSION, entry

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
MIN_ORIGINALS_FOR_SPLIT = 20


def _images(folder: Path, *, recursive: bool = False) -> list[Path]:
    if not folder.is_dir():
        return []
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def layout(root: Path) -> tuple[list[Path], list[Path], list[tuple[Path, int]]]:
    """(originals, others, [(copy, index of its original)]); raises on a copy folder that
    names no original, since a silent mismatch would count real copies as negatives."""
    originals = _images(root / "originals")
    if not originals:
        raise SystemExit(f"{root}/originals/ holds no images: see bench/QUALITY.md")
    index = {p.stem: i for i, p in enumerate(originals)}
    copies: list[tuple[Path, int]] = []
    for folder in sorted(p for p in (root / "copies").glob("*") if p.is_dir()):
        if folder.name not in index:
            raise SystemExit(f"copies/{folder.name}/ matches no file in originals/")
        copies += [(p, index[folder.name]) for p in _images(folder, recursive=True)]
    if not copies:
        raise SystemExit(f"{root}/copies/<original name>/ holds no images")
    return originals, _images(root / "others", recursive=True), copies


def calibrate_on(
    root: Path, *, write: Path | None = None, fit_weights: bool = False
) -> dict[str, Any]:
    from embedder.pipeline import Embedder
    from engine.calibration import defaults_for
    from engine.settings import get_settings

    originals, others, copies = layout(root)
    db_paths = originals + others
    with Embedder(get_settings().model_config_for_embedder()) as emb:
        # torch.hub announces downloads on stdout, which carries only the JSON result.
        with contextlib.redirect_stdout(sys.stderr):
            emb.load()
        by_role = {m.role: m.name for m in emb.models}
        db = _embed(emb, db_paths)
        q = _embed(emb, [p for p, _ in copies])
    relevant = np.asarray([i for _, i in copies], dtype=np.int64)
    scores = {n: q[n] @ db[n].T for n in db}
    split = len(originals) >= MIN_ORIGINALS_FOR_SPLIT
    train = (
        np.asarray([split_of(originals[i].stem) == "train" for i in relevant])
        if split
        else np.ones(len(relevant), bool)
    )
    shipped, _ = defaults_for(by_role)
    result = calibrate(
        scores, by_role, relevant, train, fixed_weights=None if fit_weights else shipped
    )
    key = set_key([by_role[r] for r in ("clip", "cnn", "hsv") if r in by_role])
    out = {
        "set": key,
        "originals": len(originals),
        "others": len(others),
        "copies": len(copies),
        "held_out": "half of the originals" if split else "none (fewer than 20 originals)",
        "calibration": result,
    }
    if write is not None:
        _merge(write, key, entry(result, origin=f"studio:{root}"))
        out["written_to"] = str(write)
    return out


def _embed(emb: Any, paths: list[Path]) -> dict[str, np.ndarray]:
    rows: dict[str, list[np.ndarray]] = {}
    for res in emb.embed_files((str(p), p) for p in paths):
        if not res.ok:
            raise SystemExit(f"cannot read {res.key}: {res.error}")
        for name, v in res.vectors.items():
            rows.setdefault(name, []).append(v)
    return {n: np.stack(v).astype(np.float32) for n, v in rows.items()}


def _merge(path: Path, key: str, value: Mapping[str, Any]) -> None:
    import json

    doc: dict[str, Any] = (
        json.loads(path.read_text()) if path.is_file() else {"version": CALIBRATION_VERSION}
    )
    sets: dict[str, Any] = doc.setdefault("sets", {})
    sets[key] = dict(value)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
