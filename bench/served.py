"""The one launcher of a real Lookalike server, for tests and benchmarks alike, plus a data
directory with N synthetic points for the end-to-end and start-up benchmarks.

``LiveServer(base)`` is ``lookalike serve`` (``python -m cli serve``, the code of this
checkout) in a subprocess on a free loopback port, its data and library under ``base``:
``start()`` spawns it and waits for /ready (``ready_s`` is spawn -> first 200), ``kill()`` is
SIGKILL (no shutdown hook runs), ``stop()`` a clean SIGTERM. ``key(scope)`` writes an API key
to the data directory the way `lookalike apikey create` does, so clients never need the
admin password. The browser tests, the hostile and crash tests, the live schemathesis run and
the benchmarks all start their servers here.

``build(root, n)`` puts the points in through the store, as an index run would (synthetic
vectors of the three seed models, see bench/synthetic.py, with a plausible payload), then the
engine syncs and saves its mirror, so a server started on the directory finds a snapshot, as
a restarted one does.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench.synthetic import BLOCKS, OFFLINE_BLOCKS, Synthetic, point_id

ROOT = Path(__file__).resolve().parents[1]
# The three seed models (random weights: the same compute as real ones, nothing to download).
MODELS = {"clip_weights": "random", "cnn": "resnet50", "cnn_weights": "random"}
# The models whose weights install offline (EfficientNet-Lite0 ImageNet, HSV; no CLIP):
# what a studio without downloaded weights runs, and what the quality benches measure.
OFFLINE = {"clip_weights": "off", "cnn": "effnet-lite0", "cnn_weights": "imagenet"}
# For the smoke tests: HSV only, so no torch at all.
LIGHT = {"clip_weights": "off", "cnn": "off"}
# Models that need no download, and no background torch.compile (15-35 s of CPU that would
# only slow short-lived test servers down).
FAST = {"clip_weights": "off", "cnn": "effnet-lite0", "compile": "off"}
BATCH = 2_000
SERVE = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1"]


def models_env(models: dict[str, str]) -> dict[str, str]:
    """Settings fields -> their LOOKALIKE_* variables."""
    return {f"LOOKALIKE_{key.upper()}": value for key, value in models.items()}


# The fast models as environment variables, for tests that run the CLI in a subprocess.
FAST_MODELS = models_env(FAST)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(
        self,
        base: Path,
        *,
        models: dict[str, str] = FAST,
        password: str = "live-server-password",
        log: Path | None = None,
        **env: str,
    ) -> None:
        self.base = base
        self.data, self.library = base / "data", base / "library"
        self.library.mkdir(parents=True, exist_ok=True)
        self.log = log or base / "server.log"
        self.password = password
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            # The caller's own LOOKALIKE_* settings never leak into a test server.
            **{k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")},
            **models_env(models),
            "LOOKALIKE_DATA_DIR": str(self.data),
            "LOOKALIKE_LIBRARY_DIR": str(self.library),
            "LOOKALIKE_ADMIN_PASSWORD": password,
            "PYTHONPATH": str(ROOT),  # this checkout's modules, not the editable install's
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_s: float | None = None
        self._started = 0.0
        self._keys: dict[str, str] = {}

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def key(self, scope: str = "write") -> dict[str, str]:
        """An Authorization header with an API key of this scope (made once)."""
        if scope not in self._keys:
            from engine.accounts import ApiKeyStore

            _, secret = ApiKeyStore(self.data).create(scope, name=f"live-{scope}")
            self._keys[scope] = secret
        return {"Authorization": f"Bearer {self._keys[scope]}"}

    def spawn(self) -> None:
        """Start the process; returns at once (``wait_ready`` waits)."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*SERVE, "--port", str(self.port)],
                cwd=self.base,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._started = time.perf_counter()

    def wait_ready(self, timeout: float = 180, probe: str = "/ready") -> float:
        """Wait until ``probe`` answers 200; returns the seconds since the spawn."""
        deadline = self._started + timeout
        with httpx.Client(timeout=2.0) as http:
            while time.perf_counter() < deadline:
                if self.proc is None or self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited; log:\n{self.tail()}")
                try:
                    if http.get(f"{self.url}{probe}").status_code == 200:
                        self.ready_s = time.perf_counter() - self._started
                        return self.ready_s
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        self.kill()
        raise TimeoutError(f"the server was not ready in {timeout} s; log:\n{self.tail()}")

    def start(self, timeout: float = 180, probe: str = "/ready") -> float:
        self.spawn()
        return self.wait_ready(timeout, probe)

    def kill(self) -> None:
        """SIGKILL: no lifespan shutdown, no snapshot save, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kw.pop("timeout", 60), **kw)

    def wait_job(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client() as http:
            while time.monotonic() < deadline:
                job = http.get(f"/api/v1/jobs/{job_id}", headers=self.key("read")).json()
                if job["state"] in ("done", "failed"):
                    return dict(job)
                time.sleep(0.1)
        raise TimeoutError(f"job {job_id} did not finish")

    def log_count(self, pattern: str) -> int:
        """How many lines of the server's log match ``pattern`` (a regex) so far."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"the server exited; log:\n{self.tail()}")
        regex = re.compile(pattern)
        return sum(1 for line in self.tail(chars=10**9).splitlines() if regex.search(line))

    def wait_log(self, pattern: str, count: int, timeout: float = 600.0) -> float:
        """Wait until ``count`` lines of the log match ``pattern``; returns the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.log_count(pattern) >= count:
                return time.perf_counter() - started
            time.sleep(0.5)
        raise TimeoutError(f"{count} log lines matching {pattern!r} not seen in {timeout} s")

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def build(root: Path, n: int, models: dict[str, str] = MODELS) -> float:
    """Fill ``root``'s data directory with ``n`` points; returns the seconds it took."""
    from engine.composition import Lookalike
    from engine.settings import Settings

    t0 = time.perf_counter()
    (root / "library").mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=root / "data", library_dir=root / "library", **models)
    engine = Lookalike(settings)
    write_points(engine, n)
    engine.mirror_keeper.sync()
    engine.close()
    return time.perf_counter() - t0


