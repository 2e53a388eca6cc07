"""The Embedder: batching, files in order with errors, staying off the event loop, and what it
asks of models with speed settings (compiling, int8, the readers' gate)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embedder_test_helpers import encode, solid
from embedder_tiny_models import FakeNeural
from PIL import Image

from embedder import pipeline
from embedder.base import Accelerated, TextEmbedder
from embedder.config import ModelConfig
from embedder.errors import DecodeError, ModelLoadError
from embedder.hsv import HsvHistogram
from embedder.pipeline import Embedder
from embedder.registry import LoadedModels

CONFIG = ModelConfig(clip_weights="off", cnn="effnet-lite0", hsv=True, batch_size=2)
WAIT_S = 30  # only a failing test waits this long


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


@pytest.mark.slow
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
        with pytest.raises(RuntimeError, match="run it in a worker thread"):
            embedder.embed_images([photos["coffee"]])
        with pytest.raises(RuntimeError, match="run it in a worker thread"):
            next(embedder.embed_files([]))
        return await asyncio.to_thread(embedder.embed_images, [photos["coffee"]])

    out = asyncio.run(main())
    assert out["effnet-lite0"].shape == (1, 1280)


def test_load_is_lazy_and_idempotent() -> None:
    e = Embedder(ModelConfig(clip_weights="off", cnn="off"))
    assert e.models == [] and e.status == []
    assert e.vector_specs() == {"hsv-8x8x8": 512}  # loads on first use
    models = e.models
    e.load()
    assert e.models == models
    e.close()


def test_embed_inputs_batches_prepared_images(photos: dict[str, Image.Image]) -> None:
    config = ModelConfig(clip_weights="off", cnn="off", hsv=True)
    with Embedder(config) as embedder:
        images = list(photos.values())
        together = embedder.embed_inputs([embedder.prepare(im) for im in images])
        assert embedder.embed_inputs([]) == []
        separately = embedder.embed_images(images)
        assert embedder.precision == {} and embedder.runtime() == {}  # no neural model
    for i, item in enumerate(together):
        assert set(item) == {"hsv-8x8x8"}
        for name, v in item.items():
            np.testing.assert_allclose(v, separately[name][i], atol=1e-5)


# -- models with speed settings (embedder.base.Accelerated), by a torch-free stand-in ---------
HSV_ONLY = ModelConfig(clip_weights="off", cnn="off", hsv=True, batch_size=4, query_batch=3)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeNeural:
    """A model with speed settings, loaded before the HSV model of ``HSV_ONLY``."""
    fake = FakeNeural()
    real = pipeline.load_models

    def load_models(config: ModelConfig) -> LoadedModels:
        loaded = real(config)
        loaded.models.insert(0, fake)
        return loaded

    monkeypatch.setattr(pipeline, "load_models", load_models)
    return fake


def test_models_with_speed_settings_are_tuned_and_reported(fake: FakeNeural) -> None:
    models: list[object] = [fake, HsvHistogram()]
    assert [isinstance(m, Accelerated) for m in models] == [True, False]
    config = dataclasses.replace(HSV_ONLY, precision="bf16", compile="off", int8="off")
    with Embedder(config) as embedder:
        embedder.load()
        assert fake.tuned == [("bf16", "off", "off", 4)]
        assert embedder.precision == {"fake-neural": "fp32"}
        assert embedder.runtime() == {"fake-neural": {"precision": "fp32", "int8": False}}
        embedder.compile()
        assert fake.compiles == [True]
        assert fake.waits == 0
    assert fake.waits == 1  # close() waits for compiles under way


def test_compile_on_compiles_while_loading(fake: FakeNeural) -> None:
    with Embedder(dataclasses.replace(HSV_ONLY, compile="on")) as embedder:
        embedder.load()
        assert fake.compiles == [False]


def test_sustained_shared_batches_start_the_compile(
    fake: FakeNeural, monkeypatch: pytest.MonkeyPatch, photos: dict[str, Image.Image]
) -> None:
    monkeypatch.setattr(pipeline, "COMPILE_AFTER_SHARED_BATCHES", 3)
    with Embedder(HSV_ONLY) as embedder:
        queries = [embedder.prepare(im) for im in photos.values()]
        for _ in range(2):
            embedder.embed_inputs(queries[:2])
            embedder.embed_inputs(queries[:1])  # one query alone is not shared load
        assert fake.compiles == []
        embedder.embed_inputs(queries[:2])
        assert fake.compiles == [True]
        embedder.embed_inputs(queries[:2])
        assert fake.compiles == [True]  # asked once; the model compiles once anyway


def test_the_windows_of_one_query_are_not_shared_load(
    fake: FakeNeural, monkeypatch: pytest.MonkeyPatch, photos: dict[str, Image.Image]
) -> None:
    """'Look inside' embeds one query's windows as a batch: no compile starts for them."""
    monkeypatch.setattr(pipeline, "COMPILE_AFTER_SHARED_BATCHES", 2)
    with Embedder(HSV_ONLY) as embedder:
        windows = [embedder.prepare(im) for im in photos.values()]
        for _ in range(4):
            out = embedder.embed_inputs(windows, candidates=True)
        assert len(out) == len(windows)
        assert fake.compiles == []
        embedder.embed_inputs(windows[:2])
        embedder.embed_inputs(windows[:2])
        assert fake.compiles == [True]


