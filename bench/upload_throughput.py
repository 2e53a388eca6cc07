"""Upload throughput on a just-started server (issue 16, item 4). Prints one JSON object.

``lookalike serve`` is started over a fresh data directory with the three seed models (CLIP
ViT-B/32 and ResNet-50 with random weights: the same compute; HSV) and /ready awaited (the
warm-up loads the models). Then ``--n`` photos (bench/jpeg_corpus.py: real photos, the longer
side 1024-2048 px, JPEG quality 90) go through ``POST /api/v1/images`` the way the Library
page sends them: one file a request, three requests in flight (api/static/js/library.js,
``IN_FLIGHT``). ``img_s`` is n over the time from the first request sent to the last answer;
``p50_ms`` is the median request. Every answer must be 201 with the image ``added``.

Three servers, one after another, each new: ours (the defaults), the naive baseline (eager
fp32: ``precision=fp32``, ``compile=off``, ``int8=off``), ours again on other photos, so
that drift on the shared cores shows as a gap between the two ``ours`` figures;
``ours_img_s`` is their mean. A single upload never compiles (embedder.compile_rule), so
this is eager bf16 against eager fp32.

    python -m bench.upload_throughput [--n 20] [--light]

``--light``: EfficientNet-Lite0 (random weights) + HSV and small photos, for the smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import jpeg_corpus, served

IN_FLIGHT = 3  # api/static/js/library.js
BASELINE = {"precision": "fp32", "compile": "off", "int8": "off"}
LIGHT = {"clip_weights": "off", "cnn": "effnet-lite0", "cnn_weights": "random"}


def upload(server: served.LiveServer, paths: list[Path]) -> dict[str, Any]:
    """POST each file alone, ``IN_FLIGHT`` at a time; the rate and the request times."""
    key = server.key("write")

    def send(path: Path) -> float:
        started = time.perf_counter()
        with server.client(timeout=300) as http:
            r = http.post(
                "/api/v1/images",
                headers=key,
                files={"files": (path.name, path.read_bytes(), "image/jpeg")},
            )
        if r.status_code != 201 or r.json()["results"][0]["status"] != "added":
            raise RuntimeError(f"{path.name}: {r.status_code} {r.text[:300]}")
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        times = list(pool.map(send, paths))
    elapsed = time.perf_counter() - started
    return {
        "img_s": round(len(paths) / elapsed, 2),
        "p50_ms": round(statistics.median(times) * 1e3),
        "max_ms": round(max(times) * 1e3),
    }


def run(root: Path, paths: list[Path], models: dict[str, str]) -> dict[str, Any]:
    with served.LiveServer(root, models=models, log=root / "server.log") as server:
        ready_s = server.start(timeout=300)
        out = upload(server, paths)
        peak = _peak_rss_mb(server.pid)
    return {**out, "ready_s": round(ready_s, 1), "peak_rss_mb": peak}


def _peak_rss_mb(pid: int | None) -> int | None:
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--light", action="store_true", help="EffNet-Lite0 + HSV (smoke test)")
    args = ap.parse_args(argv)
    models = LIGHT if args.light else served.MODELS
    with tempfile.TemporaryDirectory(prefix="lookalike-upload-") as tmp:
        root = Path(tmp)
        corpus = jpeg_corpus.make(root / "photos", 2 * args.n, small=args.light)
        first, second = corpus.paths[: args.n], corpus.paths[args.n :]
        ours = run(root / "ours", first, models)
        base = run(root / "base", first, {**models, **BASELINE})
        again = run(root / "again", second, models)
    ours_img_s = (ours["img_s"] + again["img_s"]) / 2
    result = {
        "n": args.n,
        "models": "light" if args.light else "seed",
        "in_flight": IN_FLIGHT,
        "megapixels_median": round(corpus.megapixels, 2),
        "ours_img_s": round(ours_img_s, 2),
        "baseline_img_s": base["img_s"],
        "speedup": round(ours_img_s / base["img_s"], 2),
        "ours": ours,
        "ours_again": again,
        "baseline": base,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
