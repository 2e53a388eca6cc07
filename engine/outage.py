"""Whether the store answers, as the engine last saw it.

A Qdrant server can go away while Lookalike runs. Searches then fall back to the FAISS
mirror and its payload cache (marked degraded) instead of failing; writes fail with 503.
Once the store has failed, searches skip it for ``RETRY_S`` instead of paying a connection
timeout each: one request per interval tries it again, and the first success ends the
outage and tells the caller to resynchronise the mirror (writes by other processes during
the outage are picked up then).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from store.base import Filter, StoreUnavailable

if TYPE_CHECKING:
    import numpy as np

    from engine.core import Engine
    from store.mirror import MirrorHit

log = logging.getLogger(__name__)

RETRY_S = 2.0


class StoreHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._next_try = 0.0
        self.reason = ""
        self.resync_lock = threading.Lock()  # one resync after an outage at a time

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def should_try(self) -> bool:
        """True while up; while down, True for one caller per retry interval."""
        with self._lock:
            if self._down_since is None:
                return True
            now = time.monotonic()
            if now < self._next_try:
                return False
            self._next_try = now + RETRY_S
            return True

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._down_since is None:
                self._down_since = time.monotonic()
                # The store's sentence names the server; it goes to the log, never to clients.
                log.warning("store unreachable, serving searches from the mirror: %s", exc)
            self._next_try = time.monotonic() + RETRY_S
            self.reason = str(exc)

    def succeeded(self) -> bool:
        """Record a working call; True when this ends an outage."""
        with self._lock:
            if self._down_since is None:
                return False
            log.warning("store reachable again after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
            self.reason = ""
            return True


def mirror_search(
    engine: Engine,
    vectors: dict[str, np.ndarray],
    weights: dict[str, float],
    k: int,
    flt: Filter | None,
) -> tuple[list[MirrorHit], dict[str, dict[str, Any]], bool]:
    """Candidates from the mirror, filters and payloads from the store; while the store is
    unreachable, filters and payloads come from the payload cache. Returns (hits, payloads
    by id, degraded)."""
    filtered = flt is not None and not flt.is_empty()
    if engine.health.should_try():
        try:
            allowed = None
            if filtered:
                allowed = [r.id for r in engine.store.scroll(flt, with_payload=False)]
            found = engine.mirror.search(vectors, weights, k, allowed=allowed)
            records = engine.store.retrieve([h.id for h in found])
        except StoreUnavailable as exc:
            engine.health.failed(exc)
        else:
            cache = engine.loaded_payloads()  # not loaded yet: its load syncs with the store
            if cache is not None:
                cache.put(records)
            _answered(engine)
            return found, {r.id: r.payload for r in records}, False
    allowed = engine.payloads.matching(flt) if filtered else None
    found = engine.mirror.search(vectors, weights, k, allowed=allowed)
    return found, engine.payloads.get(h.id for h in found), True


def check_store(engine: Engine) -> bool:
    """Whether the store answers: a cheap probe, at most one per retry interval while it is
    down. The first answer after an outage resynchronises the mirror."""
    if engine.health.should_try():
        try:
            engine.store.exists()
        except StoreUnavailable as exc:
            engine.health.failed(exc)
        else:
            _answered(engine)
    return not engine.health.down


def _answered(engine: Engine) -> None:
    if engine.health.succeeded():
        threading.Thread(target=_resync, args=(engine,), name="mirror-resync", daemon=True).start()


def _resync(engine: Engine) -> None:
    """After an outage: writes made meanwhile by other processes reach the mirror, and the
    payload cache catches up."""
    lock = engine.health.resync_lock
    if not lock.acquire(blocking=False):
        return
    try:
        engine.sync_mirror(full=True)
    except Exception as exc:  # the store went away again: the next recovery retries
        log.warning("mirror resync after the outage failed: %s", exc)
    finally:
        lock.release()
