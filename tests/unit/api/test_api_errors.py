"""The error funnel maps every exception to {"status", "error", "detail"}."""

from __future__ import annotations

import msgspec
import pytest
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from api.errors import describe
from engine.errors import ModelUnavailable, StoreUnavailableError, UndecodableImage


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (UndecodableImage("Cannot decode x.png"), 400, "undecodable_image"),
        (ModelUnavailable("No CLIP."), 422, "model_unavailable"),
        (StoreUnavailableError("Qdrant is down."), 503, "store_unavailable"),
        (NotAuthorizedException("Log in."), 401, "unauthorized"),
        (PermissionDeniedException("Read only."), 403, "forbidden"),
        (NotFoundException(), 404, "not_found"),
        (TooManyRequestsException(), 429, "too_many_requests"),
        (RequestEntityTooLarge(), 413, "too_large"),
        (ValidationException(extra=[{"key": "k", "message": "Expected `int`"}]), 400, "bad_input"),
        (msgspec.ValidationError("Expected `int`, got `str` - at `$.k`"), 400, "bad_input"),
        (RuntimeError("password=hunter2 in a traceback"), 500, "internal_error"),
    ],
)
def test_every_error_becomes_a_status_code_and_sentence(
    exc: Exception, status: int, code: str
) -> None:
    got_status, got_code, detail = describe(exc)
    assert (got_status, got_code) == (status, code)
    assert detail.endswith(".") and detail[0].isupper()
    assert "hunter2" not in detail


def test_validation_detail_names_the_field() -> None:
    _, _, detail = describe(ValidationException(extra=[{"key": "k", "message": "Expected `int`"}]))
    assert detail == "The number of results (k) must be a whole number."
