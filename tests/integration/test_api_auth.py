"""Login, sessions, CSRF, rate limit, API key scopes and security headers, over a real app."""

from __future__ import annotations

import logging
import re
import stat
from typing import Any

from engine.accounts import PasswordStore
from tests.integration.conftest import assert_error

AUTHENTICATED_PROBE = "/api/v1/jobs/unknown"  # 404 once past auth, without needing the engine


def _set_cookie(response: Any, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert headers, f"no {name} cookie set"
    return headers[-1]


def test_login_and_logout(make_app_client: Any) -> None:
    client = make_app_client()
    page = client.get("/library", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Flibrary"

    response = client.login(next_url="/library")
    assert response.status_code == 303
    assert response.headers["location"] == "/library"
    cookie = _set_cookie(response, "lookalike_session").lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain HTTP here; see the HTTPS test
    assert client.get(AUTHENTICATED_PROBE).status_code == 404
    assert client.get("/library").status_code == 200

    response = client.post("/logout", headers=client.csrf_headers(), follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    assert_error(client.get(AUTHENTICATED_PROBE), 401, "unauthorized")


def test_wrong_password_is_refused(make_app_client: Any) -> None:
    client = make_app_client()
    response = client.login(password="not the password")
    assert response.status_code == 401
    assert "That password is not right." in response.text
    assert "lookalike_session" not in client.cookies
    assert_error(client.get(AUTHENTICATED_PROBE), 401)


def test_login_is_rate_limited(make_app_client: Any) -> None:
    client = make_app_client()
    for _ in range(5):
        assert client.login(password="guess-guess").status_code == 401
    assert_error(client.login(), 429, "too_many_requests")  # even the right password waits
    # A browser is sent back to the form with the reason instead of a JSON body.
    token = client.cookies["csrftoken"]
    response = client.post(
        "/login",
        data={"password": "x", "_csrf_token": token},
        headers={"Accept": "text/html"},
        follow_redirects=False,
    )
    assert response.headers["location"].startswith("/login?error=too_many_requests")
    assert "Too many attempts" in client.get(response.headers["location"]).text


def test_form_post_without_csrf_token_is_refused(make_app_client: Any) -> None:
    client = make_app_client()
    client.get("/login")
    response = client.post("/login", data={"password": client.password})
    assert_error(response, 403, "forbidden")
    assert "lookalike_session" not in client.cookies

    client.login()
    # Logged in, a state-changing call without the header is refused too...
    assert_error(client.post("/api/v1/reindex", json={}), 403, "forbidden")
    assert_error(client.post("/logout"), 403, "forbidden")
    # ...and a token that is not the cookie's is as good as none.
    bad = {"x-csrftoken": "0" * 128}
    assert_error(client.post("/api/v1/reindex", json={}, headers=bad), 403, "forbidden")


def test_session_id_changes_at_login(make_app_client: Any) -> None:
    client = make_app_client()
    client.get("/login")
    assert "lookalike_session" not in client.cookies  # anonymous visits store nothing
    planted = "a" * 64  # an id an attacker made the victim's browser carry
    jar = {"domain": "testserver.local"}  # the domain the app's own cookies get
    client.cookies.set("lookalike_session", planted, **jar)
    response = client.login()
    new_id = _set_cookie(response, "lookalike_session").split(";")[0].split("=", 1)[1]
    assert new_id not in (planted, "null")
    assert client.get(AUTHENTICATED_PROBE).status_code == 404

    # The planted id grants nothing, and neither does the one from before a second login.
    client.cookies.set("lookalike_session", planted, **jar)
    assert_error(client.get(AUTHENTICATED_PROBE), 401)
    client.cookies.set("lookalike_session", new_id, **jar)
    again = client.login()
    newer = _set_cookie(again, "lookalike_session").split(";")[0].split("=", 1)[1]
    assert newer != new_id
    client.cookies.set("lookalike_session", new_id, **jar)
    assert_error(client.get(AUTHENTICATED_PROBE), 401)


def test_changing_the_password_ends_sessions(make_app_client: Any) -> None:
    client = make_app_client()
    client.login()
    assert client.get(AUTHENTICATED_PROBE).status_code == 404
    PasswordStore(client.settings.data_dir).set("a brand new password")  # `lookalike passwd`
    assert_error(client.get(AUTHENTICATED_PROBE), 401)
    assert client.login(password="a brand new password").status_code == 303


def test_api_key_scopes(make_app_client: Any) -> None:
    client = make_app_client()
    read, write = client.api_key("read"), client.api_key("write")
    image = "/api/v1/images/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12
    refused = [
        ("POST", "/api/v1/images", {"files": {"files": ("a.png", b"x", "image/png")}}),
        ("PATCH", image, {"json": {"tags": ["x"]}}),
        ("DELETE", image, {}),
        ("POST", "/api/v1/reindex", {"json": {}}),
        ("POST", "/api/v1/reconcile", {}),
        ("POST", "/reindex", {}),
    ]
    for method, path, kwargs in refused:
        body = assert_error(client.request(method, path, headers=read, **kwargs), 403, "forbidden")
        assert "--scope write" in body["detail"]
        # A write key passes the guard (and no CSRF token is needed with a key).
        response = client.request(method, path, headers=write, **kwargs)
        assert response.status_code not in (401, 403), (method, path, response.text)
    assert client.get(AUTHENTICATED_PROBE, headers=read).status_code == 404
    assert client.get("/metrics", headers=read).status_code == 200


def test_generated_password_goes_to_a_private_file_not_the_log(make_app_client: Any) -> None:
    # Litestar's logging set-up replaces the root handlers (and pytest's caplog with them),
    # so listen on the app's own logger.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger("api.app").addHandler(handler)
    try:
        client = make_app_client(admin_password=None)
    finally:
        logging.getLogger("api.app").removeHandler(handler)
    passwords = PasswordStore(client.settings.data_dir)
    password = passwords.initial_path.read_text().strip()
    assert stat.S_IMODE(passwords.initial_path.stat().st_mode) == 0o600
    lines = [r.getMessage() for r in records if "generated" in r.getMessage()]
    assert len(lines) == 1 and str(passwords.initial_path) in lines[0]
    assert all(password not in r.getMessage() for r in records)
    stored = passwords.path
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    assert password not in stored.read_text() and stored.read_text().startswith("$argon2id$")
    client.password = password
    assert client.login().headers["location"] == "/password?next=/"


def test_the_generated_password_must_be_changed_at_first_login(make_app_client: Any) -> None:
    client = make_app_client(admin_password=None)
    client.wait_ready()
    passwords = PasswordStore(client.settings.data_dir)
    client.password = passwords.initial_path.read_text().strip()
    client.login(next_url="/library")
    assert_error(client.get("/api/v1/status"), 403, "forbidden")  # nothing else until then
    page = client.get("/library", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/password")
    form = client.get("/password")
    assert form.status_code == 200 and 'data-testid="must-change"' in form.text
    token = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
    assert token
    new = {"password": "my own password 1", "confirm": "my own password 1"}
    changed = client.post(
        "/password?next=/library",
        data={**new, "_csrf_token": token.group(1)},
        follow_redirects=False,
    )
    assert changed.status_code == 303 and changed.headers["location"] == "/library"
    assert client.get("/api/v1/status").status_code == 200  # the session goes on
    assert not passwords.initial_path.exists() and passwords.verify("my own password 1")


def test_session_cookie_is_secure_behind_https(make_app_client: Any) -> None:
    client = make_app_client()
    proxied = {"X-Forwarded-Proto": "https"}  # TLS ended at a reverse proxy
    page = client.get("/login", headers=proxied)
    csrf = _set_cookie(page, "csrftoken")
    assert "secure" in csrf.lower()
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token
    # The cookie jar keeps Secure cookies from plain http, so send it by hand.
    cookie = {"Cookie": csrf.split(";")[0]}
    response = client.post(
        "/login",
        data={"password": client.password, "_csrf_token": token.group(1)},
        headers={**proxied, **cookie},
        follow_redirects=False,
    )
    assert "secure" in _set_cookie(response, "lookalike_session").lower()

    always = make_app_client(cookie_secure=True)
    always.base_url = "https://testserver.local"
    assert "secure" in _set_cookie(always.login(), "lookalike_session").lower()


def test_security_headers_on_every_response(make_app_client: Any) -> None:
    client = make_app_client()
    for path in ("/health", "/login", "/api/v1/status", "/nowhere", "/static/css/app.css"):
        headers = client.get(path, follow_redirects=False).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"


def test_api_docs_are_served_without_a_cdn(make_app_client: Any) -> None:
    client = make_app_client()
    client.login()
    page = client.get("/schema")
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text
    assert "<script>" not in page.text  # no inline script: every script has a src
    for asset in ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "/schema/swagger-init.js"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    assert "x-csrftoken" in client.get("/schema/swagger-init.js").text
