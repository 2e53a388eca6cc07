"""Start-up to ready with N points (default 100k), models excluded; model load reported apart.
Prints one JSON object.

The data directory is filled through the store and its mirror snapshot saved
(bench/served.py), as a server that ran before leaves it. Then, ``--runs`` times each:

- the real server, ``lookalike serve``, is spawned and /ready polled: ``ready_with_models_s``
  is spawn -> first 200;
- a child process walks the same steps as the server's warm-up (api/services.py: store,
  models, mirror) and the payload cache, which the server loads after /ready: ``steps_s``.

``ready_s`` = ready_with_models_s - the server's own models step (torch import and weights,
from its log line "ready in ... (store, models, mirror)"), per run, then the median: time to
ready with the models excluded. ``model_load_s`` is the median of that models step. The
naive baseline is the start-up as it was before issue 4, not re-runnable here: the mirror
step alone took ~3.2 s at 100k; with the faster mirror, ready_s was still 3.97 s (Edge open
1.5 s with in-RAM vectors, payload cache 1.2 s before /ready).

    python -m bench.startup [--n 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import served

CHILD = r"""
import json, time
t0 = time.perf_counter()
from engine.composition import Lookalike
from engine.settings import Settings
steps = {"import": time.perf_counter() - t0}
engine = Lookalike(Settings())
for name, step in (
    ("store", lambda: engine.store),
    ("models", lambda: engine.resources.embedder()),
    ("mirror", lambda: engine.mirror),
    ("payloads", lambda: engine.mirror_keeper.payloads),
):
    t = time.perf_counter()
    step()
    steps[name] = time.perf_counter() - t
print(json.dumps({"steps": steps, "points": len(engine.mirror)}))
engine.close()
"""


def _server_steps(log_text: str) -> dict[str, float]:
    """The warm-up's own timings, from its "ready in T s (store a s, models b s, ...)" line."""
    found = re.search(r"ready in ([0-9.]+) s \(([^)]*)\)", log_text)
    if found is None:
        raise RuntimeError("the server log has no 'ready in' line")
    steps = {"warm_up": float(found.group(1))}
    for part in found.group(2).split(", "):
        name, seconds, _ = part.split(" ")
        steps[name] = float(seconds)
    return steps


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--light", action="store_true", help="HSV only (smoke test)")
    args = ap.parse_args(argv)
    models = served.LIGHT if args.light else served.MODELS
    with tempfile.TemporaryDirectory() as tmp_name:
        root = Path(tmp_name)
        build_s = served.build(root, args.n, models)
        env = {
            **served.models_env(models),
            "LOOKALIKE_DATA_DIR": str(root / "data"),
            "LOOKALIKE_LIBRARY_DIR": str(root / "library"),
        }
        totals, steps, server_steps = [], [], []
        for run in range(args.runs):
            log_path = root / f"server{run}.log"
            server = served.LiveServer(root, models=models, log=log_path)
            try:
                totals.append(server.start(timeout=300))
            finally:
                server.stop()
            server_steps.append(_server_steps(log_path.read_text(errors="replace")))
            out = subprocess.run(
                [sys.executable, "-c", CHILD],
                env={**os.environ, **env, "PYTHONPATH": str(served.ROOT)},
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            child = json.loads(out.strip().splitlines()[-1])
            if child["points"] != args.n:
                raise RuntimeError(f"the mirror holds {child['points']} points, want {args.n}")
            steps.append(child["steps"])
    ready = [total - srv["models"] for total, srv in zip(totals, server_steps, strict=True)]
    result = {
        "ready_s": round(statistics.median(ready), 2),
        "model_load_s": round(statistics.median(s["models"] for s in server_steps), 2),
        "n": args.n,
        "ready_runs_s": [round(t, 2) for t in ready],
        "ready_with_models_s": round(statistics.median(totals), 2),
        "ready_with_models_runs_s": [round(t, 2) for t in totals],
        "server_steps_s": {
            k: round(statistics.median(s[k] for s in server_steps), 3) for k in server_steps[0]
        },
        "steps_s": {k: round(statistics.median(s[k] for s in steps), 3) for k in steps[0]},
        "build_s": round(build_s, 1),
        # Other tenants of the cores, at the end: the figures drift with this.
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
