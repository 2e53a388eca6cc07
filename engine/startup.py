"""The order a serving process warms up in, and what it starts once ready.

Open the store (which applies migrations), load the models, then open the FAISS mirror (it
needs to know the models' sizes; none when Qdrant alone serves searches) and sweep the
temporary files of interrupted uploads.
Until that is done the server is not ready. After it, off the start-up path: the payload
cache loads (searches answer without it meanwhile), with a Qdrant server a follower picks
up writes made by other processes (an embedded store is this process's alone), and with
``LOOKALIKE_WATCH`` the library folder is watched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.mirror_keeper import MirrorFollower

if TYPE_CHECKING:
    from engine.composition import Lookalike
    from engine.watch import LibraryWatcher

log = logging.getLogger(__name__)

STEPS = ("store", "models", "mirror")


def warm_up(lk: Lookalike, done: Callable[[str], None]) -> dict[str, float]:
    """Run the start-up steps in order, calling ``done(step)`` after each; returns how long
    each took. Raises what a step raises (the caller reports it)."""
    steps: dict[str, float] = {}
    started = time.perf_counter()

    def step(name: str, fn: Callable[[], object]) -> None:
        t = time.perf_counter()
        fn()
        steps[name] = time.perf_counter() - t

    step("store", lk.resources.store)
    done("store")
    step("models", lk.resources.embedder)
    lk.verification.warm()  # OpenCV imported now, not by the first upload or search
    done("models")
    step("mirror", lambda: lk.mirror_keeper.mirror if lk.mirror_keeper.wanted() else None)
    # Before ready: after it, a new upload's temporary file could look stale.
    swept = lk.uploads.sweep_stale()
    if swept:
        log.warning("removed %d temporary file(s) of interrupted uploads", swept)
    done("mirror")
    log.info(
        "ready in %.2f s (%s)",
        time.perf_counter() - started,
        ", ".join(f"{name} {s:.2f} s" for name, s in steps.items()),
    )
    return steps


@dataclass
class Background:
    """What runs beside the requests once ready; ``stop`` ends it all."""

    follower: MirrorFollower | None = None
    watcher: LibraryWatcher | None = None
    optimizer: EdgeOptimizer | None = None

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.follower is not None:
            self.follower.stop()
        if self.optimizer is not None:
            self.optimizer.stop()


class EdgeOptimizer:
    """Edge builds its HNSW graphs and int8 vectors only when asked. While Qdrant serves
    searches (``LOOKALIKE_SEARCH=qdrant``, or ``auto`` past the mirror's budget), ask it once
    the images stop changing: the count moved since the last build and held still for one
    interval. Not while the mirror serves: a build holds Edge's writes (minutes at 100k
    images), and the plain segments answer exactly until it is done."""

    def __init__(self, lk: Lookalike, interval_s: float = 60.0) -> None:
        self._lk = lk
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="edge-optimize", daemon=True)
        self.runs = 0

    def start(self) -> EdgeOptimizer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)

    def _loop(self) -> None:
        built, seen = None, None
        while not self._stop.wait(self.interval_s):
            try:
                if self._lk.search_mode.current().mode != "qdrant":
                    continue
                store = self._lk.resources.store()
                count = store.count()
                if count == seen and count != built:
                    t = time.perf_counter()
                    store.optimize()
                    built, self.runs = count, self.runs + 1
                    log.info("search indexes built in %.1f s", time.perf_counter() - t)
                seen = count
            except Exception as exc:  # the next round tries again
                log.warning("building the search indexes failed: %s", exc)


def after_ready(lk: Lookalike) -> Background:
    """The work that must not delay readiness: the payload cache, the mirror follower (with
    a Qdrant server: other processes may write to it) and the library watcher (when
    ``LOOKALIKE_WATCH`` is on)."""
    background = Background()
    log.info("search: %s", lk.search_mode.current().reason)
    if lk.mirror_keeper.wanted():
        try:
            lk.mirror_keeper.payloads  # noqa: B018 - what hits show while the store is down
        except Exception:
            log.exception("loading the payload cache failed; it loads again when needed")
    if lk.resources.store().backend == "server" and lk.search_mode.setting != "qdrant":
        full_every_s = lk.settings.mirror_full_diff_s
        background.follower = MirrorFollower(lk.mirror_keeper.sync, full_every_s=full_every_s)
        background.follower.start()
    if lk.resources.store().backend == "edge" and lk.search_mode.setting != "mirror":
        background.optimizer = EdgeOptimizer(lk).start()
    if lk.settings.watch:
        background.watcher = lk.watcher()
        background.watcher.start()
        log.info("watching %s for changes", lk.settings.library_dir)
    return background
