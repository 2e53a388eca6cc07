"""A data directory with N synthetic points, and a real server over it, for the end-to-end
and start-up benchmarks.

The points go in through the store, as an index run would put them (synthetic vectors of the
three seed models, see bench/synthetic.py, with a plausible payload), then the engine syncs
and saves its mirror, so a server started on the directory finds a snapshot, as a restarted
one does. The server is ``lookalike serve`` in a subprocess on a free loopback port.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.synthetic import Synthetic, point_id

# The three seed models (random weights: the same compute as real ones, nothing to download).
MODELS = {"clip_weights": "random", "cnn": "resnet50", "cnn_weights": "random"}
# For the smoke tests: HSV only, so no torch at all.
LIGHT = {"clip_weights": "off", "cnn": "off"}
BATCH = 2_000


def env_for(root: Path, models: dict[str, str] = MODELS, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        **{f"LOOKALIKE_{key.upper()}": value for key, value in models.items()},
        "LOOKALIKE_DATA_DIR": str(root / "data"),
        "LOOKALIKE_LIBRARY_DIR": str(root / "library"),
        "LOOKALIKE_ADMIN_PASSWORD": "bench-password-1234",
        **extra,
    }


def build(root: Path, n: int, models: dict[str, str] = MODELS) -> float:
    """Fill ``root``'s data directory with ``n`` points; returns the seconds it took."""
    from engine.composition import Lookalike
    from engine.settings import Settings
    from store.base import Record

    t0 = time.perf_counter()
    (root / "library").mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=root / "data", library_dir=root / "library", **models)
    engine = Lookalike(settings)
    # Loads the models once, so the store records which they are.
    used = {m["name"] for m in engine.catalog.active()}
    syn = Synthetic(n)
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
    engine.mirror_keeper.sync()
    engine.close()
    return time.perf_counter() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lookalike() -> str:
    """The installed console script (``python -m cli`` would print --json output to
    stderr: api.cli is then imported twice, the second time under its stdout redirect)."""
    return str(Path(sys.executable).with_name("lookalike"))


def api_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [lookalike(), "apikey", "create", "--scope", "read", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return str(json.loads(out)["key"])


class Server:
    """``lookalike serve`` on a free port; ``ready_s`` is spawn -> first 200 from /ready."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [lookalike(), "serve", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.ready_s: float | None = None

    def wait_ready(self, timeout: float = 300.0) -> float:
        deadline = self.started + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}")
                try:
                    if client.get(f"{self.url}/ready").status_code == 200:
                        self.ready_s = time.perf_counter() - self.started
                        return self.ready_s
                except httpx.TransportError:
                    pass
                time.sleep(0.02)
        raise TimeoutError(f"not ready after {timeout} s")

    def log_count(self, pattern: str) -> int:
        """How many lines of the server's log match ``pattern`` (a regex) so far."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"server exited with {self.proc.returncode}")
        regex = re.compile(pattern)
        text = self.log_path.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if regex.search(line))

    def wait_log(self, pattern: str, count: int, timeout: float = 600.0) -> float:
        """Wait until ``count`` lines of the server's log match ``pattern`` (a regex); returns
        the seconds waited."""
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            if self.log_count(pattern) >= count:
                return time.perf_counter() - started
            time.sleep(0.5)
        raise TimeoutError(f"{count} log lines matching {pattern!r} not seen in {timeout} s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
