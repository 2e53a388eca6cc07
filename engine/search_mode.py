"""Who serves a search, and why: the one place that decides it (``LOOKALIKE_SEARCH``).

- ``mirror``: the FAISS mirror in this process. Fast and exact, one machine; while the store
  is down, searches are still answered from it (marked degraded).
- ``qdrant``: Qdrant itself, by exact two-round fusion (``engine.store_search``). This
  process keeps no per-point state (no mirror, no payload cache), so any number of API
  replicas can serve one collection. While the store is down, searches answer 503.
- ``auto``: the mirror while the fused vectors fit ``LOOKALIKE_MIRROR_MAX_MB`` and the
  mirror is sound; Qdrant when they do not fit (the mirror is then never loaded) or when
  the mirror failed to load or to catch up with the store (it never serves stale results
  silently; it serves again once a catch-up succeeds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from store.base import StoreUnavailable

if TYPE_CHECKING:
    from store.base import Store

MIRROR = "mirror"
QDRANT = "qdrant"
# How long a count of the collection is trusted before 'auto' asks again.
RECOUNT_S = 60.0
MIB = 1024 * 1024


@dataclass(frozen=True)
class Serving:
    mode: str  # 'mirror' | 'qdrant': who serves now
    setting: str  # LOOKALIKE_SEARCH: 'mirror' | 'qdrant' | 'auto'
    reason: str  # a sentence

    def as_dict(self) -> dict[str, str]:
        return {"mode": self.mode, "setting": self.setting, "reason": self.reason}


class SearchMode:
    def __init__(
        self,
        setting: str,
        max_mb: float,
        store: Callable[[], Store],
        width: Callable[[], int],
        mirror_problem: Callable[[], str | None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if setting not in (MIRROR, QDRANT, "auto"):
            raise ValueError(f"LOOKALIKE_SEARCH must be mirror, qdrant or auto; got {setting!r}")
        self.setting = setting
        self.max_mb = max_mb
        self._store = store
        self._width = width  # float32 values per fused row: the sum of the models' sizes
        self._mirror_problem = mirror_problem
        self._clock = clock
        self._lock = threading.Lock()
        self._points: int | None = None
        self._counted_at = -RECOUNT_S

    def keeps_mirror(self) -> bool:
        """Whether this process may hold a mirror at all: never with 'qdrant', and with
        'auto' only while the fused vectors fit the budget."""
        if self.setting == QDRANT:
            return False
        return self.setting == MIRROR or self.mirror_mb() <= self.max_mb

    def current(self) -> Serving:
        if self.setting == MIRROR:
            return Serving(MIRROR, MIRROR, "LOOKALIKE_SEARCH=mirror: the FAISS mirror serves.")
        if self.setting == QDRANT:
            return Serving(
                QDRANT,
                QDRANT,
                "LOOKALIKE_SEARCH=qdrant: Qdrant serves (through the fused index once it "
                "is built, else exact two-round fusion); this process keeps no mirror.",
            )
        size = f"the fused vectors ({self.mirror_mb():,.1f} MiB)"
        budget = f"LOOKALIKE_MIRROR_MAX_MB ({self.max_mb:,.0f} MiB)"
        if not self.keeps_mirror():
            return Serving(QDRANT, "auto", f"{size} exceed {budget}: Qdrant serves.")
        problem = self._mirror_problem()
        if problem:
            return Serving(QDRANT, "auto", f"The mirror is not sound ({problem}): Qdrant serves.")
        return Serving(MIRROR, "auto", f"{size} fit {budget}: the mirror serves.")

    def mirror_mb(self) -> float:
        return self.points() * self._width() * 4 / MIB

    def points(self) -> int:
        """The collection's size, counted at most every ``RECOUNT_S``; while the store
        cannot be reached, the last count (0 before any)."""
        with self._lock:
            now = self._clock()
            if self._points is None or now - self._counted_at >= RECOUNT_S:
                try:
                    self._points = self._store().count()
                except StoreUnavailable:
                    self._points = self._points or 0
                self._counted_at = now
            return self._points
