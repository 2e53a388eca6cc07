"""Who is asking, and may they? Built on Litestar's own pieces.

* ``AuthMiddleware`` (Litestar's ``AbstractAuthenticationMiddleware``) accepts either an API
  key (``Authorization: Bearer <key>``) or the admin's server-side session, and refuses
  everything else with 401. Routes marked ``opt={"public": True}`` skip it.
* ``requires_write`` is a guard: read keys may search and view, not change anything.
* ``SessionConfig`` is Litestar's server-side session with two changes: the session id is
  replaced at login (no session fixation), and an anonymous visit stores nothing.
* ``CSRFMiddleware`` is Litestar's CSRF middleware, skipped for API-key requests.

Order in the stack: session -> auth -> (metrics) -> CSRF -> handler, so an anonymous request
gets 401 before CSRF is even looked at.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import MediaType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.csrf import CSRFMiddleware as _LitestarCSRF
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.types import Empty

from engine.accounts import ApiKeyStore, PasswordStore, Scope

if TYPE_CHECKING:
    from litestar.config.csrf import CSRFConfig
    from litestar.connection import ASGIConnection
    from litestar.handlers import BaseRouteHandler
    from litestar.types import ASGIApp, Message, Receive, ScopeSession, Send
    from litestar.types import Scope as ASGIScope

PUBLIC_OPT = "public"  # opt key of routes anyone may call (also used by api.ui's static files)
PAGE_OPT = "page"  # opt key of HTML pages: anonymous visitors are sent to /login, not 401
ROTATE_SESSION = "lookalike_rotate_session"  # scope state flag set by the login handler
API_KEY: Literal["api_key"] = "api_key"
SESSION: Literal["session"] = "session"
ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    kind: Literal["api_key", "session"]
    scope: Scope
    name: str  # 'admin' for the session, the key's id for an API key


@dataclass
class AuthState:
    """Lives on ``app.state.auth``."""

    passwords: PasswordStore
    keys: ApiKeyStore
    cookie_secure: bool | Literal["auto"]


def auth_state(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthState:
    state: AuthState = connection.app.state.auth
    return state


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        auth = auth_state(connection)
        header = connection.headers.get("authorization")
        if header is not None:
            # A key, when sent, is the only credential looked at: a bad key is a 401 even
            # with a valid session cookie alongside, so a script never silently acts as admin.
            scheme, _, token = header.strip().partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise NotAuthorizedException("Send an API key as 'Authorization: Bearer <key>'.")
            key = auth.keys.verify(token.strip())
            if key is None:
                raise NotAuthorizedException("This API key is not valid: mistyped or revoked.")
            return AuthenticationResult(Principal(API_KEY, key.scope, key.id), API_KEY)
        session = connection.scope.get("session") or {}
        if (
            isinstance(session, dict)
            and session.get("user") == ADMIN
            and session.get("pwv") == auth.passwords.fingerprint()
        ):
            return AuthenticationResult(Principal(SESSION, "write", ADMIN), SESSION)
        raise NotAuthorizedException(
            "Log in first, or send an API key as 'Authorization: Bearer <key>'."
        )


def requires_write(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for routes that change the library (upload, tag, delete, reindex, reconcile)."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal) or user.scope != "write":
        raise PermissionDeniedException(
            "This API key can only read: creating, changing or deleting needs a key made "
            "with `lookalike apikey create --scope write`."
        )


def is_page(handler: Any) -> bool:
    """HTML pages answer anonymous visitors with a redirect to /login instead of a 401."""
    if handler is None:
        return False
    media = getattr(handler, "media_type", "")
    media = getattr(media, "value", media)  # MediaType.HTML or a plain string
    return bool(handler.opt.get(PAGE_OPT)) or str(media).startswith(MediaType.HTML.value)


def is_https(scope: ASGIScope) -> bool:
    if scope.get("scheme") == "https":
        return True
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-proto":
            return value.split(b",")[0].strip().lower() == b"https"
    return False


def secure_cookie(mode: bool | Literal["auto"], scope: ASGIScope) -> bool:
    return is_https(scope) if mode == "auto" else bool(mode)


class SessionBackend(ServerSideSessionBackend):
    """Litestar's file-backed server-side sessions, plus rotation and quiet anonymity."""

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        store = self.config.get_store_from_app(connection.scope["app"])
        headers = MutableScopeHeaders.from_message(message)
        old_id = connection.cookies.get(self.config.key)
        old_id = None if old_id in (None, "", "null") else old_id
        secure = secure_cookie(auth_state(connection).cookie_secure, connection.scope)

        def cookie(value: str, **when: Any) -> str:
            return Cookie(
                key=self.config.key,
                value=value,
                path=self.config.path,
                domain=self.config.domain,
                httponly=True,
                samesite=self.config.samesite,
                secure=secure,
                **when,
            ).to_header(header="")

        if scope_session is Empty or not scope_session:
            if old_id:  # logout, or a stale cookie: forget it on both sides
                await self.delete(old_id, store)
                headers.add("Set-Cookie", cookie("null", expires=0))
            return  # an anonymous visit stores nothing and sets no cookie
        session_id = old_id
        if session_id is None or connection.scope.get("state", {}).get(ROTATE_SESSION):
            if session_id:
                await self.delete(session_id, store)
            session_id = self.generate_session_id()
        await self.set(session_id, self.serialize_data(scope_session, connection.scope), store)
        headers.add("Set-Cookie", cookie(session_id, max_age=self.config.max_age))


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = SessionBackend


class CSRFMiddleware:
    """Litestar's CSRF check (double-submit cookie, HMAC-signed), skipped for API keys: a
    browser never attaches an Authorization header by itself, so a forged cross-site request
    cannot carry one. The cookie is marked Secure per request when ``cookie_secure='auto'``."""

    def __init__(self, app: ASGIApp, config: CSRFConfig, cookie_secure: Any = "auto") -> None:
        self.app = app
        self.cookie_secure = cookie_secure
        self._plain = _LitestarCSRF(app, config)
        self._secure = _LitestarCSRF(app, dataclasses.replace(config, cookie_secure=True))

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("auth") == API_KEY:
            await self.app(scope, receive, send)
            return
        secure = secure_cookie(self.cookie_secure, scope)
        await (self._secure if secure else self._plain)(scope, receive, send)


def log_in(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Start the admin's session under a fresh id (see ``SessionBackend``)."""
    connection.scope.setdefault("state", {})[ROTATE_SESSION] = True
    connection.set_session({"user": ADMIN, "pwv": auth_state(connection).passwords.fingerprint()})
