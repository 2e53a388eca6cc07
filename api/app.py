"""The one app factory: ``create_app(settings)`` wires routes, auth, errors and the engine.

Served by ``lookalike serve`` (uvicorn, ``factory=True``). Nothing happens at import time;
the engine is built and warmed up in the lifespan (see ``api.services``).

For the web UI's scripts: state-changing requests made with the session cookie (POST, PATCH,
DELETE) must carry the CSRF token in the **``x-csrftoken``** header (JSON and multipart
fetches) or a ``_csrf_token`` form field (plain HTML forms: ``{{ csrf_input | safe }}``). The
token is in the ``csrftoken`` cookie (readable by scripts on purpose) and, in templates,
``{{ csrf_token() }}``. Requests with ``Authorization: Bearer <API key>`` need no token.
Anonymous requests get 401 JSON from the API and a 303 to ``/login?next=...`` from pages
(handlers with ``opt={"page": True}`` or an HTML media type).
"""

from __future__ import annotations

import logging
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from litestar import Litestar, MediaType, get
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.static_files import create_static_files_router
from litestar.stores.file import FileStore
from litestar.stores.memory import MemoryStore
from litestar.template.config import TemplateConfig

from api.auth import (
    PAGE_OPT,
    PUBLIC_OPT,
    SESSION_COOKIE,
    AuthMiddleware,
    AuthState,
    CSRFMiddleware,
    SessionConfig,
    is_https,
)
from api.errors import exception_to_response
from api.metrics import prometheus_config
from api.openapi import CSRF_COOKIE, CSRF_HEADER, openapi_config
from api.query_params import refuse_unknown_query_params
from api.routes import api_routes
from api.routes.deps import provide_services
from api.services import Services
from engine.accounts import ApiKeyStore, PasswordStore, load_secret_key
from engine.errors import ConfigError
from engine.uploads import MAX_UPLOAD_FILES

if TYPE_CHECKING:
    from litestar.types import ControllerRouterHandler, Message, Scope

    from engine.settings import Settings

log = logging.getLogger(__name__)

API_DIR = Path(__file__).parent
MULTIPART_OVERHEAD_MB = 1
SESSION_MAX_AGE = 7 * 24 * 3600  # renewed by every request: a week without one logs out
# Paths that need no session, so no CSRF cookie either (they change nothing).
NO_SESSION = ["^/static/", "^/health$", "^/ready$"]
# Browsers that saw this over HTTPS use only HTTPS for the host for a year (they ignore the
# header on plain HTTP, RFC 6797). No includeSubDomains: other hosts of the domain are not ours.
HSTS = "max-age=31536000"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI (the API docs only) sets inline styles from its bundle; scripts stay 'self'.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


def create_app(settings: Settings | None = None) -> Litestar:
    from engine.settings import get_settings

    settings = settings or get_settings()
    secret = load_secret_key(
        settings.data_dir, settings.secret_key.get_secret_value() if settings.secret_key else None
    )
    csrf = CSRFConfig(
        secret=secret, cookie_name=CSRF_COOKIE, header_name=CSRF_HEADER, exclude=NO_SESSION
    )
    sessions = SessionConfig(
        key=SESSION_COOKIE,
        max_age=SESSION_MAX_AGE,  # SessionBackend rewrites the session on every response
        store="sessions",
        exclude=NO_SESSION,
    )
    app = Litestar(
        route_handlers=[*api_routes(), *_ui_routes()],
        middleware=[
            *_proxy_headers(settings.trusted_proxy_list()),
            sessions.middleware,
            DefineMiddleware(AuthMiddleware, exclude_from_auth_key=PUBLIC_OPT),
            prometheus_config().middleware,
            DefineMiddleware(CSRFMiddleware, config=csrf, cookie_secure=settings.cookie_secure),
        ],
        dependencies={"services": Provide(provide_services, sync_to_thread=False)},
        exception_handlers={Exception: exception_to_response},
        before_request=refuse_unknown_query_params,
        before_send=[_security_headers],
        on_startup=[_startup],
        on_shutdown=[_shutdown],
        state=State({"settings": settings, "csrf_secret": secret}),
        stores={
            "sessions": FileStore(settings.data_dir / "sessions", create_directories=True),
            "login_attempts": MemoryStore(),
        },
        template_config=_templates(),
        openapi_config=openapi_config(_version()),
        # The limit is per file (engine.uploads checks each one): a request may hold one
        # file of the largest size plus its multipart headers and the other fields.
        request_max_body_size=(settings.max_upload_mb + MULTIPART_OVERHEAD_MB) * 1024 * 1024,
        multipart_form_part_limit=MAX_UPLOAD_FILES + 10,
    )
    _allow_every_method(app)
    return app


