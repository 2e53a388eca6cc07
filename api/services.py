"""What the app holds while it runs (``app.state.services``): the use cases (``Lookalike``),
a bounded worker pool for their blocking calls, the job runner, the metrics, and readiness.

The warm-up (``engine.startup``) runs in a background thread started by the lifespan. Until
it is done /ready answers 503 and the engine routes answer 503 "not ready", while /health,
/login and the pages answer at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from api.errors import NotReady
from api.job_runner import JobRunner
from api.metrics import AppMetrics
from api.reports import ReportQueue
from engine.errors import LookalikeError
from engine.startup import STEPS, after_ready, warm_up

if TYPE_CHECKING:
    from engine.composition import Lookalike
    from engine.settings import Settings
    from engine.startup import Background

log = logging.getLogger(__name__)

T = TypeVar("T")

# Blocking calls (inference, store reads, file I/O) run on at most this many threads at
# once, beyond one per query of a full search batch: inference spreads over every core
# through torch's own threads, searches share batches (engine.batching), and a few extra
# threads let cheap reads (lists, thumbnails) pass running searches. With 6 in all, 8
# concurrent searches could never share one batch (they alternated batches of 5 and 1).
EXTRA_WORKER_THREADS = 4


class Services:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lookalike: Lookalike | None = None
        self.limiter = anyio.CapacityLimiter(settings.search_batch_max + EXTRA_WORKER_THREADS)
        self.jobs = JobRunner()
        self.reports = ReportQueue()  # duplicates: one at a time, not on the pool above
        self.metrics = AppMetrics(self._status_if_ready)
        self.checks = dict.fromkeys(STEPS, False)
        self.failure: str | None = None
        self._warmup: threading.Thread | None = None
        self.background: Background | None = None

    # -- lifespan ---------------------------------------------------------------------------
    def start(self) -> None:
        from engine.composition import Lookalike

        self.lookalike = Lookalike(self.settings)
        self._warmup = threading.Thread(target=self._warm_up, name="warm-up", daemon=True)
        self._warmup.start()

    def _warm_up(self) -> None:
        lk = self.lookalike
        assert lk is not None
        try:
            warm_up(lk, lambda step: self.checks.__setitem__(step, True))
            self.background = after_ready(lk)
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
        if self.background is not None:
            self.background.stop()
        if self.lookalike is not None:
            self.lookalike.close()

    # -- readiness --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return all(self.checks.values())

    def not_ready_detail(self) -> str:
        if self.failure:
            return self.failure
        waiting = [name for name in STEPS if not self.checks[name]]
        return f"Lookalike is starting: waiting for {', '.join(waiting)}. Try again shortly."

    def ready_lookalike(self) -> Lookalike:
        """The use cases, once warm-up is done; else ``NotReady`` (503)."""
        if not self.ready or self.lookalike is None:
            raise NotReady(self.not_ready_detail())
        return self.lookalike

    def wait_ready(self, timeout: float) -> bool:
        """For tests and scripts: block until warm-up ended (ready or failed)."""
        if self._warmup is not None:
            self._warmup.join(timeout)
        return self.ready

    # -- running blocking calls ---------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the worker pool, off the event loop."""
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs), limiter=self.limiter)

    async def store_reachable(self) -> bool:
        """Whether the store answers (a cached probe). Not on the bounded pool: probes must
        answer even while every worker waits on the store or the index lock."""
        lk = self.lookalike
        if not self.ready or lk is None:
            return True
        return await anyio.to_thread.run_sync(lk.reader.check_store)

    def _status_if_ready(self) -> dict[str, Any] | None:
        return self.lookalike.status.read() if self.ready and self.lookalike is not None else None
