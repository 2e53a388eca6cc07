"""The one error funnel: every failure leaves as ``{"status", "error", "detail"}``.

Engine errors carry their own status, code and human sentence. Litestar's exceptions
(validation, 401/403/404/405/413/429) are mapped to the same shape here, once. Anything else
is a bug: it is logged with its traceback and the client gets a plain 500 sentence, never
the traceback. Anonymous visitors of an HTML page are redirected to /login instead.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    ValidationException,
)
from litestar.openapi.datastructures import ResponseSpec
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from api.validation_text import parameter_sentence, validation_sentence
from engine.errors import BadInput, LookalikeError, translate

log = logging.getLogger(__name__)


class NotReady(LookalikeError):
    status = 503
    code = "not_ready"


class Unauthorized(LookalikeError):
    status = 401
    code = "unauthorized"


# Litestar exceptions by status: the code a client can switch on, and a sentence for when
# Litestar's own message is not meant for people ("Not Found" etc.).
_CODES: dict[int, tuple[str, str | None]] = {
    400: ("bad_input", None),
    401: ("unauthorized", None),
    403: ("forbidden", None),
    404: ("not_found", "There is nothing at this address."),
    405: ("method_not_allowed", "This address does not accept that HTTP method."),
    413: ("too_large", None),
    415: ("unsupported_media_type", None),
    429: ("too_many_requests", "Too many attempts: wait a minute, then try again."),
    503: ("unavailable", None),
}


class ErrorBody(msgspec.Struct):
    """The one error shape: an HTTP status, a code to switch on, a sentence for people."""

    status: int
    error: str
    detail: str


# Documented on every API operation, so clients know each failure's body.
ERROR_RESPONSES = {
    status: ResponseSpec(ErrorBody, description=text, generate_examples=False)
    for status, text in {
        400: "Bad input: a parameter, the body or the image is not valid.",
        401: "Not logged in, or the API key is missing or not valid.",
        403: "The API key is read-only, or the CSRF token is missing (session requests).",
        404: "No such image or job.",
        409: "A reindex or reconcile is already running, or the file of a library image "
        "cannot be decoded any more (damaged_file).",
        413: "The request body is larger than LOOKALIKE_MAX_UPLOAD_MB.",
        503: "Still starting up (models loading), the store is unreachable, or the library "
        "stayed locked by a reindex for longer than an upload waits.",
    }.items()
}


def error_response(status: int, code: str, detail: str, headers: Any = None) -> Response[Any]:
    return Response(
        ErrorBody(status=status, error=code, detail=detail),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers,
    )


def describe(exc: Exception) -> tuple[int, str, str]:
    """(status, code, detail) for any exception."""
    exc = translate(exc)
    if isinstance(exc, LookalikeError):
        return exc.status, exc.code, _sentence(exc.detail)
    if isinstance(exc, msgspec.ValidationError):
        return 400, BadInput.code, validation_sentence(str(exc))
    if isinstance(exc, msgspec.DecodeError):
        return 400, BadInput.code, f"The request body is not valid: {exc}."
    if isinstance(exc, RecursionError):
        # A JSON document nested thousands deep, in a form field or a body: the parser's
        # limit, reached on the client's input.
        return 400, BadInput.code, "The request holds data nested too deeply to read."
    if isinstance(exc, UnicodeDecodeError):
        # msgspec (and Litestar's JSON bodies through it) raise this, not a DecodeError,
        # for a string that is not UTF-8: the client's mistake, not the server's.
        return 400, BadInput.code, "The request holds text that is not valid UTF-8."
    if isinstance(exc, ValidationException):
        return 400, BadInput.code, _validation_detail(exc)
    if isinstance(exc, HTTPException) and exc.detail == "Invalid multipart/form-data":
        return (
            400,
            BadInput.code,
            (
                "The request must be a multipart/form-data form, with each image as a file part; "
                "this one is not, or it is cut short."
            ),
        )
    if isinstance(exc, HTTPException):
        code, sentence = _CODES.get(exc.status_code, ("http_error", None))
        detail = exc.detail if exc.detail and exc.detail != _reason(exc) else sentence
        if exc.status_code == 413:
            detail = "The request is too large: see LOOKALIKE_MAX_UPLOAD_MB for the limit."
        return exc.status_code, code, _sentence(detail or _reason(exc))
    return 500, "internal_error", "Something went wrong on the server; the log has the details."


def _reason(exc: HTTPException) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(exc.status_code).phrase
    except ValueError:
        return "Error"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!")) else f"{text}."


def _validation_detail(exc: ValidationException) -> str:
    """A sentence for each refused parameter ("The page size (limit) must be a whole
    number, at least 1."), in the words the UI uses for the same field."""
    parts = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict) and item.get("message"):
            key = str(item.get("key") or "")
            parts.append(parameter_sentence(key, str(item["message"])))
    if not parts:
        return _sentence(exc.detail or "The request is not valid")
    return " ".join(dict.fromkeys(parts))


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    return "text/html" in request.headers.get("accept", "")


def exception_to_response(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    from api.auth import MUST_CHANGE, PASSWORD_PAGE, is_page

    status, code, detail = describe(exc)
    if status >= 500 and not isinstance(translate(exc), LookalikeError):
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    elif status >= 500 and not isinstance(exc, NotReady):  # NotReady: /ready says it already
        log.warning("%s %s: %s", request.method, request.url.path, detail)
    handler = request.scope.get("route_handler")
    if isinstance(exc, NotAuthorizedException) and is_page(handler):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method not in ("GET", "HEAD"):
            target = "/"  # e.g. logout after the session ended: nowhere to come back to
        return Redirect(f"/login?next={quote(target, safe='')}", status_code=HTTP_303_SEE_OTHER)
    if isinstance(exc, HTTPException) and exc.detail == MUST_CHANGE and is_page(handler):
        target = request.url.path if request.method in ("GET", "HEAD") else "/"
        return Redirect(
            f"{PASSWORD_PAGE}?next={quote(target, safe='')}", status_code=HTTP_303_SEE_OTHER
        )
    if request.url.path == "/login" and status in (403, 429) and _wants_html(request):
        # A browser's login form that was refused before the password was looked at (an
        # expired CSRF cookie, too many attempts): show the form again with the reason.
        nxt = quote(request.query_params.get("next") or "/", safe="")
        return Redirect(f"/login?error={code}&next={nxt}", status_code=HTTP_303_SEE_OTHER)
    if status == 404 and _wants_html(request) and not request.url.path.startswith("/api/"):
        # A person's browser at an address that leads nowhere: a page, not JSON.
        return Template(
            template_name="not_found.html", context={"path": request.url.path}, status_code=404
        )
    if isinstance(exc, UnicodeDecodeError) and request.content_type[0] == "multipart/form-data":
        # A part with no file name is a text field to the parser: an image sent that way.
        detail = (
            "A part of the upload is not text, yet has no file name: send each image as a "
            "file, with its file name."
        )
    headers = getattr(exc, "headers", None) if isinstance(exc, HTTPException) else None
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": 'Bearer realm="lookalike"'}
    return error_response(status, code, detail, headers)