def _allow_every_method(app: Litestar) -> None:
    """OPTIONS answers ``Allow`` with every method of its path. Litestar builds a path's
    OPTIONS handler when the path's first handler registers, over that route's methods;
    the handlers a controller adds later (POST beside GET) land in a new route that keeps
    the old OPTIONS handler, which then leaves them out. Point it at the final methods."""
    from litestar.routes import HTTPRoute

    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        handler = route.route_handler_map["OPTIONS"][0]
        for cell in getattr(handler.fn, "__closure__", None) or ():
            first = cell.cell_contents
            if isinstance(first, HTTPRoute) and first is not route:
                first.methods = route.methods


def _proxy_headers(trusted: list[str]) -> list[DefineMiddleware]:
    """Client address and scheme from X-Forwarded-For/-Proto, only from trusted proxies
    (``LOOKALIKE_TRUSTED_PROXIES``; none by default: the TCP peer is the client). uvicorn's
    middleware does the parsing; ``lookalike serve`` turns uvicorn's own copy off."""
    if not trusted:
        return []
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    # uvicorn's ASGI type hints are its own, not Litestar's: the same protocol.
    return [DefineMiddleware(ProxyHeadersMiddleware, trusted_hosts=trusted)]  # type: ignore[arg-type]


def _ui_routes() -> list[ControllerRouterHandler]:
    """The UI's pages and /static (``api.ui``), or a placeholder page and /static alone."""
    try:
        from api.ui import ui_routes
    except ModuleNotFoundError as exc:
        if exc.name != "api.ui":
            raise
        static = create_static_files_router(
            path="/static",
            directories=[API_DIR / "static"],
            include_in_schema=False,
            opt={PUBLIC_OPT: True},
        )
        return [_placeholder_index, static]
    return list(ui_routes())


@get(
    "/",
    operation_id="uiIndexPlaceholder",
    media_type=MediaType.HTML,
    include_in_schema=False,
    opt={PAGE_OPT: True},
)
async def _placeholder_index() -> str:
    return (
        "<!doctype html><title>Lookalike</title><h1>Lookalike</h1>"
        '<p>The web UI is not installed. The API is documented at <a href="/schema">/schema</a>.'
    )


def _templates() -> TemplateConfig[Any]:
    from litestar.plugins.jinja import JinjaTemplateEngine

    return TemplateConfig(directory=API_DIR / "templates", engine=JinjaTemplateEngine)


def _version() -> str:
    try:
        return version("lookalike")
    except PackageNotFoundError:
        return "0.0.0"


async def _startup(app: Litestar) -> None:
    settings: Settings = app.state.settings
    (settings.data_dir / "sessions").mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "sessions").chmod(0o700)  # file names are session ids (hashed)
    passwords = PasswordStore(settings.data_dir)
    initial = settings.admin_password.get_secret_value() if settings.admin_password else None
    try:
        generated = passwords.ensure_initial(initial)
    except Exception as exc:
        raise ConfigError(f"LOOKALIKE_ADMIN_PASSWORD cannot be used: {exc}") from exc
    if generated:
        # The password itself is never logged: logs are shipped, kept and shared.
        log.warning(
            "No admin password was set, so one was generated and written to %s (readable by "
            "its owner only). Log in with it: you will be asked to choose your own.",
            generated,
        )
    app.state.auth = AuthState(
        passwords,
        ApiKeyStore(settings.data_dir),
        settings.cookie_secure,
        csrf_secret=app.state.csrf_secret,
    )
    sessions = app.stores.get("sessions")
    if isinstance(sessions, FileStore):
        await sessions.delete_expired()
    services = Services(settings)
    app.state.services = services
    services.start()


async def _shutdown(app: Litestar) -> None:
    services: Services | None = app.state.get("services")
    if services is not None:
        import anyio.to_thread

        await anyio.to_thread.run_sync(services.close)


async def _security_headers(message: Message, scope: Scope) -> None:
    """On every response, errors and static files included."""
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    path = scope.get("path", "")
    headers.setdefault("Content-Security-Policy", DOCS_CSP if path.startswith("/schema") else CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if is_https(scope):
        headers.setdefault("Strict-Transport-Security", HSTS)
    if not path.startswith("/static/"):
        # Answers depend on who asks: no shared cache may keep them.
        headers.setdefault("Cache-Control", "no-store")
