"""The near-duplicate report: groups of images that look the same, across the library."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, get
from litestar.params import QueryParameter
from msgspec import Struct

from api.errors import ERROR_RESPONSES
from api.routes.deps import ServicesDep
from api.schemas import image_urls
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
        groups=[
            DuplicateGroup(
                score=round(min(1.0, g.score), 6),
                size=g.size,
                members=[_member(m) for m in g.members],
            )
            for g in report.groups
        ],
    )


class DuplicateController(Controller):
    path = "/api/v1/duplicates"
    tags = ("duplicates",)

    @get(operation_id="listDuplicates", responses=ERROR_RESPONSES)
    async def duplicates(
        self,
        services: ServicesDep,
        threshold: Annotated[
            float | None,
            QueryParameter(
                gt=0,
                le=1,
                description="default: the calibrated threshold",
                # Litestar drops 'gt' from the document for an optional parameter.
                schema_extra={"exclusiveMinimum": 0},
            ),
        ] = None,
        weights: Annotated[
            str | None, QueryParameter(description="e.g. clip=1,cnn=1,hsv=1")
        ] = None,
    ) -> DuplicateReport:
        """Groups of near-identical images across the whole library, best first: every pair
        in a group scores at least ``threshold`` (transitively), and an image stored at two
        paths is a group by itself. Runs over the whole library: seconds for 100k images."""
        duplicates = services.ready_lookalike().duplicates
        return to_report(await services.run(duplicates.report, threshold, parse_weights(weights)))
