"""The near-duplicate report: groups of images that look the same, across the library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.openapi.spec import OpenAPIMediaType, Operation
from litestar.params import QueryParameter

from api.duplicate_schemas import DuplicateGroup, DuplicateMember, DuplicateReport
from api.errors import ERROR_RESPONSES
from api.openapi import inline_schema, strict_struct_schemas
from api.routes.deps import ServicesDep
from api.schemas import Weights, image_urls
from engine.defaults import DUPLICATES_MIN_THRESHOLD
from engine.duplicate_review import ReviewedGroup, ReviewReport
from engine.search import parse_weights


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


def to_group(g: ReviewedGroup) -> DuplicateGroup:
    return DuplicateGroup(
        score=round(min(1.0, g.group.score), 6),
        size=g.group.size,
        members=[_member(m) for m in g.group.members],
        kind=g.kind,  # type: ignore[arg-type]
        signature=g.signature,
        decision=g.decision,  # type: ignore[arg-type]
        kept=g.kept,
        decided_at=g.decided_at,
        reopened=g.reopened,
    )


def to_report(reviewed: ReviewReport) -> DuplicateReport:
    report = reviewed.report
    return DuplicateReport(
        threshold=report.threshold,
        weights=report.weights,
        truncated=report.truncated,
        groups=[to_group(g) for g in reviewed.groups],
        hidden=reviewed.hidden,
    )


def decode_weights(text: str | None) -> dict[str, float] | None:
    """The ``weights`` parameter: a JSON Weights object, or the short 'clip=1,cnn=0.5'."""
    if text is None or text == "null":
        return None
    if text.lstrip().startswith("{"):
        return msgspec.json.decode(text, type=Weights).as_dict()
    return parse_weights(text)


@dataclass
class WeightsOperation(Operation):
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
        operation_class=WeightsOperation,
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
        include_dismissed: Annotated[
            bool,
            QueryParameter(description="also list groups marked not_duplicates or keep_all"),
        ] = False,
    ) -> DuplicateReport:
        """Groups of near-identical images across the whole library, best first: every pair
        in a group scores at least ``threshold`` (transitively), and an image stored at two
        paths is a group by itself. At most 100,000 pairs are grouped (``truncated`` says
        when more matched). One report is computed at a time, and one
        whose client has left is stopped. Each group is an ``exact`` copy or ``similar``,
        with its signature and remembered decision; groups marked not_duplicates or
        keep_all are left out unless ``include_dismissed`` (``hidden`` counts them)."""
        review = services.ready_lookalike().duplicate_review
        used = decode_weights(weights)

        def work(cancelled: Any) -> ReviewReport:
            return review.report(
                threshold, used, include_dismissed=include_dismissed, cancelled=cancelled
            )

        return to_report(await services.reports.run(work, request.receive))
