"""The security review's findings (issue 19), each closed: CSRF bound to the session,
HSTS, the failed-login budget, the session's absolute lifetime, nested JSON, /ready's
public detail, files opened at the path that was checked, the query pixel cap, the admin
password needed at first start only, and a proxy trusted only when listed."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from api.routes.login import LoginGuard
from api.routes.ops import PUBLIC_FAILURE
from bench.served import LiveServer
from engine.accounts import PasswordStore
from tests.integration.conftest import PASSWORD, assert_error, image_bytes

TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')


def _form_token(client: Any, path: str = "/login") -> str:
    found = TOKEN.search(client.get(path).text)
    assert found
    return found.group(1)


def test_a_csrf_token_is_bound_to_its_session_and_renewed_at_login(make_app_client: Any) -> None:
    client = make_app_client()
    client.wait_ready()
    before = client.get("/login").cookies["csrftoken"]  # taken before the login
    assert client.login().status_code == 303
    after = client.cookies["csrftoken"]
    assert after != before  # a new token came with the new session
    tag = {"json": {"tags": ["x"]}}
    path = "/api/v1/images/00000000-0000-0000-0000-000000000000"
    client.cookies.set("csrftoken", before, domain="testserver.local")
    stale = client.patch(path, headers={"x-csrftoken": before}, **tag)
    assert_error(stale, 403, "forbidden")
    client.cookies.set("csrftoken", after, domain="testserver.local")
    assert client.patch(path, headers={"x-csrftoken": after}, **tag).status_code == 404  # past CSRF

    other = make_app_client()  # another session's token (same key: same data dir not needed)
    other.login()
    theirs = other.cookies["csrftoken"]
    client.cookies.set("csrftoken", theirs, domain="testserver.local")
    assert_error(client.patch(path, headers={"x-csrftoken": theirs}, **tag), 403, "forbidden")
    # A page asked for with a token of no use to this session hands out a good one.
    page = client.get("/library")
    renewed = page.cookies.get("csrftoken")
    assert renewed and renewed not in (before, theirs)
    assert client.patch(path, headers={"x-csrftoken": renewed}, **tag).status_code == 404


def test_hsts_is_sent_over_https_only(make_app_client: Any) -> None:
    client = make_app_client()
    assert "strict-transport-security" not in client.get("/login").headers
    secure = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert secure.headers["strict-transport-security"].startswith("max-age=")
    assert int(secure.headers["strict-transport-security"].split("=")[1]) >= 31536000


def test_failed_logins_of_all_clients_share_one_budget(make_app_client: Any) -> None:
    client = make_app_client()
    client.app.state.login_guard = LoginGuard(budget=2, max_wait_s=60)
    token = _form_token(client)
    for guess in ("guess-one", "guess-two", "guess-three"):
        wrong = client.post("/login", data={"password": guess, "_csrf_token": token})
        assert wrong.status_code == 401
    # Past the budget even the right password waits (it is not even checked).
    right = {"password": PASSWORD, "_csrf_token": token}
    refused = assert_error(client.post("/login", data=right), 429, "too_many_requests")
    assert "failed logins" in refused["detail"]
    assert int(client.post("/login", data=right).headers["retry-after"]) >= 1


def test_login_guard_backs_off_and_forgets() -> None:
    now = [0.0]
    guard = LoginGuard(budget=3, window_s=60, max_wait_s=10, clock=lambda: now[0])
    for _ in range(3):
        guard.check()
        guard.failed()
    guard.check()  # within the budget: no wait
    waits = []
    for _ in range(5):
        guard.failed()
        waits.append(guard._open_at - now[0])
        with pytest.raises(Exception, match="wait"):
            guard.check()
    assert waits == [2, 4, 8, 10, 10]  # doubling, capped
    now[0] += 61  # the window passed: the budget is whole again
    guard.check()
    guard.failed()
    guard.check()


def test_a_session_ends_after_its_absolute_lifetime(
    make_app_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.auth

    client = make_app_client()
    client.login()
    assert client.get("/api/v1/jobs/x").status_code == 404  # logged in
    later = time.time() + api.auth.SESSION_ABSOLUTE_S + 60
    monkeypatch.setattr(api.auth, "now", lambda: later)
    assert_error(client.get("/api/v1/jobs/x"), 401, "unauthorized")
    monkeypatch.undo()
    assert_error(client.get("/api/v1/jobs/x"), 401, "unauthorized")  # gone for good


def test_deeply_nested_json_in_a_form_field_is_a_400(make_app_client: Any) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("read")
    image = {"image": ("q.png", image_bytes(3), "image/png")}
    for field in ("filters", "weights", "box"):
        nested = client.post(
            "/api/v1/search", files=image, data={field: "[" * 100_000}, headers=key
        )
        assert_error(nested, 400, "bad_input")
    body = client.post(
        "/api/v1/search",
        content=b'{"filters": ' + b"[" * 100_000,
        headers={**key, "Content-Type": "application/json"},
    )
    assert_error(body, 400, "bad_input")


def test_ready_keeps_the_reason_of_a_failed_start_for_key_holders(
    make_app_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("cannot open /srv/secret-volume/qdrant at 10.1.2.3")

    monkeypatch.setattr("api.services.warm_up", broken)
    client = make_app_client()
    client.app.state.services.wait_ready(30)
    public = client.get("/ready").json()
    assert public["ready"] is False and public["detail"] == PUBLIC_FAILURE
    assert "10.1.2.3" not in client.get("/ready").text
    detailed = client.get("/ready", headers=client.api_key("read")).json()
    assert "10.1.2.3" in detailed["detail"]


def test_the_file_route_serves_the_path_it_checked(make_app_client: Any, tmp_path: Path) -> None:
    client = make_app_client()
    client.wait_ready()
    library = Path(client.settings.library_dir)
    (library / "real").mkdir()
    (library / "real" / "a.png").write_bytes(image_bytes(40))
    (library / "alias").symlink_to(library / "real")  # a folder link inside the library
    engine = client.app.state.services.lookalike
    engine.indexing.index()
    (record,) = list(engine.store.scroll())
    engine.store.set_payload([record.id], {"paths": ["alias/a.png"]})
    served = engine.library.file_path(record.id)
    assert served == (library / "real" / "a.png").resolve() and not served.is_symlink()
    response = client.get(f"/api/v1/images/{record.id}/file", headers=client.api_key("read"))
    assert response.status_code == 200 and response.content == image_bytes(40)


def test_query_images_have_a_lower_pixel_cap(make_app_client: Any) -> None:
    from engine.query import QUERY_MAX_PIXELS

    client = make_app_client()
    client.wait_ready()
    side = int(QUERY_MAX_PIXELS**0.5) + 10  # just over the cap; the indexing cap is 89.5 MP
    buf = io.BytesIO()
    Image.new("L", (side, side)).save(buf, "PNG")  # a few KB: the header is what is read
    big = {"image": ("big.png", buf.getvalue(), "image/png")}
    refused = client.post("/api/v1/search", files=big, headers=client.api_key("read"))
    body = assert_error(refused, 400, "undecodable_image")
    assert f"more than the {QUERY_MAX_PIXELS / 1e6:.3g} megapixels" in body["detail"]


def test_no_api_key_can_change_the_admin_password(make_app_client: Any) -> None:
    client = make_app_client()
    form = {"password": "taken over 123", "confirm": "taken over 123"}
    refused = client.post("/password", data=form, headers=client.api_key("write"))
    assert_error(refused, 403, "forbidden")
    assert PasswordStore(client.settings.data_dir).verify(PASSWORD)


def test_the_admin_password_is_needed_at_first_start_only(make_app_client: Any) -> None:
    first = make_app_client()  # started with LOOKALIKE_ADMIN_PASSWORD
    data, library = first.settings.data_dir, first.settings.library_dir
    again = make_app_client(data_dir=data, library_dir=library, admin_password=None)
    assert not PasswordStore(data).initial_path.exists()  # nothing generated, nothing asked
    again.password = PASSWORD  # the one stored at the first start
    assert again.login().status_code == 303 and again.get("/api/v1/jobs/x").status_code == 404


@pytest.mark.slow
def test_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    server = LiveServer(tmp_path, LOOKALIKE_TRUSTED_PROXIES="127.0.0.1")
    server.start(probe="/health")
    try:
        with server.client(follow_redirects=False) as http:
            token = TOKEN.search(http.get("/login").text)
            assert token

            def login(ip: str, password: str = "a wrong guess") -> httpx.Response:
                data = {"password": password, "_csrf_token": token.group(1)}
                return http.post("/login", data=data, headers={"X-Forwarded-For": ip})

            assert [login("10.0.0.1").status_code for _ in range(6)] == [401] * 5 + [429]
            assert login("10.0.0.2").status_code == 401  # another client behind the proxy
            # 6 failures so far; 15 more from other addresses use up the shared budget.
            for i in range(15):
                assert login(f"10.0.1.{i // 5}").status_code == 401
            refused = login("10.0.9.9", server.password)
            assert refused.status_code == 429 and "failed logins" in refused.json()["detail"]
    finally:
        server.stop()
