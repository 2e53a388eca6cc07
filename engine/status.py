"""The state of the whole system, for ``lookalike status``, ``/api/v1/status`` and metrics:
how many images, which store, which models (and any fallback), how inference runs, the
search defaults in force, and how far the mirror lags behind the store."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine import fused_index

if TYPE_CHECKING:
    from embedder.pipeline import Embedder
    from engine.catalog import ModelCatalog
    from engine.search_mode import Serving
    from engine.settings import Settings
    from store.base import Store
    from store.mirror import Mirror


class StatusReport:
    def __init__(
        self,
        settings: Settings,
        store: Callable[[], Store],
        catalog: ModelCatalog,
        mirror: Callable[[], Mirror | None],
        serving: Callable[[], Serving],
        embedder: Callable[[], Embedder | None],
    ) -> None:
        self._settings = settings
        self._store = store
        self._catalog = catalog
        self._mirror = mirror  # None: this process keeps no mirror (Qdrant serves)
        self._serving = serving
        self._embedder = embedder  # never loads the models: status must stay cheap

    def read(self) -> dict[str, Any]:
        store = self._store()
        mirror = self._mirror()
        defaults = self._catalog.defaults()
        embedder = self._embedder()
        return {
            "points": store.count(),
            "backend": store.backend,
            "data_dir": str(self._settings.data_dir.resolve()),
            "library_dir": str(self._settings.library_dir.resolve()),
            "models": self._catalog.active(),
            "roles": self._catalog.roles(),
            "default_weights": defaults.weights,
            "near_duplicate_threshold": defaults.near_duplicate_threshold,
            "defaults": defaults.as_dict(),
            "models_loaded": embedder is not None,
            # Read without loading: precision, compiled and int8 change while serving.
            "inference": embedder.runtime() if embedder is not None else {},
            "search_mode": self._serving().as_dict(),
            # store.fused: what multi-model searches in qdrant mode go through
            "fused_index": fused_index.state(store),
            "mirror": None
            if mirror is None
            else {"points": len(mirror), "watermark": mirror.watermark},
            "mirror_lag": None if mirror is None else mirror.lag(store),
        }
