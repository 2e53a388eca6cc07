"""Time from process start to the first search answered, models excluded (issue: Core engine).

Builds a store of N synthetic points (real vector sizes, unit-norm random vectors) in a temp
data directory, lets the engine save its mirror snapshot, then times fresh processes that
open the engine and answer one vector search. Prints one JSON object.

    python -m bench.first_search [--n 10000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import sys, time, numpy as np
t_import = time.perf_counter()
from engine.composition import Lookalike
from engine.settings import Settings
engine = Lookalike(Settings())
names = {m["name"]: m["dim"] for m in engine.catalog.active()}
rng = np.random.default_rng(1)
query = {n: rng.standard_normal(d).astype("float32") for n, d in names.items()}
result = engine.search.by_vectors(query, k=10)
assert len(result.hits) == 10, result
print(time.perf_counter() - t_import, "torch" in sys.modules)
engine.close()
"""


def build(data_dir: Path, n: int, env: dict[str, str]) -> None:
    os.environ.update(env)
    from engine.catalog import EMBEDDING_META
    from engine.composition import Lookalike
    from engine.settings import Settings
    from store.base import Record

    engine = Lookalike(Settings())
    models = [
        {"role": "cnn", "name": "effnet-lite0", "dim": 1280, "weights": "imagenet"},
        {"role": "hsv", "name": "hsv-8x8x8", "dim": 512, "weights": "none"},
    ]
    for m in models:
        m.update(fallback=False, reason=None)
    # Record the model resolution as a previous run would have, so no model is loaded.
    meta = {"config_key": engine.catalog.config_key(), "models": models}
    engine.store.set_meta(EMBEDDING_META, meta)
    rng = np.random.default_rng(0)
    for start in range(0, n, 1000):
        batch = []
        for i in range(start, min(n, start + 1000)):
            vecs = {m["name"]: rng.standard_normal(m["dim"]).astype("float32") for m in models}
            pid = f"00000000-0000-4000-8000-{i:012d}"
            batch.append(Record(id=pid, payload={"paths": [f"img{i}.jpg"]}, vectors=vecs))
        engine.store.upsert(batch)
    engine.mirror_keeper.sync()
    engine.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "LOOKALIKE_DATA_DIR": str(Path(tmp) / "data"),
            "LOOKALIKE_LIBRARY_DIR": str(Path(tmp) / "library"),
            "LOOKALIKE_CLIP_WEIGHTS": "off",
            "LOOKALIKE_CNN": "effnet-lite0",
        }
        t0 = time.perf_counter()
        build(Path(tmp), args.n, env)
        build_s = time.perf_counter() - t0
        walls, inner = [], []
        for _ in range(args.runs):
            t = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", CHILD],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            walls.append(time.perf_counter() - t)
            inner.append(float(out[0]))
            torch_loaded = out[1] == "True"
    print(
        json.dumps(
            {
                "n": args.n,
                "first_search_s_median": round(statistics.median(walls), 3),
                "first_search_s_max": round(max(walls), 3),
                "in_process_s_median": round(statistics.median(inner), 3),
                "torch_imported": torch_loaded,
                "build_s": round(build_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