def test_full_query_batches_get_their_own_int8_compile(
    fake: FakeNeural, monkeypatch: pytest.MonkeyPatch, photos: dict[str, Image.Image]
) -> None:
    monkeypatch.setattr(pipeline, "STATIC_AFTER_FULL_BATCHES", 2)
    with Embedder(HSV_ONLY) as embedder:
        queries = [embedder.prepare(im) for im in photos.values()]  # 3: a full batch
        embedder.embed_inputs(queries)
        embedder.embed_inputs(queries)
        assert fake.batch_sizes == []  # not int8: nothing to gain
        fake.int8 = True
        embedder.embed_inputs(queries[:2])  # not full: not counted
        assert fake.batch_sizes == []
        embedder.embed_inputs(queries)
        assert fake.batch_sizes == [3]


def test_text_goes_to_the_model_that_embeds_text(
    fake: FakeNeural, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Reader(FakeNeural):
        def embed_text(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), self.dim), np.float32) / 2

    reader = Reader()
    models: list[object] = [reader, fake]
    assert [isinstance(m, TextEmbedder) for m in models] == [True, False]
    monkeypatch.setattr(pipeline, "load_models", lambda config: LoadedModels(models=[reader]))
    with Embedder(HSV_ONLY) as embedder:
        assert embedder.embed_text(["a cat"]).shape == (1, reader.dim)


class Gate(threading.Event):
    """The readers' gate (``Embedder._cores_free``), telling when a reader waits at it shut."""

    def __init__(self) -> None:
        super().__init__()
        self.set()
        self.reader_held = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        if not self.is_set():
            self.reader_held.set()
        return super().wait(timeout)


