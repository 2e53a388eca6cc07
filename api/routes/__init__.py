"""HTTP route handlers, grouped by what they serve. Each handler parses, calls one engine
function on the worker pool and returns a Struct from ``api.schemas``."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler


def api_routes() -> list[ControllerRouterHandler]:
    from api.routes.duplicate_review import DuplicateReviewController, duplicates_csv
    from api.routes.duplicates import DuplicateController
    from api.routes.images import ImageController
    from api.routes.jobs import JobController
    from api.routes.login import LoginController
    from api.routes.ops import OpsController
    from api.routes.search import SearchController, seed_reindex, seed_search
    from api.routes.search_sheet import SearchSheetController
    from api.routes.search_stream import SearchStreamController

    return [
        OpsController,
        LoginController,
        SearchController,
        SearchSheetController,
        SearchStreamController,
        ImageController,
        JobController,
        DuplicateController,
        DuplicateReviewController,
        duplicates_csv,
        seed_search,
        seed_reindex,
    ]
