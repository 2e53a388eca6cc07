"""Background jobs (reindex, reconcile): one at a time, in their own thread, with progress.

A job runs for minutes, far longer than an HTTP request should; the client gets its id at
once and polls it. Only one runs at a time because the engine serialises indexing anyway,
and a second click should be told so rather than silently queued behind the first.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from api.schemas import Job
from engine.errors import Conflict, LookalikeError, NotFound, translate
from engine.indexer import Progress

log = logging.getLogger(__name__)

KEEP_FINISHED = 50  # finished jobs remembered for polling clients


class JobRunner:
    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, kind: str, work: Callable[[Progress], dict[str, Any]]) -> Job:
        """Start ``work(progress)`` in a thread; its return value becomes the job's result."""
        with self._lock:
            running = self.current()
            if running is not None:
                raise Conflict(
                    f"A {running.kind} is already running (job {running.id}); "
                    "wait for it to finish, then try again."
                )
            job = Job(id=uuid.uuid4().hex, kind=kind, state="queued")  # type: ignore[arg-type]
            self._jobs[job.id] = job
            while len(self._jobs) > KEEP_FINISHED:
                self._jobs.popitem(last=False)
            created = self._copy(job)  # before the thread can move it on: always "queued"
            self._thread = threading.Thread(
                target=self._run, args=(job, work), name=f"job-{kind}", daemon=True
            )
            self._thread.start()
            return created

    def _run(self, job: Job, work: Callable[[Progress], dict[str, Any]]) -> None:
        def progress(stage: str, done: int, total: int) -> None:
            with self._lock:
                job.stage, job.done, job.total = stage, done, total

        with self._lock:
            job.state, job.started_at = "running", time.time()
        try:
            result = work(progress)
        except Exception as exc:
            known = translate(exc)  # e.g. the store went away: a sentence, not a traceback
            if isinstance(known, LookalikeError):
                cause = "" if known is exc else f" ({exc})"
                log.warning("%s job %s failed: %s%s", job.kind, job.id, known.detail, cause)
                self._finish(job, "failed", detail=known.detail)
            else:
                log.exception("%s job %s failed", job.kind, job.id)
                detail = "The job failed on the server; the log says why."
                self._finish(job, "failed", detail=detail)
        else:
            self._finish(job, "done", result=result)

    def _finish(self, job: Job, state: str, **fields: Any) -> None:
        with self._lock:
            job.state = state  # type: ignore[assignment]
            job.finished_at = time.time()
            for name, value in fields.items():
                setattr(job, name, value)
        log.info("%s job %s %s", job.kind, job.id, state)

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise NotFound(f"No job with id {job_id} (finished jobs are kept for a while).")
            return self._copy(job)

    def current(self) -> Job | None:
        """The queued or running job, if any (caller may hold the lock)."""
        for job in reversed(self._jobs.values()):
            if job.state in ("queued", "running"):
                return job
        return None

    def latest(self) -> Job | None:
        with self._lock:
            job = next(reversed(self._jobs.values()), None) if self._jobs else None
            return self._copy(job) if job else None

    def busy(self) -> bool:
        with self._lock:
            return self.current() is not None

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    @staticmethod
    def _copy(job: Job) -> Job:
        # Handlers get a snapshot, so a response is never encoded while the thread mutates it.
        return Job(**{f: getattr(job, f) for f in job.__struct_fields__})
