"""The heavy parts a process opens at most once, and only when first needed: the store
(which applies pending migrations as it opens) and the embedding models.

``lookalike status`` never imports torch, and ``lookalike index`` over an unchanged folder
never loads a model, because nothing asks for them. The use cases receive the providers
(``Resources.store``, ``Resources.embedder``), never this object.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from engine.errors import ConfigError, StoreUnavailableError
from store.base import Store, StoreConfigError, StoreUnavailable

if TYPE_CHECKING:
    from embedder.pipeline import Embedder
    from engine.settings import Settings

log = logging.getLogger(__name__)


class Resources:
    def __init__(
        self,
        settings: Settings,
        *,
        store: Store | None = None,
        on_models_loaded: Callable[[Embedder], None] | None = None,
        index_only: bool = False,
    ) -> None:
        self._settings = settings
        self._index_only = index_only  # ModelConfig.index_only
        self._store = store  # one handed in (tests, benchmarks) is migrated on first use too
        self._embedder: Embedder | None = None
        self._on_models_loaded = on_models_loaded
        self._migrated = False
        self.applied_migrations: list[str] = []
        self._lock = threading.RLock()

    def store(self) -> Store:
        with self._lock:
            if self._store is None or not self._migrated:
                self.open_store()
            assert self._store is not None
            return self._store

    def open_store(self) -> list[str]:
        """Open the store (once) and apply pending migrations; returns those applied."""
        with self._lock:
            if self._store is None:
                from store import open_store

                self._settings.data_dir.mkdir(parents=True, exist_ok=True)
                try:
                    self._store = open_store(self._settings.store_config())
                except StoreUnavailable as exc:
                    raise StoreUnavailableError(str(exc)) from exc
                except StoreConfigError as exc:  # e.g. LOOKALIKE_EDGE_SHARDS changed
                    raise ConfigError(str(exc)) from exc
            if not self._migrated:
                self.applied_migrations = _migrate(self._store, self._settings.wants_fused_index)
                self._migrated = True
            return self.applied_migrations

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                from embedder.pipeline import Embedder

                config = self._settings.model_config_for_embedder()
                embedder = Embedder(replace(config, index_only=self._index_only))
                embedder.load()
                if not embedder.models:
                    raise ConfigError(
                        "No embedding model is active: enable at least one of "
                        "LOOKALIKE_CLIP_WEIGHTS, LOOKALIKE_CNN or LOOKALIKE_HSV."
                    )
                self._embedder = embedder
                if self._on_models_loaded is not None:
                    self._on_models_loaded(embedder)
            return self._embedder

    def embedder_loaded(self) -> bool:
        return self._embedder is not None

    def loaded_embedder(self) -> Embedder | None:
        """The embedder if it is loaded, without loading it."""
        return self._embedder

    def close(self) -> None:
        with self._lock:
            if self._embedder is not None:
                self._embedder.close()
            if self._store is not None:
                self._store.close()
            self._embedder = self._store = None
            self._migrated = False


def _migrate(store: Store, fused_index: bool) -> list[str]:
    from embedder.registry import vector_sizes
    from engine import fused_index as fused
    from migrations import apply_pending

    applied = apply_pending(store, vector_sizes())
    for name in applied:
        log.info("applied migration %s", name)
    fused.ensure(store, fused_index)  # once the vectors are declared: after the migrations
    return applied
