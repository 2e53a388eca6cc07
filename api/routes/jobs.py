"""Reindex and reconcile run as background jobs; status reports the whole system."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec
from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from api.auth import requires_write
from api.errors import ERROR_RESPONSES
from api.openapi import OptionalBodyOperation
from api.routes.deps import ServicesDep
from api.schemas import Job, ReindexRequest, Status
from api.services import Services
from engine.errors import STORE_DOWN, StoreUnavailableError
from engine.library import check_tags

if TYPE_CHECKING:
    from engine.composition import Lookalike
    from engine.indexer import Progress


def start_reindex(services: Services, data: ReindexRequest | None) -> Job:
    lk = writable(services)
    tags = check_tags(data.tags or ()) if data else []
    indexing = lk.indexing
    folder = indexing.library_folder(data.folder) if data and data.folder else None

    def work(progress: Progress) -> dict[str, Any]:
        return indexing.index(folder, tags=tags, progress=progress).as_dict()

    return services.jobs.start("reindex", work)


def start_reconcile(services: Services) -> Job:
    reconcile = writable(services).reconcile
    return services.jobs.start("reconcile", lambda progress: reconcile.run(progress=progress))


def writable(services: Services) -> Lookalike:
    """The use cases, once ready, and only while the store answers: a job that can only
    fail is refused at once (503) rather than reported failed a moment later. Blocking (a
    store probe): call it off the event loop."""
    lk = services.ready_lookalike()
    if not lk.reader.check_store():
        raise StoreUnavailableError(STORE_DOWN)
    return lk


class JobController(Controller):
    path = "/api/v1"
    tags = ("library",)

    @post(
        "/reindex",
        operation_id="reindex",
        responses=ERROR_RESPONSES,
        operation_class=OptionalBodyOperation,
        status_code=202,
        guards=[requires_write],
    )
    async def reindex(
        self, services: ServicesDep, data: JSONBody[ReindexRequest | None] = None
    ) -> Job:
        """Index the library (or one folder of it) in the background: new and changed files
        are embedded, deleted ones removed. Returns the job to poll."""
        return await anyio.to_thread.run_sync(start_reindex, services, data)

    @post(
        "/reconcile",
        operation_id="reconcile",
        responses=ERROR_RESPONSES,
        status_code=202,
        guards=[requires_write],
    )
    async def reconcile(self, services: ServicesDep) -> Job:
        """Bring folder, store and FAISS mirror back in sync (an index of the whole library,
        then a full id comparison of mirror and store), in the background."""
        return await anyio.to_thread.run_sync(start_reconcile, services)

    @get("/jobs/{job_id:str}", operation_id="getJob", responses=ERROR_RESPONSES)
    async def get_job(self, services: ServicesDep, job_id: FromPath[str]) -> Job:
        """A job's state (queued, running, done, failed) and progress (stage, done of total)."""
        return services.jobs.get(job_id)

    @get("/status", operation_id="status", responses=ERROR_RESPONSES)
    async def status(self, services: ServicesDep) -> Status:
        """Image count, store backend, active models (and any fallback), mirror size and lag,
        and the latest job."""
        raw = await services.run(services.ready_lookalike().status.read)
        status = msgspec.convert(raw, Status)
        status.job = services.jobs.latest()
        return status
