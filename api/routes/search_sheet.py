"""A contact sheet of a search's result: the same body as ``POST /api/v1/search``, answered
with a PDF or a PNG (``engine.contact_sheet``) to send to a client or a lawyer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from litestar import Controller, Request, Response, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Schema
from litestar.params import QueryParameter

from api.errors import ERROR_RESPONSES
from api.routes.deps import ServicesDep
from api.routes.search import Body, SearchOperation, read_query, search_request
from engine.contact_sheet import MEDIA_TYPES, check_format, query_picture, render, search_sheet

if TYPE_CHECKING:
    from engine.results import SearchResult
    from engine.search import Search
    from engine.thumbnails import Thumbnails

SheetFormat = Annotated[
    str,
    QueryParameter(pattern="^(pdf|png)$", description="pdf (the default) or png."),
]


@dataclass
class _SheetOperation(SearchOperation):
    def __post_init__(self) -> None:
        super().__post_init__()
        binary = Schema(type="string", format="binary")  # type: ignore[arg-type]
        self.responses = {
            **(self.responses or {}),
            "200": OpenAPIResponse(
                description="The contact sheet: thumbnails, scores, reasons and paths.",
                content={t: OpenAPIMediaType(schema=binary) for t in MEDIA_TYPES.values()},
            ),
        }


def _label(body: Body) -> str:
    q = body.query
    names = [name for name, _ in body.uploads] + list(q.image_ids or ())
    if names:
        return f"{len(names)} images ({q.combine}): {', '.join(names)}"
    return body.upload[0] if body.upload else str(q.text or q.image_id)


def make_sheet(search: Search, thumbnails: Thumbnails, body: Body, fmt: str) -> bytes:
    """Run the search, then lay its result out as a sheet (blocking)."""
    request = search_request(body)
    result: SearchResult = search.run(request)
    query_image = query_picture(request.image, request.image_name)
    source = search.defaults().source
    sheet = search_sheet(result, _label(body), thumbnails.path, query_image, source)
    return render(sheet, fmt)


class SearchSheetController(Controller):
    path = "/api/v1/search/sheet"
    tags = ("search",)

    @post(
        operation_id="searchSheet",
        responses=ERROR_RESPONSES,
        operation_class=_SheetOperation,
        status_code=200,
    )
    async def sheet(
        self, request: Request[Any, Any, Any], services: ServicesDep, format: SheetFormat = "pdf"
    ) -> Response[bytes]:
        """A contact sheet (PDF or PNG) of the search the body describes: the same body as
        ``POST /api/v1/search``."""
        fmt = check_format(format)
        body = await read_query(request)
        lk = services.ready_lookalike()
        data = await services.run(make_sheet, lk.search, lk.thumbnails, body, fmt)
        disposition = f'attachment; filename="lookalike-results.{fmt}"'
        return Response(
            data, media_type=MEDIA_TYPES[fmt], headers={"Content-Disposition": disposition}
        )
