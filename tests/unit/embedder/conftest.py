"""Shared fixtures for the embedder tests.

The only thing patched anywhere is the network seam: open_clip's and torch hub's download
functions, made to fail the way they fail on a machine without internet.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from typing import Any

import pytest
from embedder_test_helpers import Offline, rgb
from PIL import Image
from skimage import data

from embedder.clip import ClipViTB32
from embedder.cnn import EffNetLite0, ResNet50Gem


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Offline:
    import open_clip.pretrained
    import torch.hub

    record = Offline()

    def clip_download(cfg: dict[str, Any], *args: Any, **kwargs: Any) -> str:
        record.attempts.append(f"open_clip:{cfg.get('hf_hub') or cfg.get('url')}")
        raise RuntimeError("Failed to download file: [Errno -2] Name or service not known")

    def hub_download(url: str, *args: Any, **kwargs: Any) -> None:
        record.attempts.append(f"torch.hub:{url}")
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    import embedder.clip

    # The reachability probe is part of the network seam: let the download itself be tried.
    monkeypatch.setattr(embedder.clip, "_check_hub_reachable", lambda: None)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", clip_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", hub_download)
    return record


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    return {
        "chelsea": rgb(data.chelsea()),
        "coffee": rgb(data.coffee()),
        "astronaut": rgb(data.astronaut()),
    }


# Loading is the slow part of these tests: each model is loaded once per session.
@pytest.fixture(scope="session")
def random_clip() -> Iterator[ClipViTB32]:
    model = ClipViTB32("random")
    model.load()
    yield model


@pytest.fixture(scope="session")
def random_resnet() -> Iterator[ResNet50Gem]:
    model = ResNet50Gem("random")
    model.load()
    yield model


@pytest.fixture(scope="session")
def bundled_effnet() -> Iterator[EffNetLite0]:
    model = EffNetLite0("imagenet")
    model.load()
    yield model
