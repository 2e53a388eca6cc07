"""Security beyond tests/integration/test_api_auth.py and test_api_routes.py: scopes over the
whole route table, CSRF on every kind of write, logout really ending a session, the login
limit not fooled by a forged client address, revoked keys, files served only from inside
the library, secrets never logged, and the security headers on every kind of response.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.routes import HTTPRoute
from qdrant_client import QdrantClient

from bench.served import LiveServer
from engine.accounts import ApiKeyStore
from tests.hostile.flaky_tcp import FlakyTcp
from tests.integration.conftest import assert_error, image_bytes

CHANGES = {"POST", "PATCH", "PUT", "DELETE"}
SESSION_ONLY = {"/login", "/logout", "/password"}  # the UI's form posts, not for API keys


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda _: str(uuid.uuid4()), path)


def _write_routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path in SESSION_ONLY:
            continue
        for handler in route.route_handlers:
            if handler.opt.get("public"):
                continue
            found += [(m, route.path) for m in sorted(handler.http_methods & CHANGES)]
    return found


def test_every_write_route_refuses_a_read_key_and_a_session_without_csrf(
    make_app_client: Any,
) -> None:
    client = make_app_client()
    read = client.api_key("read")
    routes = _write_routes(client.app)
    assert len(routes) >= 8  # upload, tag, delete, reindex x2, reconcile, search x3
    for method, path in routes:
        response = client.request(method, _concrete(path), headers=read, json={})
        # A search (or its contact sheet) changes nothing: read keys may search.
        if path.endswith(("search", "search/sheet", "search/stream")):
            assert response.status_code != 403, (method, path)
        else:
            body = assert_error(response, 403, "forbidden")
            assert "--scope write" in body["detail"], (method, path)
    client.login()
    for method, path in routes:  # the session's cookie alone is not enough: CSRF token too
        assert_error(client.request(method, _concrete(path), json={}), 403, "forbidden")
    files = {"files": ("a.png", image_bytes(1), "image/png")}
    assert_error(client.post("/api/v1/images", files=files), 403, "forbidden")
    client.wait_ready()
    ok = client.post("/api/v1/images", files=files, headers=client.csrf_headers())
    assert ok.status_code == 201, ok.text  # past CSRF


def test_logout_ends_the_session_on_the_server(make_app_client: Any) -> None:
    client = make_app_client()
    client.login()
    stolen = client.cookies["lookalike_session"]
    client.post("/logout", headers=client.csrf_headers())
    replay = httpx.Cookies()
    replay.set("lookalike_session", stolen, domain="testserver.local")
    client.cookies = replay
    assert_error(client.get("/api/v1/jobs/x"), 401, "unauthorized")


def test_login_limit_is_not_fooled_by_forwarded_headers(make_app_client: Any) -> None:
    client = make_app_client()
    page = client.get("/login")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token
    for i in range(5):
        forged = {"X-Forwarded-For": f"10.0.0.{i}", "X-Real-IP": f"10.1.0.{i}"}
        data = {"password": f"guess-{i}", "_csrf_token": token.group(1)}
        assert client.post("/login", data=data, headers=forged).status_code == 401
    forged = {"X-Forwarded-For": "10.9.9.9", "X-Real-IP": "10.9.9.9"}
    data = {"password": client.password, "_csrf_token": token.group(1)}
    assert_error(client.post("/login", data=data, headers=forged), 429, "too_many_requests")


def test_a_revoked_key_stops_working_at_once(make_app_client: Any) -> None:
    client = make_app_client()
    store = ApiKeyStore(client.settings.data_dir)
    record, secret = store.create("write", name="script")
    header = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/jobs/x", headers=header).status_code == 404
    store.revoke(record.id)
    assert_error(client.get("/api/v1/jobs/x", headers=header), 401, "unauthorized")
    near = {"Authorization": f"Bearer {secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"}
    assert_error(client.get("/api/v1/jobs/x", headers=near), 401, "unauthorized")


def test_files_are_served_only_from_inside_the_library(
    make_app_client: Any, tmp_path: Path
) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("read")
    engine = client.app.state.services.lookalike
    library = Path(client.settings.library_dir)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(image_bytes(70))
    (outside / "linked.png").write_bytes(image_bytes(71))
    (library / "link.png").symlink_to(outside / "linked.png")  # a symlink leading out
    (library / "inside.png").write_bytes(image_bytes(72))
    engine.indexing.index(outside)  # the CLI may index any folder: keyed by absolute path
    engine.indexing.index()
    by_name = {r.payload["filename"]: r for r in engine.store.scroll()}
    assert by_name["secret.png"].payload["paths"] == [str(outside / "secret.png")]
    inside = by_name["inside.png"]
    # A stored key that climbs out of the library (a tampered or foreign store).
    engine.store.set_payload([inside.id], {"paths": ["../../outside/secret.png", "inside.png"]})
    assert client.get(f"/api/v1/images/{inside.id}/file", headers=key).status_code == 200
    engine.store.set_payload([inside.id], {"paths": ["../outside/secret.png"]})
    for record in (by_name["secret.png"], by_name["linked.png"], inside):
        for what in ("file", "thumbnail"):
            response = client.get(f"/api/v1/images/{record.id}/{what}", headers=key)
            assert_error(response, 404, "not_found")
            assert b"PNG" not in response.content


SECRET_PASSWORD = "s3cret-admin-password-in-env"
QDRANT_KEY = "qdrant-api-key-that-must-stay-secret"


@pytest.fixture
def every_log_record() -> Iterator[list[logging.LogRecord]]:
    """Every log record created in this process, at any level, wherever it goes."""
    records: list[logging.LogRecord] = []
    old_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old_factory(*args, **kwargs)
        records.append(record)
        return record

    root = logging.getLogger()
    old_level = root.level
    logging.setLogRecordFactory(factory)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        logging.setLogRecordFactory(old_factory)
        root.setLevel(old_level)


def _text(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
        text += repr(record.exc_info[1]) + repr(record.exc_info[1].__cause__)
    return text


def _exercise(client: Any, key_header: dict[str, str]) -> list[str]:
    """Log in (wrong then right), use a key, a bad key, upload, search, log out; returns the
    secrets seen on the wire that must never be logged."""
    client.login(password="wrong-password-guess")
    client.login()
    session = client.cookies["lookalike_session"]
    csrf = client.cookies["csrftoken"]
    files = {"files": ("a.png", image_bytes(5), "image/png")}
    client.post("/api/v1/images", files=files, headers=key_header)
    client.post("/api/v1/search", files={"image": ("q.png", image_bytes(5))}, headers=key_header)
    client.get("/api/v1/jobs/x", headers={"Authorization": "Bearer lk_not_a_real_key_123456"})
    client.post("/logout", headers=client.csrf_headers())
    return [session, csrf]


def test_secrets_never_reach_the_log_in_process(
    make_app_client: Any, monkeypatch: pytest.MonkeyPatch, every_log_record: list[Any]
) -> None:
    memory = QdrantClient(":memory:")
    monkeypatch.setattr("store.server.QdrantClient", lambda **_: memory)
    client = make_app_client(
        admin_password=SECRET_PASSWORD, qdrant_url="http://127.0.0.1:9", qdrant_api_key=QDRANT_KEY
    )
    client.wait_ready()
    key_header = client.api_key("write")
    seen = _exercise(client, key_header)
    secrets = [
        SECRET_PASSWORD,
        QDRANT_KEY,
        key_header["Authorization"].split()[1],
        "lk_not_a_real_key_123456",
        (Path(client.settings.data_dir) / "auth" / "secret_key").read_text().strip(),
        *seen,
    ]
    logged = "\n".join(_text(r) for r in every_log_record)
    assert len(every_log_record) > 5, "nothing was captured: the check would prove nothing"
    for secret in secrets:
        assert secret not in logged, f"a secret reached the log: {secret[:6]}..."
    assert repr(client.settings).count(QDRANT_KEY) == 0


def test_secrets_never_reach_the_server_log(tmp_path: Path) -> None:
    stub = FlakyTcp(None)  # a Qdrant that is down: start-up fails and says so, keyless
    server = LiveServer(
        tmp_path,
        password=SECRET_PASSWORD,
        LOOKALIKE_QDRANT_URL=stub.url,
        LOOKALIKE_QDRANT_API_KEY=QDRANT_KEY,
    )
    server.log_level = "debug"
    key_header = server.key("write")
    try:
        server.start(probe="/health")
        with server.client(follow_redirects=False) as http:
            page = http.get("/login")
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
            assert token
            for password in ("wrong-guess-password", SECRET_PASSWORD):
                http.post("/login", data={"password": password, "_csrf_token": token.group(1)})
            session = http.cookies["lookalike_session"]
            assert http.get("/api/v1/jobs/x").status_code == 404  # logged in
            assert http.get("/api/v1/jobs/x", headers=key_header).status_code == 404
            for _ in range(100):  # the store never comes up: wait until that is logged
                ready = http.get("/ready").json()
                if "cannot reach" in (ready.get("detail") or ""):
                    break
                time.sleep(0.1)
    finally:
        server.stop()
        stub.close()
    log = server.log.read_text(errors="replace")
    assert "start-up failed" in log and "GET /api/v1/jobs/x" in log  # it did log
    secret_key = (server.data / "auth" / "secret_key").read_text().strip()
    for secret in (SECRET_PASSWORD, QDRANT_KEY, key_header["Authorization"], session, secret_key):
        assert secret.split()[-1] not in log


def test_security_headers_on_every_kind_of_response(make_app_client: Any) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    uploaded = client.post(
        "/api/v1/images", files={"files": ("h.png", image_bytes(9))}, headers=key
    ).json()["images"][0]
    client.login()
    responses = {
        "page /": client.get("/"),
        "page /library": client.get("/library"),
        "login": client.get("/login"),
        "docs": client.get("/schema"),
        "openapi": client.get("/schema/openapi.json"),
        "static": client.get("/static/vendor/swagger-ui/VERSION"),
        "json": client.get("/api/v1/status"),
        "file": client.get(uploaded["file_url"]),
        "thumbnail": client.get(uploaded["thumbnail_url"]),
        "400": client.get("/api/v1/images/nope"),
        "401": client.get("/api/v1/status", headers={"Authorization": "Bearer x"}),
        "404": client.get("/no/such/page"),
        "405": client.put("/api/v1/images", headers=key),
        "redirect": client.post("/logout", headers=client.csrf_headers(), follow_redirects=False),
    }
    for label, response in responses.items():
        headers = response.headers
        csp = headers["content-security-policy"]
        pairs = (d.strip().partition(" ") for d in csp.split(";") if d.strip())
        directives = {name: value for name, _, value in pairs}
        script = directives.get("script-src", directives.get("default-src", ""))
        assert "'unsafe-inline'" not in script and "'unsafe-eval'" not in script, label
        assert "'self'" in script and "*" not in script, label
        assert directives.get("frame-ancestors") == "'none'", label
        assert directives.get("object-src") == "'none'", label
        assert headers["x-content-type-options"] == "nosniff", label
        assert headers["x-frame-options"] == "DENY", label
        if "text/html" in headers.get("content-type", ""):
            html = response.text
            inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html, re.IGNORECASE)
            assert not inline, f"{label}: inline <script> needs a CSP hole"
            assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE), f"{label}: on*= handler"
            assert "javascript:" not in html.lower(), label
