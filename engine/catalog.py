"""Which models are in use, known without loading them when possible.

Loading the models takes seconds (and imports torch), yet ``lookalike status``, an index run
over an unchanged folder, and a search by stored id only need their names and sizes. The
first load records them in the store (meta ``embedding``) with the configuration they came
from; later processes with the same configuration read that record instead. A fallback at
load time (CLIP weights missing, say) is part of the record, so it is never guessed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.defaults import SearchDefaults, search_defaults

if TYPE_CHECKING:
    from embedder.pipeline import Embedder
    from engine.settings import Settings
    from store.base import Store

EMBEDDING_META = "embedding"


class ModelCatalog:
    def __init__(
        self,
        settings: Settings,
        store: Callable[[], Store],
        embedder: Callable[[], Embedder],
        embedder_loaded: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self._embedder_loaded = embedder_loaded
        self._models: list[dict[str, Any]] | None = None  # fixed once the embedder loaded
        self._lock = threading.Lock()

    def config_key(self) -> str:
        s = self._settings
        return json.dumps([s.clip_weights, s.cnn, s.cnn_weights, s.hsv])

    def record(self, embedder: Embedder) -> None:
        """Note the loaded models, in the store and here (searches then need no store
        round trip for them)."""
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
        value = {"config_key": self.config_key(), "models": models, "roles": roles}
        store = self._store()
        if store.get_meta(EMBEDDING_META) != value:
            store.set_meta(EMBEDDING_META, value)
        with self._lock:
            self._models = models

    def active(self) -> list[dict[str, Any]]:
        """The models in use (role, name, dim, weights...), without loading them when this
        configuration was seen before."""
        with self._lock:
            if self._models is not None:
                return list(self._models)
        if not self._embedder_loaded():
            meta = self._store().get_meta(EMBEDDING_META)
            if meta and meta.get("config_key") == self.config_key():
                return list(meta["models"])
        self._embedder()  # loading records the models (see Lookalike's embedder provider)
        with self._lock:
            return list(self._models or [])

    def roles(self) -> list[dict[str, Any]]:
        """Every role, including those turned off, with fallback reasons (status, UI)."""
        self.active()
        meta = self._store().get_meta(EMBEDDING_META) or {}
        return list(meta.get("roles") or meta.get("models") or [])

    def names(self) -> dict[str, str]:
        """{role: model name} of the active models."""
        return {str(m["role"]): str(m["name"]) for m in self.active()}

    def blocks(self) -> list[tuple[str, int]]:
        """(model name, dim) in role order: the fused vector's layout."""
        return [(str(m["name"]), int(m["dim"])) for m in self.active()]

    def vector_tags(self) -> list[str]:
        """'name@weights' of each model: a point lacking one is re-embedded."""
        return [f"{m['name']}@{m['weights']}" for m in self.active()]

    def defaults(self) -> SearchDefaults:
        """The one source of search defaults, for these models (``engine.defaults``)."""
        return search_defaults(self.names())

    def clip_status(self) -> tuple[str | None, str]:
        """(the CLIP model's name or None, why it is off) without loading any model anew."""
        for model in self.active():
            if model["role"] == "clip":
                return str(model["name"]), ""
        why = next((r.get("reason") for r in self.roles() if r.get("role") == "clip"), None)
        return None, f" ({why})" if why else ""
