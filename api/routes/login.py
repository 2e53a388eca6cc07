"""Login and logout of the admin (the web UI), and the change of a generated password at the
first login. Scripts use API keys instead.

Two limits on guessing: five tries a minute per client address (Litestar's rate limit), and
a budget of failed logins shared by every client (``LoginGuard``): past it, each further
try must wait twice as long as the one before, so guessing from many addresses gains little.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from api.auth import (
    PAGE_OPT,
    PASSWORD_PAGE,
    PUBLIC_OPT,
    auth_state,
    log_in,
    requires_session,
    secure_cookie,
)
from api.openapi import CSRF_COOKIE
from engine.accounts import MIN_PASSWORD_LENGTH

# Five tries a minute per client address: a person mistyping is not slowed down, a password
# guesser gets 7,200 guesses a day instead of millions. Counted per address, before the
# password is checked; behind a proxy, list it in LOOKALIKE_TRUSTED_PROXIES so the address
# is the client's (an untrusted X-Forwarded-For is ignored).
LOGIN_RATE_LIMIT = RateLimitConfig(rate_limit=("minute", 5), store="login_attempts")
# Failed logins of all clients together, per window, before every try must wait.
FAILED_LOGIN_BUDGET = 20
FAILED_LOGIN_WINDOW_S = 15 * 60
BACKOFF_MAX_S = 5 * 60


class LoginGuard:
    """The failed-login budget shared by every client address. Past ``budget`` failures in
    ``window_s``, each try waits 2 s after the last failure, then 4, 8, ... up to
    ``max_wait_s``: guessers behind many addresses are slowed like one, and the admin, at
    worst, waits a few minutes. Lives on the event loop: no lock needed."""

    def __init__(
        self,
        budget: int = FAILED_LOGIN_BUDGET,
        window_s: float = FAILED_LOGIN_WINDOW_S,
        max_wait_s: float = BACKOFF_MAX_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget, self.window_s, self.max_wait_s = budget, window_s, max_wait_s
        self._clock = clock
        self._failures: deque[float] = deque()
        self._open_at = 0.0

    def check(self) -> None:
        """Refuse (429 with Retry-After) while the backoff lasts."""
        wait = self._open_at - self._clock()
        if wait > 0:
            raise TooManyRequestsException(
                f"Too many failed logins on this server: wait {math.ceil(wait)} s, then try again.",
                headers={"Retry-After": str(math.ceil(wait))},
            )

    def failed(self) -> None:
        now = self._clock()
        while self._failures and self._failures[0] <= now - self.window_s:
            self._failures.popleft()
        self._failures.append(now)
        excess = len(self._failures) - self.budget
        if excess > 0:
            self._open_at = now + min(2.0**excess, self.max_wait_s)


def login_guard(request: Request[Any, Any, Any]) -> LoginGuard:
    guard: LoginGuard | None = request.app.state.get("login_guard")
    if guard is None:
        guard = request.app.state.login_guard = LoginGuard()
    return guard


# Sentences for ?error=<code> (the code comes from a redirect; the text is never taken from
# the URL, so a crafted link cannot put words on this page).
ERRORS = {
    "too_many_requests": "Too many attempts: wait a minute, then try again.",
    "forbidden": "The form had expired. Please try again.",
    "logged_out": "You are logged out.",
}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class LoginForm(msgspec.Struct):
    password: str = ""


class PasswordForm(msgspec.Struct):
    password: str = ""
    confirm: str = ""


def safe_next(target: str | None) -> str:
    """Only local paths: an open redirect would let a phishing link borrow our login page.
    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so a path
    hiding '//' behind one of those would leave the site: refuse those too."""
    if (
        not target
        or not target.startswith("/")
        or target.startswith("//")
        or "\\" in target
        or _CONTROL.search(target)
    ):
        return "/"
    return target


def _signed_in(request: Request[Any, Any, Any], target: str) -> Redirect:
    """A new session (new id), with a new CSRF token bound to it, then ``target``."""
    token = log_in(request)
    secure = secure_cookie(auth_state(request).cookie_secure, request.scope)
    cookie = Cookie(key=CSRF_COOKIE, value=token, path="/", samesite="lax", secure=secure)
    return Redirect(target, status_code=303, cookies=[cookie])


def password_page(
    request: Request[Any, Any, Any], error: str | None = None, status_code: int = 200
) -> Template:
    target = safe_next(request.query_params.get("next"))
    return Template(
        template_name="password.html",
        context={
            "error": error,
            "must_change": auth_state(request).passwords.must_change(),
            "action": f"{PASSWORD_PAGE}?next={quote(target, safe='/')}",
            "min_length": MIN_PASSWORD_LENGTH,
            # Where Cancel and "Back" go: the page the admin came from, or the search page.
            "back": target,
            # A code, never text from the URL (as the login page's ?error=).
            "changed": error is None and request.query_params.get("changed") == "1",
        },
        status_code=status_code,
    )


def login_page(
    request: Request[Any, Any, Any], error: str | None = None, status_code: int = 200
) -> Template:
    target = safe_next(request.query_params.get("next"))
    return Template(
        template_name="login.html",
        context={
            "error": error,
            "next": target,
            "action": f"/login?next={quote(target, safe='/')}",
        },
        status_code=status_code,
    )


class LoginController(Controller):
    tags = ("auth",)
    include_in_schema = False

    @get("/login", operation_id="loginPage", opt={PUBLIC_OPT: True, PAGE_OPT: True})
    async def page(
        self, request: Request[Any, Any, Any], error: FromQuery[str | None] = None
    ) -> Template:
        """The login form."""
        return login_page(request, ERRORS.get(error or ""))

    @post(
        "/login",
        operation_id="login",
        opt={PUBLIC_OPT: True},
        middleware=[LOGIN_RATE_LIMIT.middleware],
        status_code=HTTP_303_SEE_OTHER,
    )
    async def login(
        self,
        request: Request[Any, Any, Any],
        data: URLEncodedBody[LoginForm],
    ) -> Redirect | Template:
        """Check the admin password; on success start a new session and go to ``next``
        (first to the password page while the password is the generated one)."""
        passwords = auth_state(request).passwords
        guard = login_guard(request)
        guard.check()  # before the password is looked at, right or wrong
        # argon2 is slow on purpose (tens of ms of CPU): keep it off the event loop.
        ok = await anyio.to_thread.run_sync(passwords.verify, data.password)
        if not ok:
            guard.failed()
            return login_page(request, "That password is not right.", status_code=401)
        target = safe_next(request.query_params.get("next"))
        if passwords.must_change():
            target = f"{PASSWORD_PAGE}?next={quote(target, safe='/')}"
        return _signed_in(request, target)

    @get(PASSWORD_PAGE, operation_id="passwordPage", opt={PAGE_OPT: True})
    async def password_page(self, request: Request[Any, Any, Any]) -> Template:
        """The form to choose a password (required after a first login with a generated one)."""
        return password_page(request)

    @post(
        PASSWORD_PAGE,
        operation_id="changePassword",
        opt={PAGE_OPT: True},
        status_code=303,
        guards=[requires_session],
    )
    async def change_password(
        self, request: Request[Any, Any, Any], data: URLEncodedBody[PasswordForm]
    ) -> Response[Any]:
        """Store a new admin password; every other session ends, this one goes on. The
        required first change goes straight on to ``next``; a change the admin chose comes
        back to this page, which says it is done."""
        if len(data.password) < MIN_PASSWORD_LENGTH:
            error = f"Choose at least {MIN_PASSWORD_LENGTH} characters."
            return password_page(request, error, status_code=400)
        if data.password != data.confirm:
            return password_page(request, "The two passwords differ.", status_code=400)
        passwords = auth_state(request).passwords
        required = passwords.must_change()
        await anyio.to_thread.run_sync(passwords.set, data.password)
        target = safe_next(request.query_params.get("next"))
        if not required:
            target = f"{PASSWORD_PAGE}?changed=1&next={quote(target, safe='/')}"
        return _signed_in(request, target)

    @post("/logout", operation_id="logout", status_code=HTTP_303_SEE_OTHER, opt={PAGE_OPT: True})
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        """End the session."""
        request.clear_session()
        return Redirect("/login?error=logged_out", status_code=303)
