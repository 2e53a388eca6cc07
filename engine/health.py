"""Whether the store answers, as this process last saw it.

A Qdrant server can go away while Lookalike runs. Searches then fall back to the FAISS
mirror and its payload cache (marked degraded) instead of failing; writes fail with 503.
Once the store has failed, searches skip it for ``RETRY_S`` instead of paying a connection
timeout each: one request per interval tries it again, and the first success ends the
outage (``engine.read_policy`` then resynchronises the mirror: writes made by other
processes during the outage are picked up).
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)

RETRY_S = 2.0


class StoreHealth:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._next_try = 0.0
        self.reason = ""

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
