"""A search answered in steps: ``POST /api/v1/search/stream`` takes the body of
``POST /api/v1/search`` and answers with NDJSON, one ``SearchStep`` a line.

A picture query's ranking by the vectors is known well before its verification ends (on
2 cores: about 0.2 s of a 0.5 s search; looking inside a picture takes longer still). The
Search page shows that ranking at once, marked as still being checked, then the answer:

- ``{"stage": "ranked", "result": ...}``: the whole picture's ranking, not yet verified
  (only when verification or looking inside follows);
- ``{"stage": "final", "result": ...}``: exactly what ``POST /api/v1/search`` answers;
- ``{"stage": "error", "error": {"status", "error", "detail"}}``: a failure after the
  first line (the HTTP status was sent with it). A failure before is an ordinary error
  response (4xx or 503, with the usual JSON body), so bad input is refused as anywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import msgspec
from litestar import Controller, Request, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse
from litestar.response import Stream

from api.errors import ERROR_RESPONSES, ErrorBody, describe
from api.routes.deps import ServicesDep
from api.routes.search import Body, SearchOperation, read_query, search_request, to_response
from api.search_schemas import SearchStep

if TYPE_CHECKING:
    from api.services import Services
    from engine.results import SearchResult

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/x-ndjson"

# (stage, the encoded line) or the failure; put by the worker thread, read by the response.
Event = tuple[str, bytes] | Exception

_working: set[asyncio.Future[Any]] = set()  # searches whose client may have gone


@dataclass
class _StreamOperation(SearchOperation):
    def __post_init__(self) -> None:
        from api.openapi import inline_schema

        super().__post_init__()
        line = inline_schema(SearchStep)
        self.responses = {
            **(self.responses or {}),
            "200": OpenAPIResponse(
                description="NDJSON: the ranking before verification (stage 'ranked'), "
                "then the answer (stage 'final'), one SearchStep a line.",
                content={MEDIA_TYPE: OpenAPIMediaType(schema=line)},  # type: ignore[arg-type]
            ),
        }


def _line(stage: Literal["ranked", "final"], result: SearchResult, body: Body) -> bytes:
    step = SearchStep(stage=stage, result=to_response(result, body.query))
    return msgspec.json.encode(step) + b"\n"


async def _start(services: Services, body: Body) -> asyncio.Queue[Event]:
    """Run the search on the worker pool; its steps arrive on the queue. Each line is encoded
    on the worker thread, before the search goes on to verify (and mark) the same hits."""
    search = services.ready_lookalike().search
    request = search_request(body)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(event: Event) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, event)

    def work() -> None:
        try:
            result = search.run(request, lambda r: put(("ranked", _line("ranked", r, body))))
            services.metrics.observe_search(result.timings)
            put(("final", _line("final", result, body)))
        except Exception as exc:  # told to the client, as a response or as a line
            put(exc)

    task = asyncio.ensure_future(services.run(work))
    _working.add(task)
    task.add_done_callback(_finished)
    return queue


def _finished(task: asyncio.Future[Any]) -> None:
    _working.discard(task)
    if not task.cancelled() and task.exception() is not None:  # the loop closed under it
        log.warning("a streamed search ended without its client: %s", task.exception())


async def _rest(first: tuple[str, bytes], queue: asyncio.Queue[Event]) -> AsyncIterator[bytes]:
    stage, line = first
    yield line
    while stage != "final":
        event = await queue.get()
        if isinstance(event, Exception):
            status, code, detail = describe(event)
            if status >= 500:
                log.error("search failed after its first step", exc_info=event)
            error = ErrorBody(status=status, error=code, detail=detail)
            yield msgspec.json.encode(SearchStep(stage="error", error=error)) + b"\n"
            return
        stage, line = event
        yield line


class SearchStreamController(Controller):
    path = "/api/v1/search/stream"
    tags = ("search",)

    @post(
        operation_id="searchStream",
        responses=ERROR_RESPONSES,
        operation_class=_StreamOperation,
        status_code=200,
    )
    async def stream(self, request: Request[Any, Any, Any], services: ServicesDep) -> Stream:
        """The search ``POST /api/v1/search`` runs (same body), answered in NDJSON steps: a
        picture query's ranking before verification (``ranked``), then the answer
        (``final``), so a page can show results while the best ones are checked as copies."""
        body = await read_query(request)
        queue = await _start(services, body)
        first = await queue.get()
        if isinstance(first, Exception):
            raise first  # nothing sent yet: the usual error response
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}  # nginx: no buffer
        return Stream(_rest(first, queue), media_type=MEDIA_TYPE, headers=headers)
