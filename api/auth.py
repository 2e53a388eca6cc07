"""Who is asking, and may they? Built on Litestar's own pieces.

* ``AuthMiddleware`` (Litestar's ``AbstractAuthenticationMiddleware``) accepts either an API
  key (``Authorization: Bearer <key>``) or the admin's server-side session, and refuses
  everything else with 401. Routes marked ``opt={"public": True}`` skip it.
* ``requires_write`` is a guard: read keys may search and view, not change anything.
* ``SessionConfig`` is Litestar's server-side session with two changes: the session id is
  replaced at login (no session fixation), and an anonymous visit stores nothing.
* ``CSRFMiddleware`` is Litestar's CSRF middleware, skipped for API-key requests, with its
  token bound to the session: signed with a key derived (HMAC) from the session id, so a
  token is worth nothing with another session, and a new one is issued at login.
* A session lasts a week without a request, and ``SESSION_ABSOLUTE_S`` at most in all.
* While the stored password is the generated one, the session may only change it.

Order in the stack: session -> auth -> (metrics) -> CSRF -> handler, so an anonymous request
gets 401 before CSRF is even looked at.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import MediaType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.middleware.csrf import CSRFMiddleware as _LitestarCSRF
from litestar.middleware.csrf import generate_csrf_token
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.types import Empty
from litestar.utils.scope.state import ScopeState

from engine.accounts import ApiKeyStore, PasswordStore, Scope

if TYPE_CHECKING:
    from litestar.config.csrf import CSRFConfig
    from litestar.connection import ASGIConnection
    from litestar.handlers import BaseRouteHandler
    from litestar.types import ASGIApp, Message, Receive, ScopeSession, Send
    from litestar.types import Scope as ASGIScope

PUBLIC_OPT = "public"  # opt key of routes anyone may call (also used by api.ui's static files)
PAGE_OPT = "page"  # opt key of HTML pages: anonymous visitors are sent to /login, not 401
ROTATE_SESSION = "lookalike_rotate_session"  # scope state: the id the login handler chose
API_KEY: Literal["api_key"] = "api_key"
SESSION: Literal["session"] = "session"
ADMIN = "admin"
SESSION_COOKIE = "lookalike_session"
# However active, a session ends this long after its login: a stolen cookie stays useful
# for at most this long, even to someone who keeps it busy.
SESSION_ABSOLUTE_S = 30 * 24 * 3600
PASSWORD_PAGE = "/password"  # where a session with the generated password is sent
MUST_CHANGE = "Choose your own password first: the generated one is meant for the first login only."


def now() -> float:
    """The clock sessions are timed by (a seam for tests)."""
    return time.time()


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
    csrf_secret: str = ""

    def csrf_key(self, session_id: str | None) -> str:
        """The key CSRF tokens of this session are signed with ('' : no session)."""
        message = f"csrf:{session_id or ''}".encode()
        return hmac.new(self.csrf_secret.encode(), message, hashlib.sha256).hexdigest()


def auth_state(connection: ASGIConnection[Any, Any, Any, Any]) -> AuthState:
    state: AuthState = connection.app.state.auth
    return state


def key_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The API key's principal; None without an Authorization header; 401 for a bad one."""
    header = connection.headers.get("authorization")
    if header is None:
        return None
    # A key, when sent, is the only credential looked at: a bad key is a 401 even with a
    # valid session cookie alongside, so a script never silently acts as admin.
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthorizedException("Send an API key as 'Authorization: Bearer <key>'.")
    key = auth_state(connection).keys.verify(token.strip())
    if key is None:
        raise NotAuthorizedException("This API key is not valid: mistyped or revoked.")
    return Principal(API_KEY, key.scope, key.id)


class AuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        principal = key_principal(connection)
        if principal is not None:
            return AuthenticationResult(principal, API_KEY)
        passwords = auth_state(connection).passwords
        session = connection.scope.get("session") or {}
        if (
            isinstance(session, dict)
            and session.get("user") == ADMIN
            and session.get("pwv") == passwords.fingerprint()
        ):
            if now() - float(session.get("since") or 0) > SESSION_ABSOLUTE_S:
                await _end_session(connection)
                raise NotAuthorizedException("The session has ended: please log in again.")
            if passwords.must_change() and connection.scope["path"] not in (
                PASSWORD_PAGE,
                "/logout",
            ):
                raise PermissionDeniedException(MUST_CHANGE)
            return AuthenticationResult(Principal(SESSION, "write", ADMIN), SESSION)
        raise NotAuthorizedException(
            "Log in first, or send an API key as 'Authorization: Bearer <key>'."
        )


async def _end_session(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """Forget the session on both sides: an error response may skip the session's own save."""
    connection.clear_session()
    session_id = connection.cookies.get(SESSION_COOKIE)
    if session_id:
        await connection.app.stores.get("sessions").delete(session_id)


def requires_write(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for routes that change the library (upload, tag, delete, reindex, reconcile)."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal) or user.scope != "write":
        raise PermissionDeniedException(
            "This API key can only read: creating, changing or deleting needs a key made "
            "with `lookalike apikey create --scope write`."
        )


def requires_session(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for the admin's own settings (the password): no API key may change them."""
    user = connection.scope.get("user")
    if not isinstance(user, Principal) or user.kind != SESSION:
        raise PermissionDeniedException("Only the admin, logged in, can change the password.")


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
        rotated = connection.scope.get("state", {}).get(ROTATE_SESSION)
        if session_id is None or rotated:
            if session_id:
                await self.delete(session_id, store)
            session_id = rotated or self.generate_session_id()
        await self.set(session_id, self.serialize_data(scope_session, connection.scope), store)
        headers.add("Set-Cookie", cookie(session_id, max_age=self.config.max_age))


@dataclass
class SessionConfig(ServerSideSessionConfig):
    _backend_class = SessionBackend


class CSRFMiddleware:
    """Litestar's CSRF check (double-submit cookie, HMAC-signed), skipped for API keys: a
    browser never attaches an Authorization header by itself, so a forged cross-site request
    cannot carry one. The cookie is marked Secure per request when ``cookie_secure='auto'``.

    Bound to the session: Litestar's middleware runs with the session's own signing key
    (``AuthState.csrf_key``), so a token read from one session (or taken before a login)
    fails with another, and a page asked for with a token of another session gets a new one.
    """

    def __init__(self, app: ASGIApp, config: CSRFConfig, cookie_secure: Any = "auto") -> None:
        self.app = app
        self.config = config
        self.cookie_secure = cookie_secure

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("auth") == API_KEY:
            await self.app(scope, receive, send)
            return
        key = scope["app"].state.auth.csrf_key(session_id(scope))
        config = dataclasses.replace(
            self.config, secret=key, cookie_secure=secure_cookie(self.cookie_secure, scope)
        )
        csrf = _LitestarCSRF(self.app, config)
        state = ScopeState.from_scope(scope)
        cookies = state.cookies if isinstance(state.cookies, dict) else {}
        token = cookies.get(config.cookie_name)
        if token is not None and csrf._decode_csrf_token(token) is None:
            # Signed for another session (or none): as if absent, so a page gets a fresh one.
            state.cookies = {k: v for k, v in cookies.items() if k != config.cookie_name}
        await csrf(scope, receive, send)


def session_id(scope: ASGIScope) -> str | None:
    """The id of the live session this request carries, if any."""
    if not scope.get("session"):
        return None
    cookies = ScopeState.from_scope(scope).cookies
    return cookies.get(SESSION_COOKIE) if isinstance(cookies, dict) else None


def log_in(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Start the admin's session under a fresh id (see ``SessionBackend``); returns the CSRF
    token of the new session, for the caller to set as the cookie (rotated at login)."""
    import secrets

    auth = auth_state(connection)
    new_id = secrets.token_hex(32)
    connection.scope.setdefault("state", {})[ROTATE_SESSION] = new_id
    connection.set_session(
        {"user": ADMIN, "pwv": auth.passwords.fingerprint(), "since": time.time()}
    )
    return generate_csrf_token(auth.csrf_key(new_id))
