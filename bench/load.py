"""Load: 16 concurrent clients mixing searches and uploads for 60 s against a local server.

Starts ``uvicorn api.app:create_app`` on 127.0.0.1 over temporary folders (CLIP off,
EfficientNet-Lite0 and the HSV histogram: models that need no download), seeds the library
through the API, then runs the clients. Each client loops: a search by an uploaded image
(most often), a search by a stored image's id, or an upload of a new image. Any answer other
than the expected 200/201, and any transport failure, is an error. Prints one JSON object:

    {"requests", "errors", "p50_ms", "p99_ms", "rps", "by_kind": {...}, ...}

    python -m bench.load [--clients 16] [--seconds 60] [--upload-share 0.2]

Only loopback traffic; the loops are bounded by time and stop by themselves.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SEED_IMAGES = 100
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "api.app:create_app",
    "--factory",
    "--host",
    "127.0.0.1",
]


def image(seed: int, side: int = 256) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((side, side), Image.BILINEAR).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(base: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    from engine.accounts import ApiKeyStore

    data, library = base / "data", base / "library"
    library.mkdir(parents=True)
    _, secret = ApiKeyStore(data).create("write", name="bench-load")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")},
        "LOOKALIKE_DATA_DIR": str(data),
        "LOOKALIKE_LIBRARY_DIR": str(library),
        "LOOKALIKE_ADMIN_PASSWORD": "bench-load-password",
        "LOOKALIKE_CLIP_WEIGHTS": "off",
        "LOOKALIKE_CNN": "effnet-lite0",
        "PYTHONPATH": str(ROOT),
    }
    log = (base / "server.log").open("wb")
    proc = subprocess.Popen(
        [*UVICORN, "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((base / "server.log").read_text()[-3000:])
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return proc, url, {"Authorization": f"Bearer {secret}"}
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the server did not become ready")


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.samples: list[str] = []

    def add(self, kind: str, started: float, ok: bool, why: str = "") -> None:
        ms = (time.perf_counter() - started) * 1e3
        with self.lock:
            self.latency[kind].append(ms)
            if not ok:
                self.errors[kind] += 1
                if len(self.samples) < 5:
                    self.samples.append(f"{kind}: {why}"[:300])


def client(
    n: int, url: str, key: dict[str, str], until: float, share: float, ids: list[str], rec: Recorder
) -> None:
    rng = random.Random(n)
    counter = 0
    with httpx.Client(base_url=url, headers=key, timeout=120) as http:
        while time.monotonic() < until:
            roll = rng.random()
            started = time.perf_counter()
            try:
                if roll < share:
                    counter += 1
                    files = {"files": (f"c{n}-{counter}.jpg", image(1_000_000 * (n + 1) + counter))}
                    r = http.post("/api/v1/images", files=files)
                    kind, ok = "upload", r.status_code == 201
                    if ok:
                        with rec.lock:
                            ids.extend(i["id"] for i in r.json()["images"])
                elif roll < share + (1 - share) / 2:
                    query = {"image": ("q.jpg", image(rng.randrange(SEED_IMAGES)), "image/jpeg")}
                    r = http.post("/api/v1/search", files=query, data={"k": "10"})
                    kind, ok = "search_image", r.status_code == 200
                else:
                    with rec.lock:
                        image_id = rng.choice(ids)
                    r = http.post("/api/v1/search", json={"image_id": image_id, "k": 10})
                    kind, ok = "search_id", r.status_code == 200
                rec.add(kind, started, ok, f"{r.status_code} {r.text}")
            except httpx.HTTPError as exc:
                rec.add("transport", started, False, repr(exc))


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def run(clients: int, seconds: float, share: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lookalike-load-") as tmp:
        proc, url, key = start_server(Path(tmp))
        try:
            ids: list[str] = []
            with httpx.Client(base_url=url, headers=key, timeout=120) as http:
                for start in range(0, SEED_IMAGES, 20):
                    files = [
                        ("files", (f"seed{i}.jpg", image(i), "image/jpeg"))
                        for i in range(start, start + 20)
                    ]
                    r = http.post("/api/v1/images", files=files)
                    r.raise_for_status()
                    ids += [i["id"] for i in r.json()["images"]]
            rec = Recorder()
            until = time.monotonic() + seconds
            started = time.monotonic()
            threads = [
                threading.Thread(target=client, args=(n, url, key, until, share, ids, rec))
                for n in range(clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.monotonic() - started
            with httpx.Client(base_url=url, headers=key, timeout=60) as http:
                status = http.get("/api/v1/status").json()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    everything = [ms for values in rec.latency.values() for ms in values]
    return {
        "requests": len(everything),
        "errors": sum(rec.errors.values()),
        "p50_ms": _pct(everything, 50),
        "p99_ms": _pct(everything, 99),
        "rps": round(len(everything) / elapsed, 1),
        "clients": clients,
        "seconds": round(elapsed, 1),
        "by_kind": {
            kind: {
                "requests": len(values),
                "errors": rec.errors.get(kind, 0),
                "p50_ms": _pct(values, 50),
                "p99_ms": _pct(values, 99),
            }
            for kind, values in sorted(rec.latency.items())
        },
        "error_samples": rec.samples,
        "points_after": status["points"],
        "mirror_lag_after": status["mirror_lag"],
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--upload-share", type=float, default=0.2)
    args = parser.parse_args()
    print(json.dumps(run(args.clients, args.seconds, args.upload_share)))


if __name__ == "__main__":
    main()
