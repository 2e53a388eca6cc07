"""Search: by uploaded images (multipart) or by stored images' ids or a sentence (JSON), with
relevance feedback (``liked`` / ``disliked``) on any of them.

One route takes two body types, which Litestar's ``data`` binding cannot express, so the body
is read here (``read_query``) and its OpenAPI description is written by ``SearchOperation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
from api.schemas import Job, ReindexRequest
from api.search_schemas import SearchHit, SearchQuery, SearchResponse
from api.services import Services
from api.validation_text import validation_sentence
from engine.errors import BadInput
from engine.feedback import MAX_MARKS
from engine.multi_query import MAX_QUERY_IMAGES
from engine.search import parse_weights
from engine.search_request import MAX_EXCLUDE, Filters, QueryImage, SearchRequest

if TYPE_CHECKING:
    from engine.results import SearchResult

Upload = tuple[str, bytes]  # (filename, bytes) of a query image

# The multipart fields beside the images: SearchQuery's own, so both bodies obey one
# declaration. Structured ones travel as JSON parts (weights also as 'clip=1,cnn=0.5').
FORM_FIELDS = ("k", "threshold", "weights", "filters", "box", "boxes", "combine", "inside")
FORM_LISTS = ("image_ids", "liked", "disliked", "exclude")  # repeated parts, or a JSON array
JSON_PARTS = ("weights", "filters", "box", "boxes")
KNOWN_PARTS = {"image", "images", "images[]", "image_id", "text", *FORM_FIELDS, *FORM_LISTS}
ID_LISTS = {
    "image_ids": MAX_QUERY_IMAGES,
    "liked": MAX_MARKS,
    "disliked": MAX_MARKS,
    "exclude": MAX_EXCLUDE,
}


@dataclass
class Body:
    """A search's body: the query's fields and the uploaded picture(s)."""

    query: SearchQuery
    upload: Upload | None = None  # the one ``image``
    uploads: list[Upload] = field(default_factory=list)  # several ``images``


def _json_query_schema() -> dict[str, Any]:
    """SearchQuery's schema as what ``search_request`` accepts: by a stored image's id or by
    a sentence, exactly one of them. Two whole alternatives, so a generated client gets two
    complete request types (not one type with its fields split over partial ones)."""
    from api.routes.images import UUID_PATTERN

    base = query_schema()
    by = {"image_id": "SearchById", "text": "SearchByText", "image_ids": "SearchByImages"}
    alternatives = []
    for name, title in by.items():
        props = _with_id_lists(dict(base["properties"]), UUID_PATTERN)
        given = next(s for s in props[name]["anyOf"] if s.get("type") != "null")
        props[name] = {**given, **({"pattern": UUID_PATTERN} if name == "image_id" else {})}
        if name == "image_ids":
            props[name]["minItems"] = 1
            props["box"] = {"type": "null"}  # each image's crop is in 'boxes'
        else:
            props["boxes"] = {"type": "null"}
        for other in by:
            if other != name:
                props[other] = {"type": "null"}
        if name == "text":  # a sentence is read by CLIP alone, and there is nothing to crop
            props["weights"] = props["box"] = {"type": "null"}
        alternatives.append({**base, "title": title, "properties": props, "required": [name]})
    return {"oneOf": alternatives}


def _with_id_lists(props: dict[str, Any], pattern: str) -> dict[str, Any]:
    """Lists of image ids: each a UUID, at most so many (the engine's limits)."""
    for name, most in ID_LISTS.items():
        ids = {"type": "array", "items": {"type": "string", "pattern": pattern}, "maxItems": most}
        props[name] = {"anyOf": [ids, {"type": "null"}]}
    boxes = next(s for s in props["boxes"]["anyOf"] if s.get("type") == "array")
    props["boxes"] = {"anyOf": [{**boxes, "maxItems": MAX_QUERY_IMAGES}, {"type": "null"}]}
    return props


def _multipart_schema() -> dict[str, Any]:
    from api.routes.images import UUID_PATTERN

    props = _with_id_lists(query_schema()["properties"], UUID_PATTERN)
    picture = {"type": "string", "format": "binary", "contentMediaType": "image/*"}
    properties: dict[str, Any] = {
        "image": {
            **picture,
            "description": "The query image (JPEG, PNG, WebP, GIF, BMP or TIFF).",
        },
        "images": {
            "type": "array",
            "items": picture,
            "minItems": 1,
            "maxItems": MAX_QUERY_IMAGES,
            "description": "Several query images, combined by 'combine' (parts named "
            "'images' or 'images[]').",
        },
        **{name: props[name] for name in (*FORM_FIELDS, *FORM_LISTS)},
    }
    properties["weights"] = {
        **properties["weights"],
        "description": 'A JSON object {"clip": 1, "cnn": 1, "hsv": 0}, or clip=1,cnn=1,hsv=0.',
    }
    # One object, not two alternatives: openapi-python-client sends no body at all for a
    # union of multipart types. "Exactly one of" is said in words; the server refuses both
    # or neither with 400 (positive_data_acceptance is off for search: tests/fuzz).
    return {
        "type": "object",
        "description": "Exactly one of 'image' and 'images'.",
        "properties": properties,
    }


def query_schema() -> dict[str, Any]:
    """SearchQuery as JSON Schema, with the document's extra rules (api.openapi)."""
    from api.openapi import inline_schema, strict_struct_schemas

    return inline_schema(SearchQuery, extra=strict_struct_schemas())


@dataclass
class SearchOperation(Operation):
    def __post_init__(self) -> None:
        encoding = {name: Encoding(content_type="application/json") for name in JSON_PARTS}
        self.request_body = RequestBody(
            required=True,
            description="JSON to search with stored images or a sentence, multipart to "
            "upload one image (or several, as 'images').",
            content={
                "application/json": OpenAPIMediaType(schema=_json_query_schema()),  # type: ignore[arg-type]
                "multipart/form-data": OpenAPIMediaType(
                    schema=_multipart_schema(),  # type: ignore[arg-type]
                    encoding={
                        "image": Encoding(content_type="image/*"),
                        "images": Encoding(content_type="image/*"),
                        **encoding,
                    },
                ),
            },
        )


async def read_query(request: Request[Any, Any, Any]) -> Body:
    content_type = request.content_type[0]
    if content_type == "application/json":
        raw = msgspec.json.decode(await request.body())
        return Body(msgspec.convert(_whole_numbers(raw), SearchQuery))
    if content_type != "multipart/form-data":
        raise BadInput(
            "Send the search as multipart/form-data (field 'image') or as JSON "
            '({"image_id": ...}).'
        )
    form = await request.form()
    unknown = sorted(set(form.keys()) - KNOWN_PARTS)
    if unknown:
        raise BadInput(
            f"'{unknown[0]}' is not something a search takes: send the picture as 'image' "
            "(or several as 'images'), with k, threshold, weights, filters or box beside it."
        )
    if len(form.getall("image", [])) > 1:
        raise BadInput("Send one 'image' part; for several query images, use 'images'.")
    image = form.get("image")
    upload = (
        (image.filename or "query", await image.read()) if isinstance(image, UploadFile) else None
    )
    parts = [*form.getall("images", []), *form.getall("images[]", [])]
    if not all(isinstance(p, UploadFile) for p in parts):
        raise BadInput("Each 'images' part must be an image file, not text.")
    uploads = [(p.filename or f"query {i + 1}", await p.read()) for i, p in enumerate(parts)]
    fields: dict[str, Any] = {}
    for name in ("image_id", "text", *FORM_FIELDS):
        value = form.get(name)
        if isinstance(value, str):  # sent empty: refused as what it is, not taken as absent
            fields[name] = _form_value(name, value.strip())
    for name in FORM_LISTS:
        values = [v.strip() for v in form.getall(name, []) if isinstance(v, str)]
        if len(values) == 1 and values[0].startswith("["):  # one JSON array
            fields[name] = _json_part(name, values[0])
        elif values:
            fields[name] = values
    try:
        query = msgspec.convert(fields, SearchQuery, strict=False)
    except msgspec.ValidationError as exc:
        raise BadInput(validation_sentence(str(exc))) from None
    if upload is None and not uploads and not (query.image_id or query.text or query.image_ids):
        raise BadInput("Send the query image as a multipart file field named 'image'.")
    return Body(query, upload, uploads)


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
    return _json_part(name, value) if name in JSON_PARTS else value


def _json_part(name: str, value: str) -> Any:
    try:
        return _whole_numbers(msgspec.json.decode(value))
    except msgspec.DecodeError:
        raise BadInput(f"The field {name!r} must be JSON; got {value[:80]!r}.") from None


def search_request(body: Body) -> SearchRequest:
    """The engine's request for this query: one shape for every way in."""
    query = body.query
    name, data = body.upload if body.upload is not None else ("query", None)
    several = bool(body.uploads or query.image_ids)
    if data is None and not several and query.image_id is None and query.text is None:
        raise BadInput(
            "Send an 'image' (multipart), an 'image_id' or a 'text' (JSON) to search with."
        )
    if several and query.box is not None:
        raise BadInput(
            "With several query images, crop each in 'boxes' (one per image, in order), "
            "not in 'box'."
        )
    if not several and query.boxes is not None:
        raise BadInput("'boxes' crops several query images: for one, use 'box'.")
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
        filters=_filters(query),
        box=query.box,
        threshold=query.threshold,
        queries=_query_images(body) if several else (),
        combine=query.combine,
        liked=tuple(query.liked or ()),
        disliked=tuple(query.disliked or ()),
        inside=query.inside,
        exclude=tuple(query.exclude or ()),
    )


