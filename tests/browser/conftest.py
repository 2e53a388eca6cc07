"""A real Lookalike server and Debian's Chromium, for the browser tests.

The server is the one launcher's (``bench.served.LiveServer``: ``lookalike serve`` in a
subprocess over a temporary data directory and library), with bundled EfficientNet-Lite0
weights and CLIP off, so it runs offline. The browser is /usr/bin/chromium
(``scripts/install_browser.sh``), driven by Python Playwright; Playwright's own browser
downloads are never used.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.served import LiveServer

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "artifacts" / "browser"
PASSWORD = "browser-test-password-1"
# Small, so the bulk-upload test proves that no request holds more than one file.
MAX_UPLOAD_MB = 8
CHROMIUM_ARGS = [
    "--no-sandbox",  # root in a container has no user namespace for the sandbox
    "--disable-gpu",
    "--disable-background-networking",  # a test machine reaches no network: do not try
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # `lookalike serve`, as a user starts it: it also publishes the credential the CLI uses
    # to work beside it (test_cli_beside_server.py). One per module, over an empty library:
    # what one module uploads (counts, duplicate groups) never leaks into the next.
    live = LiveServer(
        tmp_path_factory.mktemp("lookalike"),
        password=PASSWORD,
        LOOKALIKE_MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
    )
    try:
        # /ready: store, mirror and models are up, so the first search does not time out.
        live.start()
    except (RuntimeError, TimeoutError) as exc:
        pytest.fail(f"the server did not become ready: {exc}")
    with live:
        yield live


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
