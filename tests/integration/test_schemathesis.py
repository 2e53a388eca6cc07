"""Schemathesis against the app's own OpenAPI document (/schema/openapi.json), authenticated
with a write API key, over the real app in-process (ASGI): every operation gets generated
requests, valid and not, and every answer must be a documented status with a body matching
its schema. No 5xx.

Bounded: ``MAX_EXAMPLES`` per operation keeps the whole file well under a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python import asgi

from api.app import create_app
from engine.accounts import ApiKeyStore
from engine.settings import Settings
from tests.integration.conftest import FAST_MODELS, PASSWORD, image_bytes

MAX_EXAMPLES = 20
# Operations whose valid input a schema cannot state, so "a schema-valid request must be
# accepted" cannot hold: the bytes of an image ('format: binary' admits a ZIP), and weights
# written as 'clip=1,cnn=0.5' text. Every other check (no 5xx, documented status, response
# body and headers matching the document) still runs on them.
CONTENT_CHECKED = {
    "POST /api/v1/images",
    "POST /api/v1/search",
    "POST /search",
    "GET /api/v1/duplicates",
}
# Lenient by design, so "a schema-violating request must be refused" does not hold: an
# upload ignores form fields it does not know (browsers add their own), and a list filter
# given once in the query string is read as a list of one. What they refuse is covered by
# tests/integration/test_hostile_api.py.
LENIENT = {"POST /api/v1/images", "GET /api/v1/images"}


# One app per test: schemathesis's pytest plugin ends every ASGI lifespan after each test.
@pytest.fixture
def lookalike_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    (tmp / "library").mkdir()
    (tmp / "library" / "seed.png").write_bytes(image_bytes(1))
    # CLIP with random weights (no download), so searches by text work as documented.
    models = {**FAST_MODELS, "clip_weights": "random"}
    settings_ = Settings(
        data_dir=tmp / "data", library_dir=tmp / "library", admin_password=PASSWORD, **models
    )
    app = create_app(settings_)
    _, secret = ApiKeyStore(settings_.data_dir).create("write", name="schemathesis")
    app.state.test_headers = {"Authorization": f"Bearer {secret}"}
    with asgi.get_client(app) as client:  # runs the lifespan in schemathesis's own loop
        assert client.get("/health").status_code == 200
        assert app.state.services.wait_ready(120), app.state.services.not_ready_detail()
        app.state.services.lookalike.indexing.index()  # one image, so ids can be found
    yield app
    asgi.shutdown_lifespans()


def _operations(app: Any) -> list[Any]:
    schema = schemathesis.openapi.from_asgi(
        "/schema/openapi.json", app, headers=app.state.test_headers
    )
    return [result.ok() for result in schema.get_all_operations()]


def _fuzzer(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> Any:
    """A Hypothesis test sending ``MAX_EXAMPLES`` generated requests to ``operation``."""
    excluded = []
    if operation.label in CONTENT_CHECKED:
        excluded.append(schemathesis.checks.positive_data_acceptance)
    if operation.label in LENIENT:
        excluded.append(schemathesis.checks.negative_data_rejection)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: report, do not minimise
    )
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    return check


# Driven by hand, not by ``schema.parametrize()``: its lazy pytest plugin does not run on
# pytest 9 (it sets ``Function._nodeid``, which pytest 9 dropped).
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(lookalike_app: Any, mode: GenerationMode) -> None:
    headers = lookalike_app.state.test_headers
    failures: list[str] = []
    operations = _operations(lookalike_app)
    assert len(operations) >= 12

    for operation in operations:
        check = _fuzzer(operation, mode, headers)
        try:
            check()
        except Unsatisfiable:  # negative mode, an operation with no input to get wrong
            assert mode == GenerationMode.NEGATIVE, operation.label
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis's FailureGroup
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_the_document_is_served_only_to_the_authenticated(lookalike_app: Any) -> None:
    with asgi.get_client(lookalike_app) as client:
        assert client.get("/schema/openapi.json").status_code == 401
        ok = client.get("/schema/openapi.json", headers=lookalike_app.state.test_headers)
        assert ok.status_code == 200 and ok.json()["openapi"].startswith("3.")
