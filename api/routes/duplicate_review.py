"""Reviewing the duplicates report: decisions on groups, the bulk keep-one, the CSV export
and a group's contact sheet. The use cases are ``engine.duplicate_review`` and
``engine.duplicate_export``; these handlers only translate."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, QueryParameter

from api.auth import requires_write
from api.duplicate_schemas import (
    DeletedImage,
    DuplicateApply,
    DuplicateApplyResult,
    DuplicateConflict,
    DuplicateDecision,
    DuplicateGroup,
)
from api.errors import ERROR_RESPONSES, describe
from api.routes.deps import ServicesDep
from api.routes.duplicates import WeightsOperation, decode_weights, to_group
from engine.defaults import DUPLICATES_MIN_THRESHOLD
from engine.duplicate_export import to_csv
from engine.duplicate_review import GroupChanged

if TYPE_CHECKING:
    from engine.duplicate_review import ReviewedGroup

DECISION_RESPONSES = {
    **ERROR_RESPONSES,
    409: ResponseSpec(
        DuplicateConflict,
        description="The group changed since it was shown: the body carries it as it is now.",
        generate_examples=False,
    ),
}
SHEET_TYPES = {"pdf": "application/pdf", "png": "image/png"}
Threshold = Annotated[
    float | None,
    QueryParameter(ge=DUPLICATES_MIN_THRESHOLD, le=1, description="default: the calibrated one"),
]
WeightsText = Annotated[
    str | None, QueryParameter(description="e.g. clip=1,cnn=1,hsv=0 (default: calibrated)")
]


def _conflict(exc: GroupChanged) -> Response[Any]:
    status, code, detail = describe(exc)
    group = to_group(exc.group) if exc.group is not None else None
    body = DuplicateConflict(status=status, error=code, detail=detail, group=group)
    return Response(body, status_code=status)


class DuplicateReviewController(Controller):
    path = "/api/v1/duplicates"
    tags = ("duplicates",)

    @post(
        "/decisions",
        operation_id="decideDuplicateGroup",
        responses=DECISION_RESPONSES,
        status_code=200,
        guards=[requires_write],
    )
    async def decide(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[DuplicateDecision],
    ) -> Response[DuplicateGroup | DuplicateConflict]:
        """Remember a decision on one group (``members``: the image ids shown in it). It is
        stored on the images, so it survives restarts and reindexing; a dismissed group
        shows again only when a new image joins it. 409 when the group has changed."""
        review = services.ready_lookalike().duplicate_review
        weights = data.weights.as_dict() if data.weights else None

        def work(_cancelled: Callable[[], bool]) -> ReviewedGroup:
            return review.decide(
                data.members, data.decision, data.kept,
                signature_seen=data.signature, threshold=data.threshold, weights=weights,
            )  # fmt: skip

        try:  # the group is found in a whole report: one at a time, like the others
            group = await services.reports.run(work, request.receive)
        except GroupChanged as exc:
            return _conflict(exc)
        return Response(to_group(group), status_code=200)

    @post(
        "/apply",
        operation_id="applyDuplicateDecisions",
        responses=ERROR_RESPONSES,
        status_code=200,
        guards=[requires_write],
    )
    async def apply(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        data: JSONBody[DuplicateApply],
    ) -> DuplicateApplyResult:
        """Delete every image but the kept one in each group marked keep_one (files to the
        trash). Without ``confirm: true`` nothing is deleted and the 400 says how many
        images would be."""
        review = services.ready_lookalike().duplicate_review
        weights = data.weights.as_dict() if data.weights else None
        result = await services.reports.run(
            lambda _cancelled: review.apply(data.confirm, data.threshold, weights),
            request.receive,
        )
        deleted = [DeletedImage(id=d.id, paths=d.paths, group=d.signature) for d in result.deleted]
        return DuplicateApplyResult(deleted=deleted, groups=result.groups)

    @get(
        "/sheet",
        operation_id="getDuplicateGroupSheet",
        responses=ERROR_RESPONSES,
        media_type="application/pdf",
        content_media_type="application/octet-stream",
        operation_class=WeightsOperation,
    )
    async def sheet(
        self,
        request: Request[Any, Any, Any],
        services: ServicesDep,
        group: Annotated[
            str, QueryParameter(pattern=r"^[0-9a-f]{20}$", description="the group's signature")
        ],
        format: Annotated[
            Literal["pdf", "png"], QueryParameter(description="pdf (default) or png")
        ] = "pdf",
        threshold: Threshold = None,
        weights: WeightsText = None,
    ) -> Response[bytes]:
        """One group as a contact sheet (PDF or PNG): thumbnails, scores and paths."""
        lk = services.ready_lookalike()

        def work(_cancelled: Callable[[], bool]) -> bytes:
            from engine.contact_sheet import group_sheet, render

            found = lk.duplicate_review.find([group], threshold, decode_weights(weights))
            t = threshold if threshold is not None else lk.catalog.defaults().duplicates_threshold
            return render(group_sheet(found.group, lk.thumbnails.path, t), format)

        body = await services.reports.run(work, request.receive)
        name = f"duplicates-{group[:8]}.{format}"
        headers = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(body, media_type=SHEET_TYPES[format], headers=headers)


@get(
    "/api/v1/duplicates.csv",
    operation_id="exportDuplicatesCsv",
    tags=["duplicates"],
    responses=ERROR_RESPONSES,
    media_type="text/csv",
    operation_class=WeightsOperation,
)
async def duplicates_csv(
    request: Request[Any, Any, Any],
    services: ServicesDep,
    threshold: Threshold = None,
    weights: WeightsText = None,
    include_dismissed: Annotated[
        bool, QueryParameter(description="also list dismissed groups")
    ] = True,
) -> Response[str]:
    """The duplicates report as CSV, one row per image: group (signature), kind, score,
    paths, decision, kept, id. Cells that a spreadsheet would run as a formula are escaped."""
    review = services.ready_lookalike().duplicate_review
    used = decode_weights(weights)

    def work(cancelled: Any) -> str:
        report = review.report(
            threshold, used, include_dismissed=include_dismissed, cancelled=cancelled
        )
        return to_csv(report.groups)

    text = await services.reports.run(work, request.receive)
    headers = {"Content-Disposition": 'attachment; filename="duplicates.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
