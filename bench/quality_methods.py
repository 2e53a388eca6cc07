"""What bench/quality.py compares: Lookalike's models and the hash peers, computed in one pass.

Each image is made once (edits cost more than hashing) and handed to every method that still
needs it. Neural models go through ``Embedder.embed_images`` in batches, as indexing does.
Results are cached per method under the run's cache folder, keyed by the data fingerprint and,
for models, by the weights. Cached model vectors are spot-checked against a fresh embedding of
a few images: a change in embedder/ (preprocessing, pooling) then recomputes them instead of
silently reusing stale vectors, while an edit that changes no vector keeps the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.quality_data import Item, iter_images

log = logging.getLogger(__name__)

BATCH = 64


@dataclass
class ModelMethod:
    """One Lookalike model, loaded alone in its own Embedder."""

    role: str
    name: str  # model identity, e.g. 'effnet-lite0'
    weights: str  # WeightsInfo.source, e.g. 'bundled'
    embedder: Any  # embedder.pipeline.Embedder

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.weights}".replace("/", "_").replace(":", "_")


@dataclass(frozen=True)
class Unmeasured:
    role: str
    name: str
    reason: str


def load_models(
    roles: Sequence[str] = ("clip", "cnn", "hsv"),
) -> tuple[list[ModelMethod], list[Unmeasured]]:
    """Every model whose real weights load here; the others with the reason.

    strict loading: a missing checkpoint raises instead of falling back, and 'random' weights
    are refused, so no figure is ever measured on weights that mean nothing. The settings
    (LOOKALIKE_MODEL_CACHE_DIR, a checkpoint path in LOOKALIKE_CLIP_WEIGHTS, ...) are honoured,
    so a machine with the weights measures CLIP and ResNet-50 too.
    """
    from embedder.config import ModelConfig
    from embedder.errors import ModelLoadError
    from embedder.pipeline import Embedder
    from engine.settings import get_settings

    s = get_settings()
    base = dataclasses.replace(s.model_config_for_embedder(), strict=True, batch_size=32)
    real = {"off", "random"}
    clip_w = s.clip_weights if s.clip_weights not in real else "openai"
    cnn_w = s.cnn_weights if s.cnn_weights not in real else "imagenet"
    wanted: list[tuple[str, str, ModelConfig]] = []
    off = {"clip_weights": "off", "cnn": "off", "hsv": False}
    if "clip" in roles:
        wanted.append(("clip", "clip-vit-b-32", _cfg(base, off, clip_weights=clip_w)))
    if "cnn" in roles:
        # ResNet-50 first: it is the configured default where its weights are present.
        resnet_w = cnn_w if s.cnn == "resnet50" else "imagenet"
        wanted.append(("cnn", "resnet50", _cfg(base, off, cnn="resnet50", cnn_weights=resnet_w)))
        lite_w = cnn_w if s.cnn == "effnet-lite0" else "imagenet"
        wanted.append(
            ("cnn", "effnet-lite0", _cfg(base, off, cnn="effnet-lite0", cnn_weights=lite_w))
        )
    if "hsv" in roles:
        wanted.append(("hsv", "hsv-8x8x8", _cfg(base, off, hsv=True)))

    loaded, missing = [], []
    for role, name, cfg in wanted:
        emb = Embedder(cfg)
        try:
            # torch.hub announces downloads on stdout, which carries only the JSON result.
            with contextlib.redirect_stdout(sys.stderr):
                emb.load()
        except ModelLoadError as exc:
            missing.append(Unmeasured(role, name, f"not measured: weights unavailable ({exc})"))
            continue
        st = next(x for x in emb.status if x.role == role)
        if st.name != name or st.fallback or st.weights in (None, "random"):
            missing.append(Unmeasured(role, name, f"not measured: got {st.name}@{st.weights}"))
            continue
        loaded.append(ModelMethod(role, name, str(st.weights), emb))
    return loaded, missing


def _cfg(base: Any, off: dict[str, Any], **kw: Any) -> Any:
    return dataclasses.replace(base, **{**off, **kw})


SPOT_CHECK = 6  # images re-embedded to validate a model's cached vectors
SPOT_MIN_COS = 0.999  # float noise between runs stays far above this


def _still_valid(model: ModelMethod, items: Sequence[Item], cached: np.ndarray) -> bool:
    picks = np.linspace(0, len(items) - 1, min(SPOT_CHECK, len(items))).round().astype(int)
    chosen = [items[int(i)] for i in picks]
    images = [im for _, im in iter_images(chosen)]
    fresh = model.embedder.embed_images(images)[model.name]
    cos = np.sum(fresh * cached[picks], axis=1)
    return bool(np.all(cos >= SPOT_MIN_COS))


# --- hash peers ----------------------------------------------------------------------------
HashFn = Callable[[Image.Image], np.ndarray]


def hash_peers() -> tuple[dict[str, HashFn], list[str]]:
    """name -> image -> bits (bool array); and notes on peers that cannot run here."""
    peers: dict[str, HashFn] = {}
    notes = []
    try:
        import imagehash

        peers["imagehash-phash"] = lambda im: imagehash.phash(im).hash.ravel()
        peers["imagehash-dhash"] = lambda im: imagehash.dhash(im).hash.ravel()
    except ImportError:
        notes.append("imagehash not installed (pip install -e '.[bench]')")
    try:
        # The hashing module only: imagededup's CNN method is a MobileNet that would download.
        from imagededup.methods import AHash, DHash, PHash, WHash

        for cls in (PHash, DHash, WHash, AHash):
            peers[f"imagededup-{cls.__name__.lower()}"] = _dedup_fn(cls(verbose=False))
    except ImportError:
        notes.append("imagededup not installed (pip install -e '.[bench]')")
    return peers, notes


def _dedup_fn(hasher: Any) -> HashFn:
    def fn(im: Image.Image) -> np.ndarray:
        hexa = hasher.encode_image(image_array=np.asarray(im))
        return np.unpackbits(np.frombuffer(bytes.fromhex(hexa), np.uint8)).astype(bool)

    return fn


def hash_similarity(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    """1 - hamming / bits for every (query, db) pair, by two matrix products."""
    qf, df = q.astype(np.float32), d.astype(np.float32)
    hamming = qf @ (1.0 - df).T + (1.0 - qf) @ df.T
    return (1.0 - hamming / q.shape[1]).astype(np.float32)


# --- one pass, cached ----------------------------------------------------------------------
def compute(
    items: Sequence[Item],
    models: Sequence[ModelMethod],
    peers: dict[str, HashFn],
    cache_dir: Path,
    fingerprint: str,
    *,
    hash_keys: set[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """{method: (len(items), dim) array} and images/s per method, computing what is not cached.

    Hashes are computed only for ``hash_keys`` (the copy-detection images; the category set
    is for the CNN); their rows elsewhere stay zero.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    files = {m.name: cache_dir / f"{m.tag}-{fingerprint}.npy" for m in models}
    files |= {p: cache_dir / f"{p}-{fingerprint}.npy" for p in peers}
    out = {k: np.load(f) for k, f in files.items() if f.is_file()}
    for m in models:
        if m.name in out and not _still_valid(m, items, out[m.name]):
            log.warning("%s: cached vectors differ from a fresh embedding; recomputing", m.name)
            del out[m.name]
    todo_models = [m for m in models if m.name not in out]
    todo_peers = {p: fn for p, fn in peers.items() if p not in out}
    speed: dict[str, float] = {}
    if not todo_models and not todo_peers:
        return out, speed
    log.info(
        "computing %s for %d images",
        [*map(str, todo_peers), *(m.name for m in todo_models)],
        len(items),
    )
    rows: dict[str, list[np.ndarray]] = {m.name: [] for m in todo_models}
    bits: dict[str, np.ndarray] = {}
    spent = dict.fromkeys([*rows, *todo_peers], 0.0)
    batch: list[Image.Image] = []
    done = 0
    for n, (item, image) in enumerate(iter_images(items)):
        if hash_keys is None or item.key in hash_keys:
            for p, fn in todo_peers.items():
                t0 = time.perf_counter()
                h = fn(image)
                spent[p] += time.perf_counter() - t0
                bits.setdefault(p, np.zeros((len(items), h.size), bool))[n] = h
        batch.append(image)
        if len(batch) == BATCH or n == len(items) - 1:
            for m in todo_models:
                t0 = time.perf_counter()
                rows[m.name].append(m.embedder.embed_images(batch)[m.name])
                spent[m.name] += time.perf_counter() - t0
            done += len(batch)
            batch = []
            if done % (BATCH * 20) == 0:
                log.info("%d / %d images", done, len(items))
    n_hashed = len(items) if hash_keys is None else len(hash_keys)
    for m in todo_models:
        out[m.name] = np.concatenate(rows[m.name]).astype(np.float32)
        speed[m.name] = len(items) / max(spent[m.name], 1e-9)
    for p in todo_peers:
        out[p] = bits.get(p, np.zeros((len(items), 64), bool))
        speed[p] = n_hashed / max(spent[p], 1e-9)
    for k in [*rows, *todo_peers]:
        np.save(files[k], out[k])
    return out, speed
