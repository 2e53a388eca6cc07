"""The Embedder: batching, files in order with errors, and staying off the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from embedder_test_helpers import encode, solid
from PIL import Image

from embedder.config import ModelConfig
from embedder.errors import DecodeError, ModelLoadError
from embedder.pipeline import Embedder

CONFIG = ModelConfig(clip_weights="off", cnn="effnet-lite0", hsv=True, batch_size=2)


@pytest.fixture(scope="module")
def embedder() -> Iterator[Embedder]:
    with Embedder(CONFIG, decode_workers=2) as e:
        e.load()
        yield e


@pytest.fixture
def library(tmp_path: Path, photos: dict[str, Image.Image]) -> list[tuple[str, Path]]:
    """Good and broken files, interleaved, as an index run meets them."""
    files: dict[str, bytes] = {
        "cat.jpg": encode(photos["chelsea"], "JPEG", quality=90),
        "notes.jpg": b"these are my notes, not a picture\n",
        "red.png": encode(solid((220, 20, 20), (70, 40)), "PNG"),
        "cut.jpg": encode(photos["coffee"], "JPEG")[:5000],
        "logo.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>',
        "blue.webp": encode(solid((20, 20, 220), (30, 50)), "WEBP", lossless=True),
        "empty.gif": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    items = [(name, tmp_path / name) for name in files]
    items.insert(3, ("gone.png", tmp_path / "gone.png"))  # listed, then deleted
    return items


BAD = {"notes.jpg", "cut.jpg", "logo.svg", "empty.gif", "gone.png"}


def test_status_and_specs(embedder: Embedder) -> None:
    assert [m.name for m in embedder.models] == ["effnet-lite0", "hsv-8x8x8"]
    assert embedder.vector_specs() == {"effnet-lite0": 1280, "hsv-8x8x8": 512}
    assert [(s.role, s.name) for s in embedder.status] == [
        ("clip", None),
        ("cnn", "effnet-lite0"),
        ("hsv", "hsv-8x8x8"),
    ]
    assert embedder.warnings == []


def test_embed_images_batches(embedder: Embedder, photos: dict[str, Image.Image]) -> None:
    images = [*photos.values(), solid((1, 2, 3)), solid((200, 200, 0), (5, 900))]
    out = embedder.embed_images(images)  # batch_size 2: three batches
    assert {k: v.shape for k, v in out.items()} == {
        "effnet-lite0": (5, 1280),
        "hsv-8x8x8": (5, 512),
    }
    for v in out.values():
        assert v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    one = embedder.embed_images(images[3:4])
    np.testing.assert_allclose(one["effnet-lite0"][0], out["effnet-lite0"][3], atol=1e-5)
    assert embedder.embed_images([])["hsv-8x8x8"].shape == (0, 512)


def test_embed_files_keeps_order_and_reports_bad_files(
    embedder: Embedder, library: list[tuple[str, Path]]
) -> None:
    results = list(embedder.embed_files(library))
    assert [r.key for r in results] == [key for key, _ in library]
    for r in results:
        if r.key in BAD:
            assert not r.ok and r.vectors is None
            assert isinstance(r.error, DecodeError)
            assert r.key in str(r.error)
        else:
            assert r.ok and r.error is None and r.vectors is not None
            assert set(r.vectors) == {"effnet-lite0", "hsv-8x8x8"}
            for v in r.vectors.values():
                assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
            assert r.palette and r.palette[0].startswith("#")
    by_key = {r.key: r for r in results}
    assert (by_key["cat.jpg"].width, by_key["cat.jpg"].height) == (451, 300)
    assert (by_key["red.png"].format, by_key["red.png"].width) == ("PNG", 70)
    assert by_key["blue.webp"].format == "WEBP"
    assert by_key["red.png"].palette[0] == "#dc1414"
    assert "empty" in str(by_key["empty.gif"].error)


def test_files_and_images_give_the_same_vectors(
    embedder: Embedder, library: list[tuple[str, Path]]
) -> None:
    good = [(k, p) for k, p in library if k in {"red.png", "blue.webp"}]
    from_files = [r.vectors for r in embedder.embed_files(good)]
    from_images = embedder.embed_images([Image.open(p).convert("RGB") for _, p in good])
    for i, vectors in enumerate(from_files):
        assert vectors is not None
        for name, v in vectors.items():
            np.testing.assert_allclose(v, from_images[name][i], atol=1e-5)


def test_embed_files_edge_cases(embedder: Embedder, library: list[tuple[str, Path]]) -> None:
    assert list(embedder.embed_files([])) == []
    stream = embedder.embed_files(iter(library))  # a one-shot iterator is fine
    first = next(stream)
    stream.close()  # the caller stops early: the readers are shut down, nothing hangs
    assert first.key == "cat.jpg" and first.ok


def test_text_without_clip_says_why(embedder: Embedder) -> None:
    with pytest.raises(ModelLoadError, match="LOOKALIKE_CLIP_WEIGHTS"):
        embedder.embed_text(["a red dress"])


def test_text_with_clip(photos: dict[str, Image.Image]) -> None:
    cfg = ModelConfig(clip_weights="random", cnn="off", hsv=False)
    with Embedder(cfg) as e:
        e.load()
        text = e.embed_text(["a cat", "a cup"])
        image = e.embed_images([photos["chelsea"]])["clip-vit-b-32"]
    assert text.shape == (2, 512) and image.shape == (1, 512)


def test_blocking_calls_are_refused_on_the_event_loop(
    embedder: Embedder, photos: dict[str, Image.Image]
) -> None:
    async def main() -> dict[str, np.ndarray]:
        with pytest.raises(RuntimeError, match="run_in_pool"):
            embedder.embed_images([photos["coffee"]])
        with pytest.raises(RuntimeError, match="run_in_pool"):
            next(embedder.embed_files([]))
        return await embedder.run_in_pool(embedder.embed_images, [photos["coffee"]])

    out = asyncio.run(main())
    assert out["effnet-lite0"].shape == (1, 1280)
    future = embedder.submit(embedder.vector_specs)
    assert future.result(timeout=30) == {"effnet-lite0": 1280, "hsv-8x8x8": 512}


def test_load_is_lazy_and_idempotent() -> None:
    e = Embedder(ModelConfig(clip_weights="off", cnn="off"))
    assert e.models == [] and e.status == []
    assert e.vector_specs() == {"hsv-8x8x8": 512}  # loads on first use
    models = e.models
    e.load()
    assert e.models == models
    e.close()
