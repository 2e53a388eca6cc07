"""Schemathesis against a live server: the run ``make test`` does (small budget) and
``make fuzz`` does (long), one function for both.

The server is ``bench.served.LiveServer`` (``lookalike serve`` in a subprocess), with all
three roles on (CLIP and the CNN with random weights: nothing to download) and one image
indexed, so ids exist. Schemathesis runs from its own command line, as a user runs it: every
check, the examples, coverage, fuzzing and stateful phases, a fixed seed, a write API key,
and ``tests.fuzz.st_hooks`` (images for the parts the document says are images).

Excluded checks, each a decision with its reason: ``schemathesis.toml`` beside this file
(two today: positive_data_acceptance on the search routes, for the crop box; and
negative_data_rejection on listing and uploading images, whose free-text tags arrive as text).

Prints and returns a JSON summary: cases generated, failures, server errors (answers >= 500
in the server's access log), seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.served import FAST, ROOT, LiveServer

SEED = 20
PHASES = "examples,coverage,fuzzing,stateful"
CONFIG = Path(__file__).with_name("schemathesis.toml")


def seed_image() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((96, 72), Image.Resampling.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def run(max_examples: int, base: Path, workers: int = 1) -> dict[str, Any]:
    server = LiveServer(base, models={**FAST, "clip_weights": "random", "cnn_weights": "random"})
    (server.library / "seed.png").write_bytes(seed_image())
    key = server.key("write")["Authorization"]
    server.start()
    try:
        with server.client(headers={"Authorization": key}) as http:
            job = http.post("/api/v1/reindex").json()
        server.wait_job(job["id"])
        report_dir = base / "report"
        args = [
            str(Path(sys.executable).with_name("st")),
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.url}/schema/openapi.json",
            "--header",
            f"Authorization: {key}",
            # Every check is on by default; naming them here ("--checks all") would also
            # override the config file's reasoned exclusions.
            "--phases",
            PHASES,
            "--seed",
            str(SEED),
            "--max-examples",
            str(max_examples),
            "--workers",
            str(workers),
            "--generation-database",
            "none",
            "--request-timeout",
            "120",
            # A bound for this check on a loaded two-core test machine, where the first
            # upload also waits for the models' first batch.
            "--max-response-time",
            "60",
            "--report",
            "json",
            "--report-dir",
            str(report_dir),
            "--no-color",
        ]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz.st_hooks", "PYTHONPATH": str(ROOT)}
        log_start = len(server.tail(chars=10**9))
        started = time.perf_counter()
        done = subprocess.run(args, env=env, capture_output=True, text=True, cwd=base)
        seconds = time.perf_counter() - started
        (base / "schemathesis.txt").write_text(done.stdout + done.stderr)
    finally:
        server.stop()
    report = json.loads(next(report_dir.glob("*.json")).read_text())
    # Answers to schemathesis's requests only: the log from where the run began.
    access = re.findall(r'" (\d{3}) ', server.tail(chars=10**9)[log_start:])
    return {
        "cases": report["test_cases"]["generated"],
        "failures": sum(f["count"] for f in report["failures"]),
        "errors": len(report["errors"]),
        "server_errors": sum(1 for status in access if status.startswith("5")),
        "requests": len(access),
        "operations": report["operations"]["tested"],
        "phases": {name: p["status"] for name, p in report["phases"].items()},
        "exit_code": done.returncode,
        "seconds": round(seconds, 1),
        "excluded": "positive_data_acceptance on search, seedSearch, searchSheet; "
        "negative_data_rejection on listImages, uploadImages (tests/fuzz/schemathesis.toml)",
        "output": done.stdout[-12000:] if done.returncode else "",
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-examples", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", type=Path, help="keep the server's folders and log here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        result = run(args.max_examples, base, args.workers)
    print(result.pop("output"))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    sys.exit(1 if main()["failures"] else 0)