@pytest.mark.parametrize("int8_on", [True, False], ids=["int8", "bf16"])
def test_readers_hold_back_while_an_int8_model_infers(
    int8_on: bool, fake: FakeNeural, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate itself (the speed-up is bench/index_throughput.py's): no decode starts while
    a model marked int8 embeds; with no int8 model, decoding overlaps inference.

    One reader, batches of 4. The reader's first file of the second batch (04.jpg) finishes
    only once the first batch is being embedded, so its next file (05.jpg) is reached while
    that batch is embedded, never before: held at the gate, or decoded meanwhile."""
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"{i:02d}.jpg")
        solid((20 * i, 100, 50), (24, 16)).save(paths[-1], quality=90)
    fake.int8 = int8_on
    gate = Gate()
    embedding = threading.Event()  # the first batch is being embedded
    decoded_meanwhile: list[str] = []
    overlap = threading.Event()
    plain_decode = pipeline.decode_image

    def decode(path: Path, name: str | None = None, **kwargs: Any) -> Any:
        if name == "04.jpg":
            assert embedding.wait(WAIT_S)
        elif embedding.is_set():
            decoded_meanwhile.append(str(name))
            overlap.set()
        return plain_decode(path, name, **kwargs)

    def first_batch(batch: list[Any]) -> None:
        fake.on_embed = None  # the later batches just embed
        embedding.set()
        assert gate.is_set() is not int8_on  # shut exactly while an int8 model infers
        if int8_on:
            assert gate.reader_held.wait(WAIT_S)
            assert decoded_meanwhile == []
        else:
            assert overlap.wait(WAIT_S)
            assert decoded_meanwhile[0] == "05.jpg"

    fake.on_embed = first_batch
    monkeypatch.setattr(pipeline, "decode_image", decode)
    with Embedder(HSV_ONLY, decode_workers=1) as embedder:
        embedder._cores_free = gate
        results = list(embedder.embed_files([(p.name, p) for p in paths]))
    assert [r.key for r in results] == [p.name for p in paths]
    assert all(
        r.ok and r.vectors is not None and set(r.vectors) == {"fake-neural", "hsv-8x8x8"}
        for r in results
    )
    assert gate.is_set()


@pytest.mark.parametrize(
    ("compile_s", "files", "compiles"), [(1e-6, 60, [True]), (1e6, 60, []), (1e-6, 40, [])]
)
def test_an_index_run_compiles_only_where_the_rule_says_it_pays(
    fake: FakeNeural, tmp_path: Path, compile_s: float, files: int, compiles: list[bool]
) -> None:
    """Decided once, after the run's first batches (embedder.compile_rule): a negligible
    compile pays on 60 files; an endless one never; 40 files are too few to even ask."""
    fake.compile_estimate = compile_s
    path = tmp_path / "red.png"
    path.write_bytes(encode(solid((220, 20, 20), (16, 16)), "PNG"))
    with Embedder(HSV_ONLY) as embedder:
        results = list(embedder.embed_files([(str(i), path) for i in range(files)]))
        assert len(results) == files and all(r.ok for r in results)
        assert fake.compiles == compiles


@pytest.mark.parametrize(
    ("compile_mode", "compile_s", "files", "index_only", "settled_after"),
    [
        # So slow to compile that no machine would gain on 60 files: from the start.
        ("auto", 1e6, 60, True, [0]),
        # It could pay on a slow machine; the first batches here are fast: once decided.
        ("auto", 1.0, 60, True, [12]),
        ("auto", 1e-6, 60, True, []),  # it compiles: the weights stay as they are
        ("auto", 1e-6, 40, True, [0]),  # too few files to compile at all
        ("off", 1e-6, 60, True, [0]),
        ("auto", 1e6, 60, False, []),  # a server (not index-only) may compile later
    ],
)
def test_an_index_only_run_that_stays_eager_settles_its_models(
    fake: FakeNeural,
    tmp_path: Path,
    compile_mode: str,
    compile_s: float,
    files: int,
    index_only: bool,
    settled_after: list[int],
) -> None:
    """bf16 weights only (TorchModel.settle_eager) from the start when the run can never
    compile, else once the rule decided against it (after 48 files: 12 batches of 4)."""
    fake.compile_estimate = compile_s
    path = tmp_path / "red.png"
    path.write_bytes(encode(solid((220, 20, 20), (16, 16)), "PNG"))
    config = dataclasses.replace(HSV_ONLY, compile=compile_mode, index_only=index_only)
    with Embedder(config) as embedder:
        results = list(embedder.embed_files([(str(i), path) for i in range(files)]))
        assert len(results) == files and all(r.ok for r in results)
        assert fake.settled_after == settled_after


def test_an_upload_never_compiles(fake: FakeNeural, tmp_path: Path) -> None:
    fake.compile_estimate = 1e-6
    path = tmp_path / "red.png"
    path.write_bytes(encode(solid((220, 20, 20), (16, 16)), "PNG"))
    with Embedder(HSV_ONLY) as embedder:
        list(embedder.embed_files([("upload", path)]))
        list(embedder.embed_files(iter([(str(i), path) for i in range(80)])))  # size unknown
        assert fake.compiles == []


def test_prepare_for_some_roles_embeds_only_their_models(
    embedder: Embedder, photos: dict[str, Image.Image]
) -> None:
    """'Look inside' embeds its windows with some models only (engine.query.regions)."""
    images = list(photos.values())[:2]
    some = embedder.embed_inputs([embedder.prepare(im, {"hsv"}) for im in images])
    every = embedder.embed_inputs([embedder.prepare(im) for im in images])
    assert [set(v) for v in some] == [{"hsv-8x8x8"}] * 2
    assert [set(v) for v in every] == [{"effnet-lite0", "hsv-8x8x8"}] * 2
    for a, b in zip(some, every, strict=True):
        np.testing.assert_allclose(a["hsv-8x8x8"], b["hsv-8x8x8"], atol=1e-6)
