"""What the app holds while it runs (``app.state.services``): the engine, a bounded worker pool
for blocking engine calls, the job runner and the metrics.

The engine warms up in a background thread started by the lifespan: open the store (which
applies migrations), load the models, then open the FAISS mirror (it needs to know the models'
sizes). Until that is done /ready answers 503 and the engine routes answer 503 "not ready",
while /health, /login and the pages answer at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from api.errors import NotReady
from api.jobs import JobRunner
from api.metrics import AppMetrics
from engine import images
from engine.background import MirrorSyncer
from engine.errors import LookalikeError

if TYPE_CHECKING:
    from engine.core import Engine
    from engine.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# Blocking calls (inference, store reads, file I/O) run on at most this many threads at
# once, beyond one per query of a full search batch: inference spreads over every core
# through torch's own threads, searches share batches (engine.batching), and a few extra
# threads let cheap reads (lists, thumbnails) pass running searches. With 6 in all, 8
# concurrent searches could never share one batch (they alternated batches of 5 and 1).
EXTRA_WORKER_THREADS = 4
CHECKS = ("store", "models", "mirror")


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine: Engine | None = None
        self.limiter = anyio.CapacityLimiter(settings.search_batch_max + EXTRA_WORKER_THREADS)
        self.jobs = JobRunner()
        self.metrics = AppMetrics(self._status_if_ready)
        self.checks = dict.fromkeys(CHECKS, False)
        self.failure: str | None = None
        self._warmup: threading.Thread | None = None
        self.syncer: MirrorSyncer | None = None

    # -- lifespan ---------------------------------------------------------------------------
    def start(self) -> None:
        from engine.core import Engine

        self.engine = Engine(self.settings)
        self._warmup = threading.Thread(target=self._warm_up, name="warm-up", daemon=True)
        self._warmup.start()

    def _warm_up(self) -> None:
        engine = self.engine
        assert engine is not None
        steps: dict[str, float] = {}
        started = time.perf_counter()

        def step(name: str, fn: Callable[[], object]) -> None:
            t = time.perf_counter()
            fn()
            steps[name] = time.perf_counter() - t

        try:
            # Opening the store applies pending migrations; loading the models reads their
            # weights (slow on a first start); the mirror loads its snapshot and catches up.
            step("store", lambda: engine.store)
            self.checks["store"] = True
            step("models", lambda: engine.embedder)
            self.checks["models"] = True
            step("mirror", lambda: engine.mirror)
            # Before ready: after it, a new upload's temporary file could look stale.
            swept = images.sweep_stale_uploads(engine)
            if swept:
                log.warning("removed %d temporary file(s) of interrupted uploads", swept)
            self.checks["mirror"] = True
            log.info(
                "ready in %.2f s (%s)",
                time.perf_counter() - started,
                ", ".join(f"{name} {s:.2f} s" for name, s in steps.items()),
            )
            # After ready, off the start-up path: searches answer without it while it loads,
            # and a failure here only means it loads again when first needed.
            try:
                engine.payloads  # noqa: B018 - what hits show while the store is down
            except Exception:
                log.exception("loading the payload cache failed; it loads again when needed")
            if engine.store.backend == "server":
                # Other processes may write to a shared server; an embedded store is ours alone.
                self.syncer = MirrorSyncer(engine, full_every_s=self.settings.mirror_full_diff_s)
                self.syncer.start()
        except LookalikeError as exc:
            self.failure = exc.detail
            log.error("start-up failed: %s", exc.detail)
        except Exception as exc:
            self.failure = f"Start-up failed ({type(exc).__name__}: {exc}); the log has details."
            log.exception("start-up failed")

    def close(self) -> None:
        self.jobs.join(timeout=5)
        if self._warmup is not None:
            self._warmup.join(timeout=60)
        if self.syncer is not None:
            self.syncer.stop()
        if self.engine is not None:
            self.engine.close()

    # -- readiness --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return all(self.checks.values())

    def not_ready_detail(self) -> str:
        if self.failure:
            return self.failure
        waiting = [name for name in CHECKS if not self.checks[name]]
        return f"Lookalike is starting: waiting for {', '.join(waiting)}. Try again shortly."

    def ready_engine(self) -> Engine:
        if not self.ready or self.engine is None:
            raise NotReady(self.not_ready_detail())
        return self.engine

    def wait_ready(self, timeout: float) -> bool:
        """For tests and scripts: block until warm-up ended (ready or failed)."""
        if self._warmup is not None:
            self._warmup.join(timeout)
        return self.ready

    # -- running blocking engine calls --------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(engine, *args, **kwargs)`` on the worker pool, once the engine is ready."""
        engine = self.ready_engine()
        return await anyio.to_thread.run_sync(
            lambda: fn(engine, *args, **kwargs), limiter=self.limiter
        )

    async def store_reachable(self) -> bool:
        """Whether the store answers (a cached probe). Not on the bounded pool: probes must
        answer even while every worker waits on the store or the index lock."""
        engine = self.engine
        if not self.ready or engine is None:
            return True
        return await anyio.to_thread.run_sync(engine.check_store)

    def _status_if_ready(self) -> dict[str, Any] | None:
        return self.engine.status() if self.ready and self.engine is not None else None
