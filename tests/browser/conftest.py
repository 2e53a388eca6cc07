"""A real Lookalike server and Debian's Chromium, for the browser tests.

The server is ``lookalike serve`` (uvicorn on ``api.app:create_app``) in a subprocess over a
temporary data directory and library, with bundled EfficientNet-Lite0 weights and CLIP off,
so it runs offline. The browser is /usr/bin/chromium (``scripts/install_browser.sh``),
driven by Python Playwright; Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "browser"
PASSWORD = "browser-test-password-1"
# Small, so the bulk-upload test proves that no request holds more than one file.
MAX_UPLOAD_MB = 8
# `lookalike serve`, as a user starts it: it also publishes the credential the CLI uses to
# work beside it (test_cli_beside_server.py).
SERVE = [sys.executable, "-m", "cli", "serve"]
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-background-networking",  # a test machine reaches no network: do not try
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass
class Server:
    url: str
    library: Path
    data: Path
    log: Path
    env: dict[str, str]  # the server's environment: a CLI run with it works beside it
    pid: int
    password: str = PASSWORD


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    return False


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("lookalike")
    library, data = base / "library", base / "data"
    library.mkdir()
    port = _free_port()
    env = {
        **os.environ,
        "LOOKALIKE_DATA_DIR": str(data),
        "LOOKALIKE_LIBRARY_DIR": str(library),
        "LOOKALIKE_ADMIN_PASSWORD": PASSWORD,
        "LOOKALIKE_CLIP_WEIGHTS": "off",
        "LOOKALIKE_CNN": "effnet-lite0",
        "LOOKALIKE_MAX_UPLOAD_MB": str(MAX_UPLOAD_MB),
        "PYTHONPATH": str(ROOT),
    }
    for key in ("LOOKALIKE_QDRANT_URL", "LOOKALIKE_QDRANT_API_KEY"):
        env.pop(key, None)
    log = base / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SERVE, "--host", "127.0.0.1", "--port", str(port)],
            cwd=base,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            # /ready: store, mirror and models are up, so the first search does not time out.
            if not _wait(f"{url}/ready", proc, timeout=180):
                pytest.fail(f"the server did not become ready; log:\n{log.read_text()[-4000:]}")
            yield Server(url=url, library=library, data=data, log=log, env=env, pid=proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install_browser.sh (make test does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three real photographs as JPEGs, from the sample images scikit-image and sklearn ship."""
    import numpy as np
    import skimage.data
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder = tmp_path_factory.mktemp("photos")
    arrays: dict[str, np.ndarray] = {
        "chelsea.jpg": skimage.data.chelsea(),
        "coffee.jpg": skimage.data.coffee(),
        "china.jpg": load_sample_images().images[0],
    }
    paths = {}
    for name, array in arrays.items():
        paths[name] = folder / name
        Image.fromarray(array).convert("RGB").save(paths[name], "JPEG", quality=92)
    return paths
