"""Keeps the FAISS mirror and its payload cache: loads them once, brings them up to date
after writes, saves them, and (with a Qdrant server) follows writes made elsewhere.

The mirror is derived from the store, the source of truth (``store.mirror``): on first use
it loads its snapshot and catches up on points whose rev is above its watermark, or is
built from the store when there is no snapshot. Writes made through this process update it
at once (``sync``). Writes made elsewhere (a CLI ``index`` against the same Qdrant server,
another API replica) are picked up by ``MirrorFollower``: a cheap catch-up every
``interval_s`` and a full id comparison every ``full_every_s``, which finds deletions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from store.base import StoreUnavailable

if TYPE_CHECKING:
    from engine.health import StoreHealth
    from store.base import Store
    from store.mirror import Mirror, PayloadCache

log = logging.getLogger(__name__)


class MirrorKeeper:
    def __init__(
        self,
        data_dir: Path,
        store: Callable[[], Store],
        blocks: Callable[[], list[tuple[str, int]]],
        health: StoreHealth,
        *,
        wanted: Callable[[], bool] = lambda: True,
    ) -> None:
        self._path = data_dir / "mirror"
        self._payloads_path = data_dir / "mirror_payloads.msgpack"
        self._store = store
        self._blocks = blocks
        self._health = health
        self._mirror: Mirror | None = None
        self._payloads: PayloadCache | None = None
        # Whether this process keeps a mirror at all (engine.search_mode): when it does not,
        # nothing loads it and writes do not sync it.
        self.wanted = wanted
        # Why the mirror cannot be trusted now (a failed load or catch-up), else None.
        self.problem: str | None = None
        self._lock = threading.RLock()
        # Not ``_lock``: loading the payload cache takes a while and must block no search.
        self._payloads_lock = threading.Lock()

    @property
    def mirror(self) -> Mirror:
        with self._lock:
            if self._mirror is None:
                from store.mirror import Mirror

                blocks = self._blocks()
                with self._noting("failed to load"):
                    mirror = Mirror.load(self._path, blocks)
                    if mirror is None:
                        mirror = Mirror(self._path, blocks)
                        mirror.full_diff(self._store())
                    elif mirror.catch_up(self._store()):
                        mirror.save()
                self._mirror = mirror
            return self._mirror

    @contextmanager
    def _noting(self, what: str) -> Iterator[None]:
        """Record why the mirror cannot be trusted when the block fails, clear it when it
        succeeds. An unreachable store is not the mirror's fault: it stays as it was."""
        try:
            yield
        except StoreUnavailable:
            raise
        except Exception as exc:
            self.problem = f"it {what}: {exc}"
            raise
        self.problem = None

    def loaded(self) -> Mirror | None:
        """The mirror if it is loaded, without loading it."""
        return self._mirror

    @property
    def payloads(self) -> PayloadCache:
        """What hits show while the store is down, and the duplicates report's payloads.
        Loaded on first use (a server loads it right after /ready)."""
        with self._payloads_lock:
            if self._payloads is None:
                from store.mirror import PayloadCache

                cache = PayloadCache.load(self._payloads_path)
                try:
                    cache.sync(self.mirror.revs(), self._store().retrieve)
                    cache.save()
                except StoreUnavailable as exc:  # keep what was saved; the next sync fills it
                    self._health.failed(exc)
                self._payloads = cache
            return self._payloads

    def loaded_payloads(self) -> PayloadCache | None:
        """The payload cache if it is loaded, without loading it."""
        return self._payloads

    def sync(self, *, full: bool = False, removed: Sequence[str] | set[str] = ()) -> int:
        """Bring the mirror and the payload cache up to the store; returns how many points
        changed. ``removed``: points this process just deleted (a catch-up cannot see a
        deletion). ``full``: also compare every id with the store. A no-op when this
        process keeps no mirror."""
        if not self.wanted():
            self._drop()  # 'auto' outgrew its budget: Qdrant serves, free the memory
            return 0
        with self._noting("could not catch up with the store"):
            return self._sync(full=full, removed=removed)

    def _sync(self, *, full: bool, removed: Sequence[str] | set[str]) -> int:
        mirror = self.mirror
        store = self._store()
        if removed:
            mirror.remove(list(removed))
        changed = mirror.catch_up(store)
        if full:
            added, dropped = mirror.full_diff(store)
            changed += added + dropped
        self.payloads.sync(mirror.revs(), store.retrieve)
        if changed or removed:
            mirror.save()
        self.payloads.save()  # a no-op unless an entry changed
        return changed

    def _drop(self) -> None:
        with self._lock:
            if self._mirror is not None:
                log.info("the mirror is no longer kept in this process: Qdrant serves searches")
                self.close()
                self._payloads = None

    def close(self) -> None:
        with self._lock:
            if self._mirror is not None:
                self._mirror.save()
            if self._payloads is not None:
                self._payloads.save()
            self._mirror = None


class MirrorFollower:
    """Picks up writes made by other processes (see the module docstring)."""

    def __init__(
        self,
        sync: Callable[..., int],
        *,
        interval_s: float = 2.0,
        full_every_s: float = 300.0,
    ) -> None:
        self._sync = sync
        self.interval_s = interval_s
        self.full_every_s = full_every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0  # completed sync rounds, for tests and /metrics

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="mirror-sync", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        last_full = time.monotonic()
        while not self._stop.wait(self.interval_s):
            full = time.monotonic() - last_full >= self.full_every_s
            try:
                self._sync(full=full)
            except Exception as exc:  # store down: the read policy reports it; retry later
                log.debug("mirror sync skipped: %s", exc)
                continue
            if full:
                last_full = time.monotonic()
            self.runs += 1
