"""The web UI's pages: server-rendered templates over the REST API.

The pages carry no data of their own: their scripts (``api/static/js``) call ``/api/v1`` with the
session cookie, so the UI and a script see exactly the same behaviour and errors. The handlers
only render a template with the few values the scripts need before their first request.

The app factory registers ``ui_routes()`` and a ``TemplateConfig`` over ``TEMPLATE_DIR``. Static
files (``/static``) are part of ``ui_routes()`` because the pages are what needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from api.auth import PAGE_OPT, PUBLIC_OPT
from api.openapi import CSRF_COOKIE, CSRF_HEADER
from engine.colour import DEFAULT_TOLERANCE, colour_names
from engine.defaults import DEFAULT_K, K_CHOICES
from engine.uploads import MAX_UPLOAD_FILES

TEMPLATE_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/static"


# Pages are not part of the REST API: keep them out of the OpenAPI document, and mark them so
# auth can answer an anonymous page request with a redirect to /login instead of a 401.
_PAGE: dict[str, Any] = {"include_in_schema": False, "opt": {PAGE_OPT: True}}


def _context(request: Request[Any, Any, Any], active: str) -> dict[str, Any]:
    settings = request.app.state.settings
    return {
        "active": active,
        # The one source of search defaults (engine/defaults.py); the near-duplicate badge
        # comes with each hit from the server.
        "k_choices": K_CHOICES,
        "default_k": DEFAULT_K,
        # The scripts send the token from this cookie in this header (see api/app.py).
        "csrf_cookie": CSRF_COOKIE,
        "csrf_header": CSRF_HEADER,
        # Stated before an upload, and checked by the page before a file is sent.
        "max_upload_mb": settings.max_upload_mb,
        "max_upload_files": MAX_UPLOAD_FILES,
        "formats": ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"],
        "colour_names": colour_names(),
        "default_tolerance": int(DEFAULT_TOLERANCE),
    }


@get("/", name="ui:search", operation_id="uiSearchPage", **_PAGE)
async def search_page(request: Request[Any, Any, Any]) -> Template:
    return Template(template_name="search.html", context=_context(request, "search"))


@get("/library", name="ui:library", operation_id="uiLibraryPage", **_PAGE)
async def library_page(request: Request[Any, Any, Any]) -> Template:
    return Template(template_name="library.html", context=_context(request, "library"))


@get("/duplicates", name="ui:duplicates", operation_id="uiDuplicatesPage", **_PAGE)
async def duplicates_page(request: Request[Any, Any, Any]) -> Template:
    return Template(template_name="duplicates.html", context=_context(request, "duplicates"))


def ui_routes() -> list[ControllerRouterHandler]:
    """The pages and their static assets, for the app factory's ``route_handlers``."""
    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC_DIR],
        name="static",
        include_in_schema=False,
        # Assets are public (the login page needs them) and hold nothing secret.
        opt={PUBLIC_OPT: True},
    )
    return [search_page, library_page, duplicates_page, static]
