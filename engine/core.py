"""The engine: composes settings, store, mirror and embedder into the use cases.

Everything heavy is opened lazily, so ``lookalike index`` on an unchanged folder never loads
a model, and ``lookalike status`` never imports torch.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import outage, search
from engine.errors import STORE_DOWN, BadInput, Busy, ConfigError, StoreUnavailableError
from engine.indexing import Indexer, IndexReport, Progress
from engine.library import FileStat, PathKeys, scan
from engine.outage import StoreHealth
from engine.plan import Current, plan_index
from engine.search import SearchResult
from engine.settings import Settings
from store.base import Filter, Record, Store, StoreUnavailable

if TYPE_CHECKING:
    import numpy as np

    from embedder.pipeline import Embedder
    from engine.batching import Batcher
    from store.mirror import Mirror
    from store.mirror_payloads import PayloadCache

log = logging.getLogger(__name__)

EMBEDDING_META = "embedding"


class Engine:
    def __init__(self, settings: Settings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.keys = PathKeys(settings.library_dir)
        self._store = store
        self._embedder: Embedder | None = None
        self._mirror: Mirror | None = None
        self._open_lock = threading.RLock()
        # One index/reconcile at a time per process. Re-entrant: an upload holds it from
        # before it writes its files until they are indexed (see ``writing``).
        self._index_lock = threading.RLock()
        self.applied_migrations: list[str] = []
        self._migrated = False
        self.health = StoreHealth()  # searches go on from the mirror while the store is down
        self._payloads: PayloadCache | None = None
        self._payloads_lock = threading.Lock()  # not _open_lock: loading it blocks no search
        self._models: list[dict[str, Any]] | None = None  # fixed once the embedder loaded
        self._batcher: Batcher[dict[str, Any], dict[str, np.ndarray]] | None = None

    # -- lazily opened parts --------------------------------------------------------------
    @property
    def store(self) -> Store:
        with self._open_lock:
            if self._store is None or not self._migrated:
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
            if not self._migrated:  # also for a store handed in by the caller
                self.applied_migrations = self._apply_migrations(self._store)
                self._migrated = True
            return self.applied_migrations

    @staticmethod
    def _apply_migrations(store: Store) -> list[str]:
        from embedder.registry import KNOWN_VECTORS
        from migrations import apply_pending

        applied = apply_pending(store, dict(KNOWN_VECTORS))
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
        self._models = models  # searches need no store round trip (nor a store) for these

    def active_models(self) -> list[dict[str, Any]]:
        """The models in use, without loading them when this configuration was seen before."""
        if self._models is not None and self._embedder is not None:
            return list(self._models)
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

    def calibrated(self) -> tuple[dict[str, float], float | None]:
        """Default fusion weights and near-duplicate threshold for the active models, as
        chosen on the quality benchmark (engine/calibration.json, see bench/QUALITY.md)."""
        from engine.calibration import defaults_for

        return defaults_for({m["role"]: m["name"] for m in self.active_models()})

    def default_weights(self) -> dict[str, float]:
        return self.calibrated()[0]

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

    @property
    def query_batcher(self) -> Batcher[dict[str, Any], dict[str, np.ndarray]]:
        """Embeds the query images of concurrent searches together."""
        with self._open_lock:
            if self._batcher is None:
                from engine.batching import Batcher

                self._batcher = Batcher(
                    self.embedder.embed_inputs,
                    max_batch=self.settings.search_batch_max,
                    max_wait_s=self.settings.search_batch_wait_ms / 1e3,
                    max_gather_s=self.settings.search_batch_gather_ms / 1e3,
                    name="query-batcher",
                )
            return self._batcher

    @property
    def payloads(self) -> PayloadCache:
        """Display payloads of the mirror's points: what hits show while the store is down,
        and the duplicates report's payloads. Loaded on first use (the server loads it right
        after /ready, so start-up does not wait for it)."""
        with self._payloads_lock:
            if self._payloads is None:
                from store.mirror_payloads import PayloadCache

                cache = PayloadCache.load(self.settings.data_dir / "mirror_payloads.msgpack")
                try:
                    cache.sync(self.mirror.revs(), self.store.retrieve)
                    cache.save()
                except StoreUnavailable as exc:  # keep what was saved; the next sync fills it
                    self.health.failed(exc)
                self._payloads = cache
            return self._payloads

    def loaded_payloads(self) -> PayloadCache | None:
        """The payload cache if it is loaded, without loading it."""
        return self._payloads

    @contextmanager
    def writing(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the index lock, waiting at most ``timeout`` seconds for a running index to
        finish (then ``Busy``). Refuses at once while the store is known to be down, so a
        write fails before it has touched the library folder."""
        if self.health.down and not self.check_store():
            raise StoreUnavailableError(STORE_DOWN)
        if not self._index_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise Busy(
                f"The library is being re-indexed and stayed busy for {timeout:.0f} s; "
                "try again when the reindex job has finished."
            )
        try:
            yield
        finally:
            self._index_lock.release()

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
        # Scan under the lock too: a file an upload writes between this scan and the plan
        # would otherwise look deleted, and its fresh point would be dropped.
        with self._index_lock:
            desired = scan(folder, self.keys)

            def in_scope(key: str) -> bool:
                # Files of folders outside the library are keyed by absolute path: the
                # library's own scope ('') must not claim them, or indexing the library
                # would delete what `lookalike index /elsewhere` added.
                return key.startswith(scope) and (bool(scope) or key[:1] != "/" or key in desired)

            return self._index(desired, in_scope, tags, progress)

    def index_files(
        self, paths: Sequence[Path], *, tags: Sequence[str] = (), progress: Progress | None = None
    ) -> IndexReport:
        """Index exactly these files (uploads), leaving the rest of the library alone."""
        desired = {}
        for p in paths:
            st = p.stat()
            desired[self.keys.key(p)] = FileStat(st.st_size, st.st_mtime_ns)
        return self._index(desired, desired.__contains__, tags, progress, only=list(desired))

    def unindex_files(self, paths: Sequence[Path]) -> IndexReport:
        """Drop these files' claims (an upload rolled back after its files were removed)."""
        keys = {self.keys.key(p) for p in paths}
        return self._index({}, keys.__contains__, (), None, only=sorted(keys))

    def _index(
        self,
        desired: dict[str, FileStat],
        in_scope: Callable[[str], bool],
        tags: Sequence[str],
        progress: Progress | None,
        *,
        only: Sequence[str] | None = None,
    ) -> IndexReport:
        """``only``: the run concerns just these keys (uploads), so only the points listing
        them are read, not the whole store (0.6-1.1 s a call at 100k points)."""
        # A file name that is not valid UTF-8 cannot be written in a payload (JSON): one
        # such file used to abort the whole run. Skip it and say so instead.
        unnamed = [key for key in desired if not _storable(key)]
        desired = {k: v for k, v in desired.items() if k not in unnamed} if unnamed else desired
        with self._index_lock:
            fields = ["files", "vectors", "tags"]
            if only is None:
                points: Iterable[Record] = self.store.scroll(with_payload=fields)
            else:
                keys = [k for k in only if _storable(k)]
                scope = Filter(paths=keys)
                points = self.store.scroll(scope, with_payload=fields) if keys else ()
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
            report.scanned += len(unnamed)
            report.failed += [(_printable(k), UNNAMED) for k in unnamed]
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
        self.payloads.sync(mirror.revs(), self.store.retrieve)
        if changed or removed:
            mirror.save()
        self.payloads.save()  # a no-op unless an entry changed
        return changed

    # -- searches (engine.search) -------------------------------------------------------------
    def search_image(self, data: bytes, **kw: Any) -> SearchResult:
        """Images like the picture in ``data`` (optionally a ``box`` region of it)."""
        return search.by_image(self, data, **kw)

    def search_text(self, text: str, **kw: Any) -> SearchResult:
        """Images matching a sentence (needs CLIP)."""
        return search.by_text(self, text, **kw)

    def search_id(self, point_id: str, **kw: Any) -> SearchResult:
        """Images like a stored one."""
        return search.by_id(self, point_id, **kw)

    def search_vectors(self, vectors: dict[str, np.ndarray], **kw: Any) -> SearchResult:
        return search.by_vectors(self, vectors, **kw)

    def check_store(self) -> bool:
        """Whether the store answers (see ``engine.outage.check_store``)."""
        return outage.check_store(self)

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
            "default_weights": self.calibrated()[0],
            "near_duplicate_threshold": self.calibrated()[1],
            "models_loaded": self.models_loaded,
            # Read without loading: precision, compiled and int8 change while serving.
            "inference": self._embedder.runtime() if self._embedder is not None else {},
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
            if self._payloads is not None:
                self._payloads.save()
            if self._batcher is not None:
                self._batcher.close()
                self._batcher = None
            if self._embedder is not None:
                self._embedder.close()
            if self._store is not None:
                self._store.close()
            self._mirror = self._embedder = self._store = None


UNNAMED = "the file name is not valid UTF-8, so it cannot be stored; rename the file"


def _storable(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes, kept by Python as lone surrogates
        return False
    return True


def _printable(key: str) -> str:
    """The name's original bytes, the undecodable ones written as escapes (\\xe9)."""
    return os.fsencode(key).decode("utf-8", "backslashreplace")
