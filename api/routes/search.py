"""Search: by an uploaded image (multipart) or by a stored image's id (JSON).

One route takes two body types, which Litestar's ``data`` binding cannot express, so the body
is read here (``read_query``) and its OpenAPI description is written by ``_SearchOperation``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import UploadFile
from litestar.openapi.spec import Encoding, OpenAPIMediaType, Operation, RequestBody
from litestar.params import JSONBody

from api.auth import requires_write
from api.errors import ERROR_RESPONSES
from api.openapi import OptionalBodyOperation
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
from engine.errors import BadInput
from engine.search import Filters, SearchRequest, parse_weights

if TYPE_CHECKING:
    from engine.results import SearchResult

Upload = tuple[str, bytes]  # (filename, bytes) of the query image

# The multipart fields beside the image: SearchQuery's own, so both bodies obey one
# declaration. Structured ones travel as JSON parts (weights also as 'clip=1,cnn=0.5').
FORM_FIELDS = ("k", "threshold", "weights", "filters", "box")
JSON_PARTS = ("weights", "filters", "box")


def _json_query_schema() -> dict[str, Any]:
    """SearchQuery's schema as what ``search_request`` accepts: by a stored image's id or by
    a sentence, exactly one of them. Two whole alternatives, so a generated client gets two
    complete request types (not one type with its fields split over partial ones)."""
    from api.routes.images import UUID_PATTERN

    base = query_schema()
    by = {"image_id": "SearchById", "text": "SearchByText"}
    alternatives = []
    for name, title in by.items():
        props = dict(base["properties"])
        given = next(s for s in props[name]["anyOf"] if s.get("type") == "string")
        props[name] = {**given, **({"pattern": UUID_PATTERN} if name == "image_id" else {})}
        for other in by:
            if other != name:
                props[other] = {"type": "null"}
        if name == "text":  # a sentence is read by CLIP alone, and there is nothing to crop
            props["weights"] = props["box"] = {"type": "null"}
        alternatives.append({**base, "title": title, "properties": props, "required": [name]})
    return {"oneOf": alternatives}


def _multipart_schema() -> dict[str, Any]:
    props = query_schema()["properties"]
    properties: dict[str, Any] = {
        "image": {
            "type": "string",
            "format": "binary",
            "contentMediaType": "image/*",
            "description": "The query image (JPEG, PNG, WebP, GIF, BMP or TIFF).",
        },
        **{name: props[name] for name in FORM_FIELDS},
    }
    properties["weights"] = {
        **properties["weights"],
        "description": 'A JSON object {"clip": 1, "cnn": 1, "hsv": 0}, or clip=1,cnn=1,hsv=0.',
    }
    return {"type": "object", "properties": properties, "required": ["image"]}


def query_schema() -> dict[str, Any]:
    """SearchQuery as JSON Schema, with the document's extra rules (api.openapi)."""
    from api.openapi import inline_schema, strict_struct_schemas

    return inline_schema(SearchQuery, extra=strict_struct_schemas())


@dataclass
class _SearchOperation(Operation):
    def __post_init__(self) -> None:
        encoding = {name: Encoding(content_type="application/json") for name in JSON_PARTS}
        self.request_body = RequestBody(
            required=True,
            description="JSON to search with a stored image, multipart to upload one.",
            content={
                "application/json": OpenAPIMediaType(schema=_json_query_schema()),  # type: ignore[arg-type]
                "multipart/form-data": OpenAPIMediaType(
                    schema=_multipart_schema(),  # type: ignore[arg-type]
                    encoding={"image": Encoding(content_type="image/*"), **encoding},
                ),
            },
        )


async def read_query(request: Request[Any, Any, Any]) -> tuple[SearchQuery, Upload | None]:
    content_type = request.content_type[0]
    if content_type == "application/json":
        raw = msgspec.json.decode(await request.body())
        return msgspec.convert(_whole_numbers(raw), SearchQuery), None
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
    for name in ("image_id", "text", *FORM_FIELDS):
        value = form.get(name)
        if isinstance(value, str):  # sent empty: refused as what it is, not taken as absent
            fields[name] = _form_value(name, value.strip())
    try:
        query = msgspec.convert(fields, SearchQuery, strict=False)
    except msgspec.ValidationError as exc:
        raise BadInput(validation_sentence(str(exc))) from None
    if upload is None and query.image_id is None and query.text is None:
        raise BadInput("Send the query image as a multipart file field named 'image'.")
    return query, upload


def _whole_numbers(value: Any) -> Any:
    """JSON does not tell 5 from 5.0, and JSON Schema calls both an integer: so do we."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    return value


def _form_value(name: str, value: str) -> Any:
    if name == "weights" and value and not value.startswith(("{", "null")):
        return parse_weights(value)  # the CLI's 'clip=1,cnn=0.5' form
    if name in JSON_PARTS:
        try:
            return _whole_numbers(msgspec.json.decode(value))
        except msgspec.DecodeError:
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
    if query.text is not None and (query.weights is not None or query.box is not None):
        raise BadInput(
            "A search by text takes no 'weights' (CLIP alone reads text) and no 'box' "
            "(there is no image to crop): leave them out."
        )
    return SearchRequest(
        image=data,
        image_name=name,
        image_id=query.image_id,
        text=query.text,
        k=query.k,
        weights=query.weights.as_dict() if query.weights is not None else None,
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
    operation_class=OptionalBodyOperation,
    status_code=202,
    tags=["compatibility"],
    guards=[requires_write],
)
async def seed_reindex(services: ServicesDep, data: JSONBody[ReindexRequest | None] = None) -> Job:
    """Same as ``POST /api/v1/reindex``, at the original app's address."""
    return await anyio.to_thread.run_sync(start_reindex, services, data)
