"""The hostile-input corpus (tests/hostile/corpus.py) and bad requests, through the real app.

Every input gets either a correct result (legal images: stored with the right size and
format, found first by a search with the same bytes) or a 4xx with the standard error body.
After each refusal the store and the library folder are exactly as before, and after every
request the server still answers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.corpus import Case, big_photo, cases
from tests.integration.conftest import assert_error, image_bytes

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LIMIT_MB = 6  # above the corpus's multi-megabyte photo (~4.8 MB)


def multipart(parts: list[tuple[str, str | bytes | None, bytes]]) -> tuple[bytes, str]:
    """A multipart body written by hand, so a file name can be any bytes (httpx insists on
    str). Quotes and line breaks are escaped as browsers do (%22, %0D, %0A)."""
    boundary = b"hostile-boundary-7d1f"
    out = bytearray()
    for field, filename, data in parts:
        out += b"--" + boundary + b"\r\n"
        disposition = b'Content-Disposition: form-data; name="' + field.encode() + b'"'
        if filename is not None:
            raw = filename if isinstance(filename, bytes) else filename.encode("utf-8")
            raw = raw.replace(b'"', b"%22").replace(b"\r", b"%0D").replace(b"\n", b"%0A")
            disposition += b'; filename="' + raw + b'"'
            out += disposition + b"\r\nContent-Type: application/octet-stream\r\n\r\n"
        else:
            out += disposition + b"\r\n\r\n"
        out += data + b"\r\n"
    out += b"--" + boundary + b"--\r\n"
    return bytes(out), f"multipart/form-data; boundary={boundary.decode()}"


def snapshot(client: Any) -> tuple[int, int, list[str]]:
    """(points in the store, points in the mirror, every entry under the library)."""
    engine = client.app.state.services.lookalike
    library = Path(client.settings.library_dir)
    listing = sorted(str(p.relative_to(library)) for p in library.rglob("*"))
    return engine.store.count(), len(engine.mirror), listing


def post_multipart(client: Any, path: str, parts: list[Any], headers: dict[str, str]) -> Any:
    body, content_type = multipart(parts)
    return client.post(path, content=body, headers={**headers, "Content-Type": content_type})


@pytest.fixture
def hostile_client(make_app_client: Any) -> Any:
    client = make_app_client(max_upload_mb=LIMIT_MB)
    client.wait_ready()
    client.key = client.api_key("write")
    return client


def _check_alive(client: Any) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def _upload_case(client: Any, case: Case) -> None:
    before = snapshot(client)
    response = post_multipart(
        client, "/api/v1/images", [("files", case.filename, case.data)], client.key
    )
    label = case.name
    if not case.legal:
        body = assert_error(response, 400, case.code)
        assert "Traceback" not in body["detail"], label
        assert snapshot(client) == before, f"{label}: a refused upload changed something"
        return
    assert response.status_code == 201, (label, response.text)
    (image,) = response.json()["images"]
    assert (image["width"], image["height"]) == case.size, label
    assert image["format"] == case.format, label
    (path,) = image["paths"]
    folder, _, name = path.partition("/")
    assert folder == "uploads" and SAFE_NAME.fullmatch(name) and ".." not in name, (label, path)
    stored = Path(client.settings.library_dir) / path
    assert stored.resolve().is_relative_to(Path(client.settings.library_dir).resolve())
    assert stored.read_bytes() == case.data, label
    # The same bytes as a query find the stored image first.
    found = post_multipart(
        client,
        "/api/v1/search",
        [("image", case.filename, case.data), ("k", None, b"3")],
        client.key,
    )
    assert found.status_code == 200, (label, found.text)
    # First, or tied first with a file of identical pixels (the JPEG with a junk trailer).
    best = [h["id"] for h in found.json()["hits"] if h["score"] >= 0.999]
    assert image["id"] in best, label


def test_every_corpus_file_through_upload_and_search(hostile_client: Any) -> None:
    client = hostile_client
    corpus = cases()
    for case in corpus:
        _upload_case(client, case)
        if not case.legal:  # the same bytes as a search query get the same refusal
            query = [("image", case.filename, case.data)]
            assert_error(
                post_multipart(client, "/api/v1/search", query, client.key), 400, case.code
            )
        _check_alive(client)
    legal = [c for c in corpus if c.legal]
    listed = client.get("/api/v1/images", params={"limit": 500}, headers=client.key).json()
    assert listed["total"] == len(legal)
    assert len(list((Path(client.settings.library_dir) / "uploads").iterdir())) == len(legal)


def test_polyglot_is_served_as_an_image_that_cannot_be_sniffed(hostile_client: Any) -> None:
    client = hostile_client
    (case,) = [c for c in cases() if c.filename == "polyglot.gif"]
    response = post_multipart(
        client, "/api/v1/images", [("files", case.filename, case.data)], client.key
    )
    image = response.json()["images"][0]
    served = client.get(image["file_url"], headers=client.key)
    assert served.status_code == 200 and served.content == case.data
    assert served.headers["content-type"] == "image/gif"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"].startswith("sandbox;")
    assert served.headers["content-disposition"].startswith("inline")
    thumb = client.get(image["thumbnail_url"], headers=client.key)
    assert thumb.headers["content-type"] == "image/webp"


def test_one_bad_file_never_stops_the_others(hostile_client: Any) -> None:
    client = hostile_client
    bomb = next(c for c in cases() if c.name.startswith("decompression bomb"))
    parts = [("files", "good.png", image_bytes(1)), ("files", bomb.filename, bomb.data)]
    response = post_multipart(client, "/api/v1/images", parts, client.key)
    assert response.status_code == 201, response.text
    good, bad = response.json()["results"]
    assert good["status"] == "added" and good["paths"] == ["uploads/good.png"]
    assert bad["status"] == "rejected" and bad["id"] is None
    assert "pixels" in bad["detail"] and bad["detail"].endswith(".")
    listing = snapshot(client)[2]
    assert listing == ["uploads", "uploads/good.png"], listing


def test_uploads_over_the_size_limit_leave_nothing_behind(hostile_client: Any) -> None:
    client = hostile_client
    before = snapshot(client)
    photo = big_photo()
    over = [("files", "a.jpg", photo), ("files", "b.jpg", photo[::-1])]  # ~9.7 MB in all
    body = assert_error(
        post_multipart(client, "/api/v1/images", over, client.key), 413, "too_large"
    )
    assert "LOOKALIKE_MAX_UPLOAD_MB" in body["detail"]
    single = [("files", "c.png", b"\x89PNG" + b"\0" * (LIMIT_MB * 1024 * 1024))]
    assert_error(post_multipart(client, "/api/v1/images", single, client.key), 413, "too_large")
    query = [("image", "q.jpg", photo + photo)]
    assert_error(post_multipart(client, "/api/v1/search", query, client.key), 413, "too_large")

    # A body sent in chunks, with no Content-Length to refuse it by, is cut off all the same.
    data, content_type = multipart(over)

    def chunks() -> Any:
        for start in range(0, len(data), 1 << 20):
            yield data[start : start + (1 << 20)]

    streamed = client.post(
        "/api/v1/images", content=chunks(), headers={**client.key, "Content-Type": content_type}
    )
    assert_error(streamed, 413, "too_large")
    assert snapshot(client) == before
    _check_alive(client)


def test_bad_requests_get_4xx_and_the_standard_body(hostile_client: Any) -> None:
    client = hostile_client
    key = client.key
    png = image_bytes(3)
    uploaded = client.post("/api/v1/images", files={"files": ("ok.png", png)}, headers=key)
    image_id = uploaded.json()["images"][0]["id"]
    before = snapshot(client)
    json_type = {**key, "Content-Type": "application/json"}
    image = {"image": ("q.png", png, "image/png")}
    bad: list[tuple[str, Any, int, str]] = [
        # wrong multipart fields
        (
            "upload with field 'file'",
            lambda: client.post("/api/v1/images", files={"file": ("a.png", png)}, headers=key),
            400,
            "bad_input",
        ),
        (
            "upload with field 'image'",
            lambda: client.post("/api/v1/images", files={"image": ("a.png", png)}, headers=key),
            400,
            "bad_input",
        ),
        (
            "upload 'files' as plain text",
            lambda: client.post("/api/v1/images", data={"files": "not a file"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "upload as JSON",
            lambda: client.post("/api/v1/images", json={"files": []}, headers=key),
            400,
            "bad_input",
        ),
        (
            "upload with no body",
            lambda: client.post("/api/v1/images", headers=key),
            400,
            "bad_input",
        ),
        (
            "upload with a bad boundary",
            lambda: client.post(
                "/api/v1/images",
                content=b"--x\r\ngarbage",
                headers={**key, "Content-Type": "multipart/form-data; boundary=y"},
            ),
            400,
            "bad_input",
        ),
        (
            "search with field 'file'",
            lambda: client.post("/api/v1/search", files={"file": ("a.png", png)}, headers=key),
            400,
            "bad_input",
        ),
        (
            "upload tag with a newline",
            lambda: client.post(
                "/api/v1/images",
                files={"files": ("t.png", image_bytes(4))},
                data={"tags": "a\nb"},
                headers=key,
            ),
            400,
            "bad_input",
        ),
        (
            "upload tag of 100 characters",
            lambda: client.post(
                "/api/v1/images",
                files={"files": ("t.png", image_bytes(4))},
                data={"tags": "x" * 100},
                headers=key,
            ),
            400,
            "bad_input",
        ),
        # malformed JSON
        (
            "truncated JSON",
            lambda: client.post("/api/v1/search", content=b'{"image_id": ', headers=json_type),
            400,
            "bad_input",
        ),
        (
            "JSON array",
            lambda: client.post("/api/v1/search", content=b"[1, 2]", headers=json_type),
            400,
            "bad_input",
        ),
        (
            "JSON null",
            lambda: client.post("/api/v1/search", content=b"null", headers=json_type),
            400,
            "bad_input",
        ),
        (
            "JSON nested 10000 deep",
            lambda: client.post(
                "/api/v1/search", content=b"[" * 10000 + b"]" * 10000, headers=json_type
            ),
            400,
            "bad_input",
        ),
        (
            "invalid UTF-8 in JSON",
            lambda: client.post(
                "/api/v1/search", content=b'{"image_id": "\xff\xfe"}', headers=json_type
            ),
            400,
            "bad_input",
        ),
        (
            "invalid UTF-8 in PATCH",
            lambda: client.patch(
                f"/api/v1/images/{image_id}", content=b'{"tags": ["\xff"]}', headers=json_type
            ),
            400,
            "bad_input",
        ),
        (
            "invalid UTF-8 in reindex",
            lambda: client.post(
                "/api/v1/reindex", content=b'{"folder": "\xc3"}', headers=json_type
            ),
            400,
            "bad_input",
        ),
        (
            "PATCH with malformed JSON",
            lambda: client.patch(f"/api/v1/images/{image_id}", content=b"{tags", headers=json_type),
            400,
            "bad_input",
        ),
        (
            "PATCH tags as a string",
            lambda: client.patch(f"/api/v1/images/{image_id}", json={"tags": "x"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "reindex with malformed JSON",
            lambda: client.post("/api/v1/reindex", content=b"{", headers=json_type),
            400,
            "bad_input",
        ),
        # k out of range or not a number
        (
            "k = -1",
            lambda: client.post("/api/v1/search", files=image, data={"k": "-1"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "k = 0 (JSON)",
            lambda: client.post("/api/v1/search", json={"image_id": image_id, "k": 0}, headers=key),
            400,
            "bad_input",
        ),
        (
            "k = 10^12",
            lambda: client.post(
                "/api/v1/search", files=image, data={"k": "1000000000000"}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "k = 2^64 (JSON)",
            lambda: client.post(
                "/api/v1/search",
                content=b'{"image_id": "%s", "k": 18446744073709551616}' % image_id.encode(),
                headers=json_type,
            ),
            400,
            "bad_input",
        ),
        (
            "k = 3.5",
            lambda: client.post("/api/v1/search", files=image, data={"k": "3.5"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "k = NaN",
            lambda: client.post("/api/v1/search", files=image, data={"k": "NaN"}, headers=key),
            400,
            "bad_input",
        ),
        # unknown or bad filters, weights, box, threshold
        (
            "unknown filter field",
            lambda: client.post(
                "/api/v1/search",
                json={"image_id": image_id, "filters": {"colour": ["red"]}},
                headers=key,
            ),
            400,
            "bad_input",
        ),
        (
            "unknown filter field (multipart)",
            lambda: client.post(
                "/api/v1/search", files=image, data={"filters": '{"owner": "me"}'}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "filters not JSON",
            lambda: client.post(
                "/api/v1/search", files=image, data={"filters": "{nope"}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "filters as a list",
            lambda: client.post(
                "/api/v1/search", json={"image_id": image_id, "filters": ["a"]}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "unknown top-level field",
            lambda: client.post(
                "/api/v1/search", json={"image_id": image_id, "limit": 3}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "negative weight",
            lambda: client.post(
                "/api/v1/search", json={"image_id": image_id, "weights": {"cnn": -1}}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "infinite weight",
            lambda: client.post(
                "/api/v1/search",
                content=b'{"image_id": "%s", "weights": {"cnn": 1e999}}' % image_id.encode(),
                headers=json_type,
            ),
            400,
            "bad_input",
        ),
        (
            "all weights zero",
            lambda: client.post(
                "/api/v1/search",
                json={"image_id": image_id, "weights": {"cnn": 0, "hsv": 0}},
                headers=key,
            ),
            400,
            "bad_input",
        ),
        (
            "negative box",
            lambda: client.post(
                "/api/v1/search", json={"image_id": image_id, "box": [-1, 0, 5, 5]}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "box of 3 numbers",
            lambda: client.post(
                "/api/v1/search", files=image, data={"box": "[1, 2, 3]"}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "threshold NaN",
            lambda: client.post(
                "/api/v1/search", files=image, data={"threshold": "nan"}, headers=key
            ),
            400,
            "bad_input",
        ),
        # ids and query parameters
        (
            "image id with traversal",
            lambda: client.get("/api/v1/images/..%2F..%2Fetc%2Fpasswd/file", headers=key),
            404,
            "not_found",
        ),
        (
            "image id with dot segments",
            lambda: client.get("/api/v1/images/../../../etc/passwd", headers=key),
            404,
            "not_found",
        ),
        (
            "image id not a UUID",
            lambda: client.get("/api/v1/images/12345/thumbnail", headers=key),
            400,
            "bad_input",
        ),
        (
            "search by a non-UUID id",
            lambda: client.post(
                "/api/v1/search", json={"image_id": "../../etc/passwd"}, headers=key
            ),
            400,
            "bad_input",
        ),
        (
            "limit = -1",
            lambda: client.get("/api/v1/images", params={"limit": "-1"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "offset = -5",
            lambda: client.get("/api/v1/images", params={"offset": "-5"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "limit not a number",
            lambda: client.get("/api/v1/images", params={"limit": "ten"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "reindex folder outside",
            lambda: client.post("/api/v1/reindex", json={"folder": "../../etc"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "reindex absolute folder",
            lambda: client.post("/api/v1/reindex", json={"folder": "/etc"}, headers=key),
            404,
            "not_found",
        ),
        (
            "reindex folder with NUL",
            lambda: client.post("/api/v1/reindex", json={"folder": "a\u0000b"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "reindex unknown field",
            lambda: client.post("/api/v1/reindex", json={"path": "x"}, headers=key),
            400,
            "bad_input",
        ),
        (
            "search as text/plain",
            lambda: client.post(
                "/api/v1/search", content=b"k=3", headers={**key, "Content-Type": "text/plain"}
            ),
            400,
            "bad_input",
        ),
        (
            "search with no content type",
            lambda: client.post("/api/v1/search", content=b"{}", headers=key),
            400,
            "bad_input",
        ),
    ]
    for label, send, status, code in bad:
        response = send()
        assert response.status_code == status, (label, response.status_code, response.text)
        assert_error(response, status, code)
        _check_alive(client)
    assert snapshot(client) == before, "a refused request changed the store or the library"
    assert len(bad) >= 40


def test_unknown_query_parameters_are_refused_by_name(hostile_client: Any) -> None:
    """A misspelt parameter must not be ignored: the answer would be to another question."""
    client = hostile_client
    key = client.key
    uploaded = client.post(
        "/api/v1/images", files={"files": ("a.png", image_bytes(5))}, headers=key
    )
    image_id = uploaded.json()["images"][0]["id"]
    before = snapshot(client)
    body = assert_error(
        client.get("/api/v1/duplicates?treshold=0.9", headers=key), 400, "bad_input"
    )
    assert "'treshold'" in body["detail"] and "threshold" in body["detail"], body
    # An empty name, and a parameter the operation does not take at all.
    assert_error(client.get("/api/v1/images?limit=5&=null", headers=key), 400, "bad_input")
    body = assert_error(client.get("/api/v1/status?verbose=1", headers=key), 400, "bad_input")
    assert "no query parameters" in body["detail"], body
    body = assert_error(
        client.get(f"/api/v1/images/{image_id}?fields=all", headers=key), 400, "bad_input"
    )
    assert "/api/v1/images/{image_id}" in body["detail"], body
    # What the document lists still works; anonymous callers still get 401 first.
    assert client.get("/api/v1/duplicates?threshold=0.9", headers=key).status_code == 200
    assert_error(client.get("/api/v1/duplicates?treshold=0.9"), 401)
    # Pages are not in the document: a browser's or a mail's extra parameters are fine.
    assert client.get("/login?utm_source=mail").status_code == 200
    assert snapshot(client) == before
