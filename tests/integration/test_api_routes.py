"""The route table: every route but the public few refuses anonymous requests.

Walks ``app.routes`` (so a route added later is covered without editing this test) and sends
each method an anonymous request: API routes must answer 401 with the standard error body,
HTML pages a redirect to /login. Then checks that the public routes are exactly the ones
the issue allows, and that every documented operation has an explicit operation id.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar.enums import MediaType
from litestar.routes import HTTPRoute

from tests.integration.conftest import assert_error

PUBLIC = {"/health", "/ready", "/login", "/static/{file_path:path}"}
SAMPLE_PARAM = {"image_id": str(uuid.uuid4()), "job_id": "0" * 32}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: SAMPLE_PARAM.get(m.group(1), "anything"), path)


def _is_page(handler: Any) -> bool:
    media = getattr(handler.media_type, "value", handler.media_type)
    return bool(handler.opt.get("page")) or str(media).startswith(MediaType.HTML.value)


def _http_handlers(app: Any) -> list[tuple[str, str, Any]]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods):
                if method != "OPTIONS":  # CORS preflight carries no credentials by design
                    found.append((route.path, method, handler))
    return found


def test_every_non_public_route_refuses_anonymous_requests(make_app_client: Any) -> None:
    client = make_app_client()
    checked = 0
    public_seen = set()
    for path, method, handler in _http_handlers(client.app):
        if handler.opt.get("public"):
            public_seen.add(path)
            continue
        response = client.request(method, _concrete(path), follow_redirects=False)
        label = f"{method} {path}"
        if _is_page(handler):
            assert response.status_code == 303, label
            assert response.headers["location"].startswith("/login"), label
        else:
            assert_error(response, 401, "unauthorized")
        checked += 1
    assert public_seen == PUBLIC, "only /health, /ready, /login and static files are public"
    assert checked >= 20  # the API, the pages, the docs, /metrics


def test_public_routes_answer_anonymous_requests(make_app_client: Any) -> None:
    client = make_app_client()
    assert client.get("/health").json() == {"status": "ok"}
    client.wait_ready()
    assert client.get("/ready").status_code == 200
    assert client.get("/login").status_code == 200
    assert client.get("/static/vendor/swagger-ui/VERSION").status_code == 200


def test_a_bad_api_key_is_refused_even_with_a_session(make_app_client: Any) -> None:
    client = make_app_client()
    client.login()
    assert client.get("/api/v1/jobs/x").status_code == 404  # the session works
    bad = {"Authorization": "Bearer lk_nope"}
    assert_error(client.get("/api/v1/jobs/x", headers=bad), 401, "unauthorized")
    basic = {"Authorization": "Basic YWRtaW46YWRtaW4="}
    assert_error(client.get("/api/v1/jobs/x", headers=basic), 401, "unauthorized")


def test_every_operation_has_an_explicit_operation_id(make_app_client: Any) -> None:
    client = make_app_client()
    for path, method, handler in _http_handlers(client.app):
        if handler.resolve_include_in_schema() and not path.startswith("/schema"):
            assert handler.operation_id, f"{method} {path} has no operation_id"
    client.login()
    doc = client.get("/schema/openapi.json").json()
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    for expected in ("search", "uploadImages", "listImages", "getImageThumbnail", "reindex"):
        assert expected in ids
    search_body = doc["paths"]["/api/v1/search"]["post"]["requestBody"]["content"]
    assert set(search_body) == {"application/json", "multipart/form-data"}
