"""Acceptance figures for the core engine, measured through the real CLI.

1. Index >= 150 real photos (bench.photos corpus) with the default settings.
2. For 20 crops keeping 70% of a photo (crops live outside the library), run
   ``lookalike search --json`` once for all of them and count how often the original is first.
3. Re-run ``lookalike index`` on the unchanged folder and time the whole process.

    python -m bench.core_acceptance [--n 150] [--crops 20]
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

from PIL import Image

from bench.photos import build_corpus
from tests.edits import crop_keep


def lookalike(env: dict[str, str], *args: str) -> tuple[str, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150)
    ap.add_argument("--crops", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lib, crops = Path(tmp) / "library", Path(tmp) / "crops"
        crops.mkdir()
        photos = build_corpus(lib, n_min=args.n)
        env = {
            **os.environ,
            "LOOKALIKE_DATA_DIR": str(Path(tmp) / "data"),
            "LOOKALIKE_LIBRARY_DIR": str(lib),
        }
        out, first_s = lookalike(env, "index", "--json")
        first = json.loads(out)

        step = max(1, len(photos) // args.crops)
        chosen = photos[::step][: args.crops]
        anchors = ("center", "tl", "br")
        queries = []
        for i, p in enumerate(chosen):
            q = crops / f"crop-{p.stem}.jpg"
            crop_keep(Image.open(p).convert("RGB"), 0.7, anchors[i % 3]).save(q, quality=90)
            queries.append((q, p))
        out, search_s = lookalike(env, "search", *(str(q) for q, _ in queries), "--json")
        ranks = []
        for line, (_, original) in zip(out.splitlines(), queries, strict=True):
            hits = [Path(h["path"]).name for h in json.loads(line)["hits"]]
            ranks.append(hits.index(original.name) + 1 if original.name in hits else None)

        out, second_s = lookalike(env, "index", "--json")
        second = json.loads(out)
        status = json.loads(lookalike(env, "status", "--json")[0])
    print(
        json.dumps(
            {
                "photos_indexed": first["embedded"],
                "first_index_s": round(first_s, 1),
                "index_failed": len(first["failed"]),
                "crops": len(ranks),
                "original_first": sum(r == 1 for r in ranks),
                "ranks": ranks,
                "search_process_s": round(search_s, 1),
                "second_index_s": round(second_s, 2),
                "second_index_embedded": second["embedded"] + second["reembedded"],
                "second_index_models_loaded": second["models_loaded"],
                "models": [
                    f"{m['role']}={m['name'] or 'off'}@{m['weights'] or '-'}"
                    for m in status["roles"]
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
