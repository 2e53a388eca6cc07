"""Search: by an uploaded image (multipart) or by a stored image's id (JSON).

One route takes two body types, which Litestar's ``data`` binding cannot express, so the body
is read here (``read_query``) and its OpenAPI description is written by ``_SearchOperation``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import UploadFile
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import JSONBody

from api.auth import requires_write
from api.errors import ERROR_RESPONSES
from api.openapi import inline_schema, multipart_schema
from api.routes.deps import ServicesDep
from api.routes.jobs import start_reindex
from api.schemas import (
    Job,
    ReindexRequest,
    SearchHit,
    SearchQuery,
    SearchResponse,
)
from api.services import Services
from api.validation_text import validation_sentence
from engine.defaults import DEFAULT_K, MAX_K
from engine.errors import BadInput
from engine.search import Filters, SearchRequest, parse_weights

if TYPE_CHECKING:
    from engine.results import SearchResult

Upload = tuple[str, bytes]  # (filename, bytes) of the query image

_FORM_FIELDS = {
    "image": ("file", "The query image (JPEG, PNG, WebP, GIF, BMP or TIFF)."),
    "k": ("integer", f"How many hits to return (1 to {MAX_K}, default {DEFAULT_K})."),
    "weights": ("string", 'JSON {"clip": 1, "cnn": 1, "hsv": 0} or clip=1,cnn=1,hsv=0.'),
    "filters": ("string", "JSON object, as SearchFilters."),
    "threshold": ("number", "Drop hits scoring below this (0 to 1)."),
    "box": ("string", "Crop the query first: JSON [x, y, width, height] in pixels."),
}


def _json_query_schema() -> dict[str, Any]:
    """SearchQuery's schema plus what ``run_search`` checks beyond the Struct, so the
    document does not promise that ``{}`` or ``k: 5000`` is a valid search."""
    from api.routes.images import UUID_PATTERN

    schema = inline_schema(SearchQuery)
    props = schema["properties"]
    props["k"].update(minimum=1, maximum=MAX_K)
    props["image_id"]["anyOf"][0]["pattern"] = UUID_PATTERN
    schema["additionalProperties"] = False
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("image_id", "text")
        if name in props
    ]
    return schema


@dataclass
class _SearchOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="JSON to search with a stored image, multipart to upload one.",
            content={
                "application/json": OpenAPIMediaType(schema=_json_query_schema()),  # type: ignore[arg-type]
                "multipart/form-data": OpenAPIMediaType(
                    schema=multipart_schema(_FORM_FIELDS, required=["image"])  # type: ignore[arg-type]
                ),
            },
        )


async def read_query(request: Request[Any, Any, Any]) -> tuple[SearchQuery, Upload | None]:
    content_type = request.content_type[0]
    if content_type == "application/json":
        return msgspec.json.decode(await request.body(), type=SearchQuery), None
    if content_type != "multipart/form-data":
        raise BadInput(
            "Send the search as multipart/form-data (field 'image') or as JSON "
            '({"image_id": ...}).'
        )
    form = await request.form()
    image = form.get("image")
    upload = (
        (image.filename or "query", await image.read()) if isinstance(image, UploadFile) else None
    )
    fields: dict[str, Any] = {}
    for name in ("image_id", "text", "k", "threshold", "weights", "filters", "box"):
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            fields[name] = _form_value(name, value.strip())
    try:
        query = msgspec.convert(fields, SearchQuery, strict=False)
    except msgspec.ValidationError as exc:
        raise BadInput(validation_sentence(str(exc))) from None
    if upload is None and query.image_id is None and query.text is None:
        raise BadInput("Send the query image as a multipart file field named 'image'.")
    return query, upload


def _form_value(name: str, value: str) -> Any:
    if name == "weights" and not value.startswith("{"):
        return parse_weights(value)  # the CLI's 'clip=1,cnn=0.5' form
    if name in ("weights", "filters", "box"):
        try:
            return json.loads(value)
        except ValueError:
            raise BadInput(f"The field {name!r} must be JSON; got {value[:80]!r}.") from None
    return value


def search_request(query: SearchQuery, upload: Upload | None) -> SearchRequest:
    """The engine's request for this query: one shape for every way in."""
    name, data = upload if upload is not None else ("query", None)
    f = query.filters
    filters = None
    if f is not None:
        filters = Filters(
            folders=tuple(f.folders or ()),
            tags_any=tuple(f.tags_any or ()),
            tags_all=tuple(f.tags_all or ()),
            formats=tuple(f.formats or ()),
            min_width=f.min_width,
            max_width=f.max_width,
            min_height=f.min_height,
            max_height=f.max_height,
            colour=f.colour,
            colour_tolerance=f.colour_tolerance,
        )
    if data is None and query.image_id is None and query.text is None:
        raise BadInput(
            "Send an 'image' (multipart), an 'image_id' or a 'text' (JSON) to search with."
        )
    return SearchRequest(
        image=data,
        image_name=name,
        image_id=query.image_id,
        text=query.text,
        k=query.k,
        weights=query.weights,
        filters=filters,
        box=query.box,
        threshold=query.threshold,
    )


def to_response(result: SearchResult, query: SearchQuery) -> SearchResponse:
    hits = [SearchHit.from_hit(h) for h in result.hits]
    timings = {name: round(ms, 3) for name, ms in result.timings.items()}
    return SearchResponse(
        hits=hits,
        timings=timings,
        models=result.models,
        weights=result.weights,
        k=query.k,
        threshold=query.threshold,
        degraded=result.degraded,
    )


async def _search(request: Request[Any, Any, Any], services: Services) -> SearchResponse:
    query, upload = await read_query(request)
    search = services.ready_lookalike().search
    result = await services.run(search.run, search_request(query, upload))
    services.metrics.observe_search(result.timings)
    return to_response(result, query)


class SearchController(Controller):
    path = "/api/v1/search"
    tags = ("search",)

    @post(
        operation_id="search",
        responses=ERROR_RESPONSES,
        operation_class=_SearchOperation,
        status_code=200,
    )
    async def search(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> SearchResponse:
        """Find the images that look like a query image: uploaded (multipart field ``image``)
        or already in the library (JSON ``image_id``). Hits come best first, with the fused
        score (0 to 1) and each model's cosine."""
        return await _search(request, services)


@post(
    "/search",
    operation_id="seedSearch",
    responses=ERROR_RESPONSES,
    operation_class=_SearchOperation,
    status_code=200,
    tags=["compatibility"],
)
async def seed_search(request: Request[Any, Any, Any], services: ServicesDep) -> SearchResponse:
    """Same as ``POST /api/v1/search``, at the original app's address."""
    return await _search(request, services)


@post(
    "/reindex",
    operation_id="seedReindex",
    responses=ERROR_RESPONSES,
    status_code=202,
    tags=["compatibility"],
    guards=[requires_write],
)
async def seed_reindex(services: ServicesDep, data: JSONBody[ReindexRequest | None] = None) -> Job:
    """Same as ``POST /api/v1/reindex``, at the original app's address."""
    return await anyio.to_thread.run_sync(start_reindex, services, data)
