"""Login and logout of the admin (the web UI). Scripts use API keys instead."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import msgspec
from litestar import Controller, Request, get, post
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.params import FromQuery, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from api.auth import PAGE_OPT, PUBLIC_OPT, auth_state, log_in

# Five tries a minute per client address: a person mistyping is not slowed down, a password
# guesser gets 7,200 guesses a day instead of millions. Counted per address, before the
# password is checked; behind a proxy, run uvicorn with --proxy-headers so the address is real.
LOGIN_RATE_LIMIT = RateLimitConfig(rate_limit=("minute", 5), store="login_attempts")

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
        """Check the admin password; on success start a new session and go to ``next``."""
        passwords = auth_state(request).passwords
        # argon2 is slow on purpose (tens of ms of CPU): keep it off the event loop.
        ok = await anyio.to_thread.run_sync(passwords.verify, data.password)
        if not ok:
            return login_page(request, "That password is not right.", status_code=401)
        log_in(request)
        return Redirect(safe_next(request.query_params.get("next")), status_code=303)

    @post("/logout", operation_id="logout", status_code=HTTP_303_SEE_OTHER, opt={PAGE_OPT: True})
    async def logout(self, request: Request[Any, Any, Any]) -> Redirect:
        """End the session."""
        request.clear_session()
        return Redirect("/login?error=logged_out", status_code=303)