def write_points(engine: Any, n: int) -> None:
    """``n`` synthetic points into ``engine``'s store (a ``Lookalike``), as an index run
    would write them. Loads the models once, so the store records which they are."""
    from store.base import Record

    used = {m["name"] for m in engine.catalog.active()}
    syn = Synthetic(n, blocks=OFFLINE_BLOCKS if "effnet-lite0" in used else BLOCKS)
    for start in range(0, n, BATCH):
        fused = syn.rows(start, min(BATCH, n - start))
        named = syn.split(fused)
        engine.store.upsert(
            [
                Record(
                    point_id(start + i),
                    {
                        "paths": [f"shoot{(start + i) // 50:05d}/img{start + i:07d}.jpg"],
                        "filename": f"img{start + i:07d}.jpg",
                        "folder": [f"shoot{(start + i) // 50:05d}"],
                        "width": 1600,
                        "height": 1067,
                        "format": "JPEG",
                        "bytes": 400_000,
                        "tags": [],
                    },
                    {name: vec[i] for name, vec in named.items() if name in used},
                )
                for i in range(len(fused))
            ]
        )


def write_keypoints(data_dir: Path, n: int, kinds: int = 20) -> int:
    """Keypoint records (copy verification, issue 18) for the ``n`` synthetic points, as an
    index run keeps them: the features of ``kinds`` synthetic pictures in turn (shapes over
    textured noise: a full record of keypoints each, like a photo's), so that reading and
    matching a candidate costs what it costs on a real library. None of them is a copy of
    a query photo: like a search for a design that does not exist yet, nothing verifies.
    Returns the bytes written."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    from embedder.keypoints import extract
    from store.keypoints import KeypointStore

    store = KeypointStore.under(data_dir)
    feats = []
    for seed in range(kinds):
        rng = np.random.default_rng(1000 + seed)
        noise = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        img = Image.fromarray(noise).resize((640, 480), Image.Resampling.BICUBIC)
        img = img.filter(ImageFilter.GaussianBlur(2))
        draw = ImageDraw.Draw(img)
        for _ in range(40):
            x, y = int(rng.integers(0, 600)), int(rng.integers(0, 440))
            w, h = int(rng.integers(10, 120)), int(rng.integers(10, 120))
            fill = tuple(int(v) for v in rng.integers(0, 256, 3))
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((x, y, x + w, y + h), fill=fill)
        feats.append(extract(img))
    total = 0
    for i in range(n):
        f = feats[i % len(feats)]
        total += store.put(point_id(i), f.kind, f.width, f.height, f.xy, f.descriptors, f.thumb)
    return total
