"""Real use cases over a temporary library, with the HSV model only: no torch, fast.

``make_lookalike(**settings) -> Lookalike`` builds the composition over fresh folders (closed
at teardown); ``picture(seed)`` draws a distinct image per seed; ``save(img, path)``.
``server_lookalike(tmp_path)`` is the same over the server backend (qdrant-client's
in-process stand-in), with ``go_down()``/``come_back()`` cutting it off through a real
dropped TCP connection, for the read policy's outage paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from qdrant_client import QdrantClient

from engine.composition import Lookalike
from engine.settings import Settings
from store import StoreConfig, open_store
from store.server import ServerStore
from tests.hostile.flaky_tcp import FlakyTcp

HSV_ONLY = {"clip_weights": "off", "cnn": "off", "hsv": True}


def picture(seed: int, size: tuple[int, int] = (160, 120)) -> Image.Image:
    """Blocks of colour around one hue per seed, so different seeds look different."""
    rng = np.random.default_rng(seed)
    hue = (seed * 67) % 360
    hsv = np.stack(
        [
            np.full((6, 8), hue * 255 // 360) + rng.integers(-8, 8, (6, 8)),
            rng.integers(120, 255, (6, 8)),
            rng.integers(60, 255, (6, 8)),
        ],
        axis=-1,
    ).clip(0, 255)
    small = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    return small.resize(size, Image.Resampling.NEAREST)


def save(img: Image.Image, path: Path, **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


@pytest.fixture
def make_lookalike(tmp_path: Path) -> Iterator[Callable[..., Lookalike]]:
    made: list[Lookalike] = []

    def make(**overrides: Any) -> Lookalike:
        store = overrides.pop("store", None)
        fields = {
            "data_dir": tmp_path / "data",
            "library_dir": tmp_path / "library",
            **HSV_ONLY,
            **overrides,
        }
        Path(fields["library_dir"]).mkdir(parents=True, exist_ok=True)
        lk = Lookalike(Settings(**fields), store=store)
        made.append(lk)
        return lk

    yield make
    for lk in made:
        lk.close()


@dataclass
class Outage:
    lookalike: Lookalike
    store: ServerStore
    go_down: Callable[[], None]
    come_back: Callable[[], None]


@pytest.fixture
def server_lookalike(tmp_path: Path) -> Iterator[Outage]:
    memory = QdrantClient(":memory:")
    stub = FlakyTcp(None)  # accepts and drops every connection: a server gone away
    over_http = QdrantClient(url=stub.url, timeout=2, check_compatibility=False)
    config = StoreConfig(data_dir=tmp_path / "data", url="http://shared", collection="c")
    store = open_store(config, client=memory)
    assert isinstance(store, ServerStore)
    (tmp_path / "library").mkdir()
    settings = Settings(data_dir=tmp_path / "data", library_dir=tmp_path / "library", **HSV_ONLY)
    lk = Lookalike(settings, store=store)

    def go_down() -> None:
        store._client, store._local = over_http, False

    def come_back() -> None:
        store._client, store._local = memory, True

    try:
        yield Outage(lk, store, go_down, come_back)
    finally:
        come_back()
        lk.close()
        stub.close()
