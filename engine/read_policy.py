"""Where a read goes: the one place that knows it.

- Vector search runs where ``engine.search_mode`` says: on the FAISS mirror in this
  process (filters and the hits' payloads come from the store, the source of truth), or on
  Qdrant itself (``engine.store_search``), with nothing kept here.
- While the store is unreachable (``StoreHealth``), filters and payloads come from the
  payload cache kept beside the mirror, and the answer is marked degraded. Without a
  mirror (Qdrant serving) there is nothing to answer from: 503, in a sentence. An image by id
  is shown from that cache; a point's vectors come from the mirror.
- A write must reach the store: ``require_store`` refuses it (503) before it has touched
  anything while the store is known to be down.
- The first store answer after an outage resynchronises the mirror in the background:
  writes made meanwhile by other processes reach it, and the payload cache catches up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import STORE_DOWN, STORE_DOWN_NO_MIRROR, NotFound, StoreUnavailableError
from engine.search_mode import QDRANT
from store.base import Filter, StoreUnavailable

if TYPE_CHECKING:
    import numpy as np

    from engine.health import StoreHealth
    from engine.mirror_keeper import MirrorKeeper
    from engine.search_mode import SearchMode
    from engine.store_search import StoreFusedSearch
    from store.base import Store
    from store.mirror import MirrorHit

log = logging.getLogger(__name__)


@dataclass
class Found:
    hits: list[MirrorHit]  # best first; scores by model name
    payloads: dict[str, dict[str, Any]]  # by id; a hit deleted meanwhile has none
    degraded: bool  # the store was unreachable: filters and payloads came from the cache


class ReadPolicy:
    def __init__(
        self,
        store: Callable[[], Store],
        keeper: MirrorKeeper,
        health: StoreHealth,
        mode: SearchMode,
        fused: StoreFusedSearch,
    ):
        self._store = store
        self._keeper = keeper
        self.health = health
        self.mode = mode
        self.fused = fused
        self._resync_lock = threading.Lock()  # one resync after an outage at a time

    # -- the store's availability ---------------------------------------------------------
    def check_store(self) -> bool:
        """Whether the store answers: a cheap probe, at most one per retry interval while
        it is down."""
        if self.health.should_try():
            try:
                self._store().exists()
            except StoreUnavailable as exc:
                self.health.failed(exc)
            else:
                self._answered()
        return not self.health.down

    def require_store(self) -> None:
        """For writes: refuse at once while the store is known to be down."""
        if self.health.down and not self.check_store():
            raise StoreUnavailableError(STORE_DOWN)

    # -- reads ------------------------------------------------------------------------------
    def search(
        self,
        vectors: dict[str, np.ndarray],
        weights: dict[str, float],
        k: int,
        flt: Filter | None,
        *,
        exact: bool = False,
    ) -> Found:
        """The top ``k`` by fused score (``weights`` by model name), with their payloads.
        ``exact``: no approximate first stage in the mirror (Qdrant's plan is exact)."""
        if self.mode.current().mode == QDRANT:
            return self._search_store(vectors, weights, k, flt)
        filtered = flt is not None and not flt.is_empty()
        mirror = self._keeper.mirror
        if self.health.should_try():
            try:
                store = self._store()
                allowed = None
                if filtered:
                    allowed = [r.id for r in store.scroll(flt, with_payload=False)]
                hits = mirror.search(vectors, weights, k, allowed=allowed, exact=exact)
                records = store.retrieve([h.id for h in hits])
            except StoreUnavailable as exc:
                self.health.failed(exc)
            else:
                cache = self._keeper.loaded_payloads()  # not loaded: its load syncs anyway
                if cache is not None:
                    cache.put(records)
                self._answered()
                return Found(hits, {r.id: r.payload for r in records}, degraded=False)
        payloads = self._keeper.payloads
        allowed = payloads.matching(flt) if filtered else None
        hits = mirror.search(vectors, weights, k, allowed=allowed, exact=exact)
        return Found(hits, payloads.get(h.id for h in hits), degraded=True)

    def _search_store(
        self,
        vectors: dict[str, np.ndarray],
        weights: dict[str, float],
        k: int,
        flt: Filter | None,
    ) -> Found:
        try:
            hits = self.fused.search(vectors, weights, k, flt)
            records = self._store().retrieve([h.id for h in hits])
        except StoreUnavailable as exc:
            self.health.failed(exc)
            raise self._down() from None
        self._answered()
        return Found(hits, {r.id: r.payload for r in records}, degraded=False)

    def _down(self) -> StoreUnavailableError:
        """The store is down: with a mirror, changes wait; without one, so do searches."""
        kept = self._keeper.wanted() and self._keeper.loaded() is not None
        return StoreUnavailableError(STORE_DOWN if kept else STORE_DOWN_NO_MIRROR)

    def _fallback_ok(self) -> None:
        """Raise unless this process keeps a mirror (and its payload cache) to answer from
        while the store is down."""
        if not self._keeper.wanted() or self.mode.current().mode == QDRANT:
            raise self._down()

    def image(self, point_id: str) -> dict[str, Any]:
        """One image's payload (with its id): from the store, else from the cache, so hits
        found in the mirror can still be shown while the store is down."""
        if self.health.should_try():
            try:
                records = self._store().retrieve([point_id])
            except StoreUnavailable as exc:
                self.health.failed(exc)
            else:
                if not records:
                    raise NotFound(f"No image with id {point_id}.")
                return {"id": records[0].id, **records[0].payload}
        self._fallback_ok()
        cached = self._keeper.payloads.get([point_id]).get(point_id)
        if cached is None:
            raise StoreUnavailableError(STORE_DOWN)
        return {"id": point_id, **cached}

    def stored_image(self, point_id: str) -> dict[str, Any]:
        """``image`` from the store itself, never the cache: for changes, which must fail
        before they touch anything while the store is down."""
        self.require_store()
        try:
            records = self._store().retrieve([point_id])
        except StoreUnavailable as exc:
            self.health.failed(exc)
            raise self._down() from None
        if not records:
            raise NotFound(f"No image with id {point_id}.")
        return {"id": records[0].id, **records[0].payload}

    def vectors(self, point_id: str) -> dict[str, np.ndarray]:
        """A stored image's vectors, by model name: from the store, else from the mirror
        (which keeps every point's normalised vectors)."""
        if self.health.should_try():
            try:
                records = self._store().retrieve([point_id], with_vectors=True)
            except StoreUnavailable as exc:
                self.health.failed(exc)
            else:
                if not records:
                    raise NotFound(f"No image with id {point_id}.")
                return records[0].vectors
        self._fallback_ok()
        try:
            return self._keeper.mirror.vector(point_id)
        except KeyError:
            raise NotFound(f"No image with id {point_id}.") from None

    def payload_field(self, name: str) -> tuple[Iterable[tuple[str, Any]], bool]:
        """(id, payload[name]) of every image, and whether that is the store's complete
        answer (False: it came from the cache while the store is down)."""
        try:
            records = list(self._store().scroll(with_payload=[name]))
        except StoreUnavailable as exc:
            self.health.failed(exc)
            self._fallback_ok()
            cached = self._keeper.payloads.get(self._keeper.mirror.ids())
            return ((i, p.get(name)) for i, p in cached.items()), False
        return ((r.id, r.payload.get(name)) for r in records), True

    def revision(self) -> tuple[int, int]:
        """Changes whenever the images do: (watermark, size) of the mirror, or of the store
        when this process keeps no mirror."""
        if not self._keeper.wanted():
            try:
                store = self._store()
                return store.max_rev(), store.count()
            except StoreUnavailable as exc:
                self.health.failed(exc)
                raise self._down() from None
        mirror = self._keeper.mirror
        return mirror.watermark, len(mirror)

    # -- after an outage ----------------------------------------------------------------------
    def _answered(self) -> None:
        if self.health.succeeded():
            threading.Thread(target=self._resync, name="mirror-resync", daemon=True).start()

    def _resync(self) -> None:
        if not self._resync_lock.acquire(blocking=False):
            return
        try:
            self._keeper.sync(full=True)
        except Exception as exc:  # the store went away again: the next recovery retries
            log.warning("mirror resync after the outage failed: %s", exc)
        finally:
            self._resync_lock.release()
