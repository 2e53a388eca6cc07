"""The engine: composes settings, store, mirror and embedder into the use cases.

Everything heavy is opened lazily, so ``lookalike index`` on an unchanged folder never loads
a model, and ``lookalike status`` never imports torch.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BadInput, ConfigError, NotFound, StoreUnavailableError
from engine.indexing import Indexer, IndexReport, Progress
from engine.library import FileStat, PathKeys, scan
from engine.plan import Current, plan_index
from engine.search import SearchHit, SearchResult, check_k, check_weights
from engine.settings import Settings
from store.base import Filter, Store, StoreUnavailable

if TYPE_CHECKING:
    import numpy as np

    from embedder.pipeline import Embedder
    from store.mirror import Mirror

log = logging.getLogger(__name__)

EMBEDDING_META = "embedding"
ROLE_ORDER = ("clip", "cnn", "hsv")


class Engine:
    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.keys = PathKeys(settings.library_dir)
        self._store = store
        self._embedder: Embedder | None = None
        self._mirror: Mirror | None = None
        self._open_lock = threading.RLock()
        self._index_lock = threading.Lock()  # one index/reconcile at a time per process
        self.applied_migrations: list[str] = []

    # -- lazily opened parts --------------------------------------------------------------
    @property
    def store(self) -> Store:
        with self._open_lock:
            if self._store is None:
                self.open_store()
            assert self._store is not None
            return self._store

    def open_store(self) -> list[str]:
        """Open the store (once) and apply pending migrations; returns those applied."""
        with self._open_lock:
            if self._store is None:
                from store import open_store

                self.settings.data_dir.mkdir(parents=True, exist_ok=True)
                try:
                    self._store = open_store(self.settings.store_config())
                except StoreUnavailable as exc:
                    raise StoreUnavailableError(str(exc)) from exc
                self.applied_migrations = self.migrate()
            return self.applied_migrations

    def migrate(self) -> list[str]:
        from embedder.registry import KNOWN_VECTORS
        from migrations import apply_pending

        applied = apply_pending(self.store, dict(KNOWN_VECTORS))
        for name in applied:
            log.info("applied migration %s", name)
        return applied

    @property
    def embedder(self) -> Embedder:
        with self._open_lock:
            if self._embedder is None:
                from embedder.pipeline import Embedder

                embedder = Embedder(self.settings.model_config_for_embedder())
                embedder.load()
                if not embedder.models:
                    raise ConfigError(
                        "No embedding model is active: enable at least one of "
                        "LOOKALIKE_CLIP_WEIGHTS, LOOKALIKE_CNN or LOOKALIKE_HSV."
                    )
                self._embedder = embedder
                self._record_models(embedder)
            return self._embedder

    @property
    def models_loaded(self) -> bool:
        return self._embedder is not None

    def _config_key(self) -> str:
        s = self.settings
        return json.dumps([s.clip_weights, s.cnn, s.cnn_weights, s.hsv])

    def _record_models(self, embedder: Embedder) -> None:
        models = [
            {
                "role": m.role,
                "name": m.name,
                "dim": m.dim,
                "weights": m.weights.source,
                "fallback": m.weights.fallback,
                "reason": m.weights.reason,
            }
            for m in embedder.models
        ]
        # 'roles' also lists roles that are off (after a fallback), with the reason.
        roles = [st.as_dict() for st in embedder.status]
        value = {"config_key": self._config_key(), "models": models, "roles": roles}
        if self.store.get_meta(EMBEDDING_META) != value:
            self.store.set_meta(EMBEDDING_META, value)

    def active_models(self) -> list[dict[str, Any]]:
        """The models in use, without loading them when this configuration was seen before."""
        if self._embedder is None:
            meta = self.store.get_meta(EMBEDDING_META)
            if meta and meta.get("config_key") == self._config_key():
                return list(meta["models"])
            self._record_models(self.embedder)
        meta = self.store.get_meta(EMBEDDING_META)
        return list(meta["models"]) if meta else []

    def model_roles(self) -> list[dict[str, Any]]:
        """Every role, including those turned off, with fallback reasons (for status/UI)."""
        self.active_models()
        meta = self.store.get_meta(EMBEDDING_META) or {}
        return list(meta.get("roles") or meta.get("models") or [])

    def vector_tags(self) -> list[str]:
        return [f"{m['name']}@{m['weights']}" for m in self.active_models()]

    @property
    def mirror(self) -> Mirror:
        with self._open_lock:
            if self._mirror is None:
                from store.mirror import Mirror

                blocks = [(m["name"], int(m["dim"])) for m in self.active_models()]
                path = self.settings.data_dir / "mirror"
                mirror = Mirror.load(path, blocks)
                if mirror is None:
                    mirror = Mirror(path, blocks)
                    mirror.full_diff(self.store)
                elif mirror.catch_up(self.store):
                    mirror.save()
                self._mirror = mirror
            return self._mirror

    # -- use cases ----------------------------------------------------------------------
    def index(
        self,
        folder: Path | None = None,
        *,
        tags: Sequence[str] = (),
        progress: Progress | None = None,
    ) -> IndexReport:
        folder = (folder or self.settings.library_dir).resolve()
        if not folder.is_dir():
            raise BadInput(f"{folder} is not a folder.")
        scope = self.keys.scope(folder)
        return self._index(
            scan(folder, self.keys), lambda key: key.startswith(scope), tags, progress
        )

    def index_files(
        self, paths: Sequence[Path], *, tags: Sequence[str] = (), progress: Progress | None = None
    ) -> IndexReport:
        """Index exactly these files (uploads), leaving the rest of the library alone."""
        desired = {}
        for p in paths:
            st = p.stat()
            desired[self.keys.key(p)] = FileStat(st.st_size, st.st_mtime_ns)
        return self._index(desired, desired.__contains__, tags, progress)

    def _index(
        self,
        desired: dict[str, FileStat],
        in_scope: Callable[[str], bool],
        tags: Sequence[str],
        progress: Progress | None,
    ) -> IndexReport:
        with self._index_lock:
            points = self.store.scroll(with_payload=["files", "vectors", "tags"])
            current = Current.from_payloads(((r.id, r.payload) for r in points), in_scope)
            plan = plan_index(current, desired, self.vector_tags(), tags)
            log.info("index plan: %s", plan.summary())
            indexer = Indexer(
                store=self.store,
                keys=self.keys,
                embed=self._embed_files,
                vector_tags=self.vector_tags,
                tags=tuple(tags),
                progress=progress,
            )
            report = indexer.apply(plan, desired)
            if not plan.is_empty:
                self.sync_mirror(removed=indexer.deleted_ids)
            return report

    def _embed_files(self, items: Sequence[tuple[str, Path]]) -> Any:
        return self.embedder.embed_files(items)

    def sync_mirror(self, *, full: bool = False, removed: Sequence[str] | set[str] = ()) -> int:
        mirror = self.mirror
        if removed:
            mirror.remove(list(removed))
        changed = mirror.catch_up(self.store)
        if full:
            added, dropped = mirror.full_diff(self.store)
            changed += added + dropped
        if changed or removed:
            mirror.save()
        return changed

    def search_image(
        self,
        data: bytes,
        *,
        name: str = "query",
        k: int = 10,
        weights: dict[str, float] | None = None,
        flt: Filter | None = None,
        box: tuple[int, int, int, int] | None = None,
    ) -> SearchResult:
        from embedder.decode import decode_image
        from embedder.errors import DecodeError
        from engine.errors import UndecodableImage

        t0 = time.perf_counter()
        try:
            decoded = decode_image(data, name)
        except DecodeError as exc:
            raise UndecodableImage(str(exc)) from exc
        image = decoded.image
        if box is not None:
            image = _crop(image, box, (decoded.width, decoded.height))
        t1 = time.perf_counter()
        vectors = {n: v[0] for n, v in self.embedder.embed_images([image]).items()}
        t2 = time.perf_counter()
        result = self.search_vectors(vectors, k=k, weights=weights, flt=flt)
        result.timings = {
            "decode_ms": (t1 - t0) * 1e3,
            "embed_ms": (t2 - t1) * 1e3,
            "search_ms": result.timings["search_ms"],
        }
        return result

    def search_id(self, point_id: str, **kw: Any) -> SearchResult:
        records = self.store.retrieve([point_id], with_vectors=True)
        if not records:
            raise NotFound(f"No image with id {point_id}.")
        return self.search_vectors(records[0].vectors, **kw)

    def search_vectors(
        self,
        vectors: dict[str, np.ndarray],
        *,
        k: int = 10,
        weights: dict[str, float] | None = None,
        flt: Filter | None = None,
    ) -> SearchResult:
        from engine.search import DEFAULT_WEIGHTS

        k = check_k(k)
        role_weights = check_weights(weights if weights is not None else DEFAULT_WEIGHTS)
        models = {m["role"]: m["name"] for m in self.active_models()}
        used = {r: w for r, w in role_weights.items() if r in models and models[r] in vectors}
        if not any(used.values()):
            raise BadInput(
                "Every weight is zero for the models in use "
                f"({', '.join(models) or 'none'}): give at least one a positive weight."
            )
        t0 = time.perf_counter()
        allowed = None
        if flt is not None and not flt.is_empty():
            allowed = [r.id for r in self.store.scroll(flt, with_payload=False)]
        name_weights = {models[r]: w for r, w in used.items()}
        found = self.mirror.search(vectors, name_weights, k, allowed=allowed)
        payloads = {r.id: r.payload for r in self.store.retrieve([h.id for h in found])}
        t1 = time.perf_counter()
        role_of = {name: role for role, name in models.items()}
        hits = [
            SearchHit(
                id=h.id,
                path=(payloads[h.id].get("paths") or [""])[0],
                score=float(h.score),
                scores={role_of[n]: float(s) for n, s in h.scores.items() if n in role_of},
                payload=payloads[h.id],
            )
            for h in found
            if h.id in payloads  # deleted since the mirror last caught up
        ]
        return SearchResult(
            hits=hits,
            timings={"search_ms": (t1 - t0) * 1e3},
            models=models,
            weights=used,
        )

    def status(self) -> dict[str, Any]:
        store = self.store
        models = self.active_models()
        mirror = self.mirror
        return {
            "points": store.count(),
            "backend": store.backend,
            "data_dir": str(self.settings.data_dir.resolve()),
            "library_dir": str(self.settings.library_dir.resolve()),
            "models": models,
            "roles": self.model_roles(),
            "models_loaded": self.models_loaded,
            "mirror": {"points": len(mirror), "watermark": mirror.watermark},
            "mirror_lag": mirror.lag(store),
        }

    def reconcile(self, *, progress: Progress | None = None) -> dict[str, Any]:
        """Folder -> store (an index of the library), then store -> mirror (full id diff)."""
        report = self.index(self.settings.library_dir, progress=progress)
        changed = self.sync_mirror(full=True)
        return {"index": report.as_dict(), "mirror_changes": changed}

    def close(self) -> None:
        with self._open_lock:
            if self._mirror is not None:
                self._mirror.save()
            if self._embedder is not None:
                self._embedder.close()
            if self._store is not None:
                self._store.close()
            self._mirror = self._embedder = self._store = None


def _crop(image: Any, box: tuple[int, int, int, int], size: tuple[int, int]) -> Any:
    """Crop by a box given in the original image's pixels. Large JPEGs are decoded at a
    reduced size (draft mode), so the box is scaled to the decoded image."""
    x, y, w, h = box
    width, height = size
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise BadInput(
            f"The box {list(box)} (x, y, width, height) must lie inside the {width}x{height} image."
        )
    sx, sy = image.width / width, image.height / height
    left, top = round(x * sx), round(y * sy)
    right = max(left + 1, round((x + w) * sx))
    bottom = max(top + 1, round((y + h) * sy))
    return image.crop((left, top, right, bottom))
