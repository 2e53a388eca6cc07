"""A real Lookalike server in a subprocess (uvicorn), for tests and benchmarks that kill it,
load it or talk to it from many threads at once.

``LiveServer(base)`` keeps its data and library under ``base``; ``start()`` waits for
/ready, ``kill()`` is SIGKILL (no shutdown hook runs), ``stop()`` is a clean SIGTERM. An API
key is written to the data directory before the first start, the way `lookalike apikey
create` does it, so clients never need the admin password.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "api.app:create_app",
    "--factory",
    "--host",
    "127.0.0.1",
]
# Models that need no download; no background torch.compile (15-35 s of CPU that would only
# slow these short-lived processes down).
FAST_MODELS = {
    "LOOKALIKE_CLIP_WEIGHTS": "off",
    "LOOKALIKE_CNN": "effnet-lite0",
    "LOOKALIKE_COMPILE": "off",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    def __init__(self, base: Path, *, password: str = "live-server-password", **env: str) -> None:
        self.base = base
        self.data, self.library = base / "data", base / "library"
        self.library.mkdir(parents=True, exist_ok=True)
        self.log = base / "server.log"
        self.password = password
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")},
            **FAST_MODELS,
            "LOOKALIKE_DATA_DIR": str(self.data),
            "LOOKALIKE_LIBRARY_DIR": str(self.library),
            "LOOKALIKE_ADMIN_PASSWORD": password,
            "PYTHONPATH": str(ROOT),
            **env,
        }
        self.log_level = "warning"
        self.proc: subprocess.Popen[bytes] | None = None
        self._keys: dict[str, str] = {}

    def key(self, scope: str = "write") -> dict[str, str]:
        """An Authorization header with an API key of this scope (made once)."""
        if scope not in self._keys:
            from engine.accounts import ApiKeyStore

            _, secret = ApiKeyStore(self.data).create(scope, name=f"live-{scope}")
            self._keys[scope] = secret
        return {"Authorization": f"Bearer {self._keys[scope]}"}

    def start(self, timeout: float = 120, probe: str = "/ready") -> None:
        """Start and wait until ``probe`` answers 200."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [*UVICORN, "--port", str(self.port), "--log-level", self.log_level],
                cwd=self.base,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; log:\n{self.tail()}")
            try:
                if httpx.get(f"{self.url}{probe}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"the server did not become ready; log:\n{self.tail()}")

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

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
