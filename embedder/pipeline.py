"""The embedder: files or images in, named L2-normalised vectors out.

``embed_files`` is a reader -> mapper -> caller pipeline. Reader threads decode and
preprocess (Pillow and numpy, which release the GIL); the calling thread runs inference one
batch at a time, while the readers already work on the next batch; results reach the caller
in input order. An undecodable file becomes a result with an error, never an exception.

Inference blocks, so it must never run on an asyncio event loop: async callers run it in a
worker thread (the API: ``anyio.to_thread.run_sync``); on a loop it raises instead.

Speed settings (``ModelConfig.precision``, ``.compile``, ``.int8``) are applied after loading
to each model that has them (``embedder.base.Accelerated``: the neural ones). With compile
'auto', the models compile in the background, the eager ones working meanwhile, once it pays:
an ``embed_files`` run long enough that compiling makes it faster (embedder.compile_rule,
timed on its first batches, against the compile time recorded here), or
``COMPILE_AFTER_SHARED_BATCHES`` batches of concurrent queries in ``embed_inputs`` (sustained
search load). Single uploads and small jobs stay eager. int8 models compile once more for
the full query batch after ``STATIC_AFTER_FULL_BATCHES`` of them (``add_batch_size``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections import deque
from collections.abc import Collection, Generator, Iterable, Iterator, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from PIL import Image

from embedder import compile_rule
from embedder.base import Accelerated, Model, TextEmbedder
from embedder.compile_rule import CompileGate
from embedder.config import ModelConfig
from embedder.decode import decode_image
from embedder.errors import DecodeError, ModelLoadError
from embedder.keypoints import Features, extract
from embedder.metadata import EmbeddedMetadata
from embedder.palette import dominant_colours
from embedder.registry import LoadedModels, ModelStatus, load_models, planned_models
from embedder.roles import NEURAL_ROLES
from embedder.runtime import set_torch_threads

# Query batches of 2 or more that must have been embedded before 'auto' compiles for serving:
# sustained concurrent load, not a test or a burst that the compile would only slow down.
COMPILE_AFTER_SHARED_BATCHES = 50
# Full query batches (``ModelConfig.query_batch`` images) after which int8 models also compile
# for exactly that size: under sustained load, batches fill up. The compile for any batch size
# repacks int8 weights on every call (CompiledRunner._build_int8): ResNet-50 at batch 8 ~90 ms,
# of which ~47 ms repacking.
STATIC_AFTER_FULL_BATCHES = 50

K = TypeVar("K")
log = logging.getLogger(__name__)


@dataclass
class FileResult(Generic[K]):
    key: K
    vectors: dict[str, np.ndarray] | None  # model name -> (dim,) float32; None on error
    width: int = 0  # original pixel size, after EXIF orientation
    height: int = 0
    format: str = ""
    palette: list[str] = field(default_factory=list)  # dominant colours, '#rrggbb'
    metadata: EmbeddedMetadata = field(default_factory=EmbeddedMetadata)  # words in the file
    # Local features for copy verification (embedder.keypoints); None when turned off.
    features: Features | None = None
    error: DecodeError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.vectors is not None


@dataclass
class _Prepared:
    inputs: dict[str, Any]  # model name -> preprocessed input
    width: int
    height: int
    format: str
    palette: list[str]
    metadata: EmbeddedMetadata
    features: Features | None


class Embedder:
    def __init__(self, config: ModelConfig, *, decode_workers: int | None = None) -> None:
        self.config = config
        self._loaded: LoadedModels | None = None
        self._load_lock = threading.Lock()
        # One inference at a time: concurrent calls would only split the same cores between
        # them (each torch call already uses all intra-op threads) and double peak memory.
        self._infer_lock = threading.Lock()
        # Clear while an int8 model infers: index readers start no decode meanwhile (_infer).
        self._cores_free = threading.Event()
        self._cores_free.set()
        self._decode_workers = max(1, decode_workers or min(4, os.cpu_count() or 1))
        self._shared_batches = 0
        self._full_batches = 0

    # -- models -----------------------------------------------------------------------------
    def load(self) -> None:
        """Resolve weights and load every configured model (idempotent)."""
        with self._load_lock:
            if self._loaded is not None:
                return
            roles = {role for role, _ in planned_models(self.config)}
            if self.config.threads > 0 and roles & NEURAL_ROLES:
                set_torch_threads(self.config.threads)
            loaded = load_models(self.config)
            for model in _accelerated(loaded.models):
                model.tune(
                    self.config.precision,
                    self.config.compile,
                    self.config.int8,
                    self.config.batch_size,
                )
            self._loaded = loaded
            if self.config.compile == "on":
                self.compile(background=False)

    def compile(self, *, background: bool = True) -> None:
        """Compile the neural models, once (no-op with compile 'off')."""
        for model in _accelerated(self._require().models):
            model.start_compile(background=background)

    @property
    def precision(self) -> dict[str, str]:
        """Model name -> the precision its inference runs at."""
        return {m.name: m.precision for m in _accelerated(self.models)}

    def runtime(self) -> dict[str, dict[str, Any]]:
        """Neural model name -> how its inference runs now (``Accelerated.runtime``)."""
        return {m.name: m.runtime() for m in _accelerated(self.models)}

    def _require(self) -> LoadedModels:
        if self._loaded is None:
            self.load()
        assert self._loaded is not None
        return self._loaded

    @property
    def models(self) -> list[Model]:
        return list(self._loaded.models) if self._loaded else []

    @property
    def status(self) -> list[ModelStatus]:
        """One entry per role (clip, cnn, hsv), including roles that are off and why."""
        return list(self._loaded.status) if self._loaded else []

    @property
    def warnings(self) -> list[str]:
        return list(self._loaded.warnings) if self._loaded else []

    def vector_specs(self) -> dict[str, int]:
        return {m.name: m.dim for m in self._require().models}

    # -- inference --------------------------------------------------------------------------
    def embed_images(self, images: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        """RGB images -> {model name: (n, dim) float32}, batched by ``config.batch_size``."""
        _refuse_event_loop("embed_images")
        models = self._require().models
        parts: dict[str, list[np.ndarray]] = {m.name: [] for m in models}
        size = max(1, self.config.batch_size)
        for start in range(0, len(images), size):
            chunk = images[start : start + size]
            inputs = {m.name: [m.preprocess(img) for img in chunk] for m in models}
            for name, vectors in self._infer(models, inputs).items():
                parts[name].append(vectors)
        return {
            m.name: np.concatenate(parts[m.name])
            if parts[m.name]
            else np.zeros((0, m.dim), np.float32)
            for m in models
        }

    def prepare(self, image: Image.Image, roles: Collection[str] | None = None) -> dict[str, Any]:
        """One image's model inputs (thread-safe, no inference): for ``embed_inputs``.
        ``roles``: only the models of these roles ('clip', 'cnn', 'hsv'); None: all."""
        models = self._require().models
        return {m.name: m.preprocess(image) for m in models if roles is None or m.role in roles}

    def embed_inputs(
        self, items: Sequence[dict[str, Any]], *, candidates: bool = False
    ) -> list[dict[str, np.ndarray]]:
        """Inputs from ``prepare`` -> one {model name: (dim,) vector} per item, embedded as
        one batch (callers batch concurrent queries this way: engine.batching).
        ``candidates``: the vectors only propose candidates to an exact check (the windows
        of one query, engine.inside), so a model may run faster (``Model.embed_candidates``);
        such a batch is one query's, not searches arriving together, and starts no compile."""
        _refuse_event_loop("embed_inputs")
        if not items:
            return []
        models = [m for m in self._require().models if m.name in items[0]]  # as prepared
        if len(items) >= 2 and self.config.compile == "auto" and not candidates:
            self._shared_batches += 1
            if self._shared_batches == COMPILE_AFTER_SHARED_BATCHES:
                self.compile(background=True)  # searches keep arriving together
        if len(items) == self.config.query_batch and not candidates:
            self._full_batches += 1
            if self._full_batches >= STATIC_AFTER_FULL_BATCHES:
                for model in _accelerated(models):  # a no-op once asked, or without int8
                    if model.int8:
                        model.add_batch_size(len(items))
        inputs = {m.name: [it[m.name] for it in items] for m in models}
        vectors = self._infer(models, inputs, candidates=candidates)
        return [{name: v[row] for name, v in vectors.items()} for row in range(len(items))]

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> (n, 512) CLIP vectors. Raises ModelLoadError when CLIP is not loaded."""
        _refuse_event_loop("embed_text")
        loaded = self._require()
        clip = next((m for m in loaded.models if isinstance(m, TextEmbedder)), None)
        if clip is None:
            why = next((s.reason for s in loaded.status if s.role == "clip"), None)
            raise ModelLoadError(
                f"Text search needs CLIP, which is not loaded ({why or 'not configured'}). "
                "Set LOOKALIKE_CLIP_WEIGHTS to 'openai' or a checkpoint file.",
                model="clip-vit-b-32",
                setting="LOOKALIKE_CLIP_WEIGHTS",
            )
        with self._infer_lock:
            return clip.embed_text(texts)

    def embed_files(self, items: Iterable[tuple[K, Path]]) -> Generator[FileResult[K], None, None]:
        """Decode, preprocess and embed files; one result per item, in input order.

        Closing the generator early (or dropping it) stops the readers.
        """
        _refuse_event_loop("embed_files")
        models = self._require().models
        batch_size = max(1, self.config.batch_size)
        window = 2 * batch_size  # the batch being embedded and the one being decoded
        source = iter(items)
        pending: deque[tuple[K, Future[_Prepared | DecodeError]]] = deque()
        readers = ThreadPoolExecutor(
            max_workers=self._decode_workers, thread_name_prefix="lookalike-decode"
        )

        prepare = partial(
            _prepare, models, cores_free=self._cores_free, keypoints=self.config.keypoints
        )

        def fill() -> None:
            while len(pending) < window:
                item = next(source, None)
                if item is None:
                    return
                key, path = item
                pending.append((key, readers.submit(prepare, key, Path(path))))

        gate = self._compile_gate(items)
        if (
            self.config.index_only
            and self.config.compile != "on"
            and not (gate and compile_rule.could_pay(gate.total, compile_s=gate.compile_s))
        ):
            self._settle_eager()  # this run will not compile: bf16 weights from the start
            gate = None
        done = 0
        try:
            fill()
            while pending:
                batch = [pending.popleft() for _ in range(min(batch_size, len(pending)))]
                fill()  # readers start on the next batch while this one is embedded
                prepared = [(key, future.result()) for key, future in batch]
                yield from self._embed_prepared(models, prepared)
                done += len(batch)
                if gate is not None and gate.after_batch(done):
                    self.compile(background=True)
                    gate = None
                elif gate is not None and gate.decided:
                    self._settle_eager()  # the rule kept this run eager
                    gate = None
        finally:
            # Reached also when the caller stops early: drop queued work, wait for running.
            readers.shutdown(wait=True, cancel_futures=True)

    def _settle_eager(self) -> None:
        """``index_only``: eager to the end of the process, so bf16 weights only (~220 MB less
        with CLIP and ResNet-50: TorchModel.settle_eager). Called between batches."""
        if self.config.index_only:
            with self._infer_lock:
                settled = [m.name for m in _accelerated(self.models) if m.settle_eager()]
            log.info("Eager bf16 to the end, weights kept in bf16: %s", settled or "none")

    def _compile_gate(self, items: Iterable[Any]) -> CompileGate | None:
        """For a run of known size with compile 'auto' and something left to compile: the
        gate that decides, after the first batches, whether compiling pays (compile_rule)."""
        if self.config.compile != "auto" or not isinstance(items, Sized):
            return None
        if len(items) < compile_rule.MEASURE_AFTER + compile_rule.MEASURE_IMAGES:
            return None  # a single upload or a small job: eager, and no compile
        expected = sum(m.expected_compile_s() for m in _accelerated(self.models))
        return CompileGate(len(items), expected) if expected > 0 else None

    def _embed_prepared(
        self, models: list[Model], prepared: list[tuple[K, _Prepared | DecodeError]]
    ) -> Iterator[FileResult[K]]:
        good = [p for _, p in prepared if isinstance(p, _Prepared)]
        inputs = {m.name: [p.inputs[m.name] for p in good] for m in models}
        vectors = self._infer(models, inputs) if good else {}
        row = 0
        for key, p in prepared:
            if isinstance(p, DecodeError):
                yield FileResult(key=key, vectors=None, error=p)
                continue
            yield FileResult(
                key=key,
                vectors={name: v[row] for name, v in vectors.items()},
                width=p.width,
                height=p.height,
                format=p.format,
                palette=p.palette,
                metadata=p.metadata,
                features=p.features,
            )
            row += 1

    def _infer(
        self, models: list[Model], inputs: dict[str, list[Any]], *, candidates: bool = False
    ) -> dict[str, np.ndarray]:
        with self._infer_lock:
            # int8 kernels synchronise their threads far more often than bf16 ones, so a
            # decode thread that preempts one stalls all: measured on 2 cores, CLIP int8 ran
            # at 65 img/s beside decoding readers, 100 with them held back (index throughput
            # 39 -> 43 img/s); bf16 gained nothing measurable. Readers decode between batches.
            gate = any(m.int8 for m in _accelerated(models))
            if gate:
                self._cores_free.clear()
            try:
                if candidates:
                    return {m.name: m.embed_candidates(inputs[m.name]) for m in models}
                return {m.name: m.embed(inputs[m.name]) for m in models}
            finally:
                self._cores_free.set()

    def close(self) -> None:
        for model in _accelerated(self.models):
            # A compile still running when the interpreter exits aborts the process.
            model.wait_compiled(timeout=300)

    def __enter__(self) -> Embedder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _prepare(
    models: list[Model],
    key: object,
    path: Path,
    cores_free: threading.Event,
    keypoints: bool = False,
) -> _Prepared | DecodeError:
    """Reader side: decode and preprocess one file, and (``keypoints``) extract its local
    features from the same decoded image. Returns (not raises) a DecodeError. Starts only
    while no int8 inference runs (``Embedder._infer``)."""
    cores_free.wait()
    name = key if isinstance(key, str) else str(path)
    try:
        decoded = decode_image(path, name, metadata=True)
        image = decoded.image
        return _Prepared(
            inputs={m.name: m.preprocess(image) for m in models},
            width=decoded.width,
            height=decoded.height,
            format=decoded.format,
            palette=dominant_colours(image),
            metadata=decoded.metadata,
            features=extract(image, size=(decoded.width, decoded.height)) if keypoints else None,
        )
    except DecodeError as exc:
        return exc
    except Exception as exc:  # preprocessing choking on a decodable image is a file problem
        return DecodeError(name, f"the image could not be prepared ({exc})")


def _refuse_event_loop(what: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return  # not on an event loop: blocking is fine here
    raise RuntimeError(
        f"Embedder.{what} blocks for a long time and was called on an asyncio event loop; "
        "run it in a worker thread instead (asyncio.to_thread, anyio.to_thread.run_sync)."
    )


def _accelerated(models: Iterable[Model]) -> list[Accelerated]:
    """The models with speed settings (the neural ones), by what they offer, not their class."""
    return [m for m in models if isinstance(m, Accelerated)]
