"""The near-duplicate report: groups of images that look the same, across the library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.openapi.spec import OpenAPIMediaType, Operation
from litestar.params import QueryParameter
from msgspec import Struct

from api.errors import ERROR_RESPONSES
from api.openapi import inline_schema, strict_struct_schemas
from api.routes.deps import ServicesDep
from api.schemas import Weights, image_urls
from engine.defaults import DUPLICATES_MIN_THRESHOLD
from engine.duplicates import Report
from engine.search import parse_weights


class DuplicateMember(Struct, kw_only=True):
    """One image content; ``paths`` lists every file holding exactly these bytes."""

    id: str
    filename: str
    paths: list[str]
    score: float  # best score with another member (1.0: exact copies)
    thumbnail_url: str
    file_url: str
    width: int | None = None
    height: int | None = None


class DuplicateGroup(Struct, kw_only=True):
    score: float  # the best pair's score
    size: int  # files in the group
    members: list[DuplicateMember]


class DuplicateReport(Struct, kw_only=True):
    threshold: float
    weights: dict[str, float]  # role -> weight
    groups: list[DuplicateGroup]
    # More pairs than the report groups scored above the threshold: the groups are partial.
    truncated: bool = False


def _member(m: Any) -> DuplicateMember:
    thumb, file = image_urls(m.id)
    name = m.payload.get("filename") or (m.paths[0].rsplit("/", 1)[-1] if m.paths else "")
    return DuplicateMember(
        id=m.id,
        filename=name,
        paths=m.paths,
        score=round(min(1.0, m.score), 6),
        thumbnail_url=thumb,
        file_url=file,
        width=m.payload.get("width"),
        height=m.payload.get("height"),
    )


def to_report(report: Report) -> DuplicateReport:
    return DuplicateReport(
        threshold=report.threshold,
        weights=report.weights,
        truncated=report.truncated,
        groups=[
            DuplicateGroup(
                score=round(min(1.0, g.score), 6),
                size=g.size,
                members=[_member(m) for m in g.members],
            )
            for g in report.groups
        ],
    )


def decode_weights(text: str | None) -> dict[str, float] | None:
    """The ``weights`` parameter: a JSON Weights object, or the short 'clip=1,cnn=0.5'."""
    if text is None or text == "null":
        return None
    if text.lstrip().startswith("{"):
        return msgspec.json.decode(text, type=Weights).as_dict()
    return parse_weights(text)


@dataclass
class _DuplicatesOperation(Operation):
    """``weights`` is documented as what it is, a JSON object (a structured parameter)."""

    def __post_init__(self) -> None:
        schema = inline_schema(Weights, extra=strict_struct_schemas())
        for parameter in self.parameters or ():
            if getattr(parameter, "name", None) == "weights":
                parameter.schema = None  # type: ignore[union-attr]
                parameter.content = {"application/json": OpenAPIMediaType(schema=schema)}  # type: ignore[arg-type, union-attr]


class DuplicateController(Controller):
    path = "/api/v1/duplicates"
    tags = ("duplicates",)

    @get(
        operation_id="listDuplicates",
        responses=ERROR_RESPONSES,
        operation_class=_DuplicatesOperation,
    )
    async def duplicates(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        threshold: Annotated[
            float | None,
            QueryParameter(
                ge=DUPLICATES_MIN_THRESHOLD,
                le=1,
                description=f"{DUPLICATES_MIN_THRESHOLD} to 1; default: the calibrated one",
            ),
        ] = None,
        weights: Annotated[
            str | None,
            QueryParameter(
                description='JSON, e.g. {"clip": 1, "cnn": 1, "hsv": 0} (or clip=1,cnn=1,hsv=0)'
            ),
        ] = None,
    ) -> DuplicateReport:
        """Groups of near-identical images across the whole library, best first: every pair
        in a group scores at least ``threshold`` (transitively), and an image stored at two
        paths is a group by itself. At most 100,000 pairs are grouped (``truncated`` says
        when more matched). One report is computed at a time, and one
        whose client has left is stopped."""
        duplicates = services.ready_lookalike().duplicates
        used = decode_weights(weights)

        def work(cancelled: Any) -> Report:
            return duplicates.report(threshold, used, cancelled=cancelled)

        return to_report(await services.reports.run(work, request.receive))