def _query_images(body: Body) -> tuple[QueryImage, ...]:
    """The uploaded ``images``, then the ``image_ids``, each with its crop from ``boxes``."""
    given = [QueryImage(data=data, name=name) for name, data in body.uploads]
    given += [QueryImage(image_id=i, name=i) for i in body.query.image_ids or ()]
    boxes = list(body.query.boxes or ())
    if len(boxes) > len(given):
        raise BadInput(
            f"'boxes' has {len(boxes)} crops for {len(given)} query images: give at most one "
            "per image (null leaves one whole)."
        )
    boxes += [None] * (len(given) - len(boxes))
    return tuple(
        QueryImage(data=q.data, name=q.name, image_id=q.image_id, box=box)
        for q, box in zip(given, boxes, strict=True)
    )


def _filters(query: SearchQuery) -> Filters | None:
    f = query.filters
    if f is None:
        return None
    return Filters(
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
        combine=query.combine if any(h.query_index is not None for h in result.hits) else None,
    )


async def _search(request: Request[Any, Any, Any], services: Services) -> SearchResponse:
    body = await read_query(request)
    search = services.ready_lookalike().search
    result = await services.run(search.run, search_request(body))
    services.metrics.observe_search(result.timings)
    return to_response(result, body.query)


class SearchController(Controller):
    path = "/api/v1/search"
    tags = ("search",)

    @post(
        operation_id="search",
        responses=ERROR_RESPONSES,
        operation_class=SearchOperation,
        status_code=200,
    )
    async def search(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> SearchResponse:
        """Find the images that look like a query image: uploaded (multipart field ``image``)
        or already in the library (JSON ``image_id``); or like several (up to 8: ``images``
        parts, ``image_ids``), combined by ``combine``, each hit saying which it matched best
        (``matched_query``). ``liked`` / ``disliked`` refine any search. Hits come best
        first, with the fused score (0 to 1) and each model's cosine."""
        return await _search(request, services)


@post(
    "/search",
    operation_id="seedSearch",
    responses=ERROR_RESPONSES,
    operation_class=SearchOperation,
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
