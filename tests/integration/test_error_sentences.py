"""What a person reads when the server refuses something, through the real app: a sentence
about the field, never the validator's jargon, and nothing changed by the refusal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import assert_error, image_bytes
from tests.integration.test_hostile_api import post_multipart

JARGON = ("Expected", "`", "regex", "$.", "[...]", "msgspec", "Object missing", "UTF-8")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.integration.conftest import library_app

    files = [("ring.png", image_bytes(1), "image/png"), ("clasp.png", image_bytes(2), "image/png")]
    with library_app(tmp_path_factory.mktemp("sentences"), files) as (client, ids):
        client.ids = ids
        client.write = client.api_key("write")
        yield client


def refused(response: Any, status: int = 400) -> str:
    detail = str(assert_error(response, status)["detail"])
    for jargon in JARGON:
        assert jargon not in detail, detail
    return detail


def test_query_and_path_parameters_are_refused_in_words(app: Any) -> None:
    assert refused(app.get("/api/v1/images?limit=0")) == (
        "The page size (limit) must be a whole number, at least 1."
    )
    assert "a UUID" in refused(app.get("/api/v1/images/not-an-id"))
    assert refused(app.get("/api/v1/duplicates?threshold=5")) == (
        "The threshold must be a number, at most 1."
    )


def test_bodies_are_refused_in_words(app: Any) -> None:
    some_id = app.ids["ring.png"]
    missing = app.patch(f"/api/v1/images/{some_id}", json={}, headers=app.write)
    assert refused(missing) == "The request is missing the tags ('tags')."
    no_files = post_multipart(app, "/api/v1/images", [("tags", None, b"a")], app.write)
    assert refused(no_files) == "The request is missing the files ('files')."
    not_a_form = app.post("/api/v1/images", data={"tags": "a"}, headers=app.write)
    assert "multipart/form-data" in refused(not_a_form)
    empty_text = app.post("/api/v1/search", json={"text": ""})
    assert refused(empty_text) == "The text must be at least one word, not only spaces."
    colour = app.post("/api/v1/search", json={"image_id": some_id, "filters": {"colour": "teal"}})
    assert "'#rrggbb'" in refused(colour)
    box = app.post("/api/v1/search", json={"image_id": some_id, "box": [1, 2, 3]})
    assert refused(box).startswith("The crop box must be four whole numbers")
    huge = app.post(
        "/api/v1/search",
        content=b'{"image_id": "%s", "k": 1e400}' % some_id.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert refused(huge) == "The request holds a number too large to read."


def test_weights_are_bounded_so_their_sum_stays_finite(app: Any) -> None:
    some_id = app.ids["ring.png"]
    body = {"image_id": some_id, "weights": {"cnn": 1e308, "hsv": 1e308}}
    assert "at most 1000" in refused(app.post("/api/v1/search", json=body))
    image = [("image", ("q.png", image_bytes(1), "image/png"))]
    form = app.post("/api/v1/search", files=image, data={"weights": "cnn=1e308,hsv=1"})
    assert "from 0 to 1000" in refused(form)
    # At the bound, the ranking is still the real one: the image itself first, score 1.
    ok = app.post("/api/v1/search", json={**body, "weights": {"cnn": 1000, "hsv": 1000}})
    assert ok.status_code == 200, ok.text
    assert ok.json()["hits"][0]["id"] == some_id
    assert ok.json()["hits"][0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_upload_parts_without_a_file_name_are_named_as_such(app: Any) -> None:
    for path in ("/api/v1/images", "/api/v1/search"):
        field = "files" if path.endswith("images") else "image"
        response = post_multipart(app, path, [(field, None, image_bytes(3))], app.write)
        assert "has no file name" in refused(response)


def test_search_form_refuses_unknown_and_repeated_parts(app: Any) -> None:
    image = ("q.png", image_bytes(1), "image/png")
    unknown = app.post("/api/v1/search", files=[("image", image)], data={"colour": "#ff0000"})
    assert refused(unknown).startswith("'colour' is not something a search takes")
    two = app.post("/api/v1/search", files=[("image", image), ("image", image)])
    assert "use 'images'" in refused(two)


def test_tags_are_checked_the_same_way_everywhere(app: Any) -> None:
    some_id = app.ids["ring.png"]
    before = app.get(f"/api/v1/images/{some_id}").json()["tags"]
    for tags in (["nul\x00"], ["a" * 65], [str(i) for i in range(101)], [""]):
        refused(app.patch(f"/api/v1/images/{some_id}", json={"tags": tags}, headers=app.write))
    reindex = app.post("/api/v1/reindex", json={"tags": ["tab\there"]}, headers=app.write)
    assert refused(reindex).startswith("The tags must be 1 to 64 characters")
    assert app.get(f"/api/v1/images/{some_id}").json()["tags"] == before
    ok = app.patch(f"/api/v1/images/{some_id}", json={"tags": ["戒指", "gold"]}, headers=app.write)
    assert ok.status_code == 200 and ok.json()["tags"] == ["gold", "戒指"]


def test_file_names_in_any_script_are_kept(app: Any) -> None:
    files = [("files", ("戒指 草图.png", image_bytes(7), "image/png"))]
    uploaded = app.post("/api/v1/images", files=files, headers=app.write)
    assert uploaded.status_code == 201, uploaded.text
    image = uploaded.json()["images"][0]
    assert image["filename"] == "戒指_草图.png"
    served = app.get(f"/api/v1/images/{image['id']}/file")
    assert served.status_code == 200
    assert "filename*=utf-8''%E6%88%92%E6%8C%87_" in served.headers["content-disposition"]


def test_a_browser_at_an_unknown_address_gets_a_page(app: Any) -> None:
    page = app.get("/no/such/<page>", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text and 'href="/"' in page.text
    assert "<page>" not in page.text and "&lt;page&gt;" in page.text  # escaped, not markup
    api = app.get("/api/v1/no-such-thing", headers={"Accept": "text/html"})
    assert_error(api, 404, "not_found")  # an API address stays JSON, even for a browser


def test_a_library_file_damaged_on_disk_is_the_librarys_problem_not_the_callers(
    app: Any,
) -> None:
    files = [("files", ("damaged.png", image_bytes(11, (120, 90)), "image/png"))]
    uploaded = app.post("/api/v1/images", files=files, headers=app.write)
    image = uploaded.json()["images"][0]
    path = app.settings.library_dir / image["paths"][0]
    path.write_bytes(path.read_bytes()[:40])  # cut short on disk, after indexing
    crop = app.post("/api/v1/search", json={"image_id": image["id"], "box": [0, 0, 60, 60]})
    detail = assert_error(crop, 409, "damaged_file")["detail"]
    assert f"The file of library image {image['id']} cannot be decoded any more" in detail
    assert "run a reconcile" in detail
    assert_error(app.get(f"/api/v1/images/{image['id']}/thumbnail"), 409, "damaged_file")
    # Its stored vectors still answer a whole-image search, and an upload still says 400.
    whole = app.post("/api/v1/search", json={"image_id": image["id"]})
    assert whole.status_code == 200 and whole.json()["hits"][0]["id"] == image["id"]
    junk = [("image", ("junk.png", b"not an image", "image/png"))]
    assert_error(app.post("/api/v1/search", files=junk), 400, "undecodable_image")
