"""Several query images, relevance feedback and a result's contact sheet, over REST (issue 17).

One app per module: six small pictures uploaded once, every test reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import AppClient, assert_error, image_bytes, library_app

NAMES = [f"p{i}.png" for i in range(6)]


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppClient, dict[str, str]]]:
    files = [(n, image_bytes(i), "image/png") for i, n in enumerate(NAMES)]
    with library_app(tmp_path_factory.mktemp("multi"), files) as lib:
        yield lib


def _search(client: AppClient, **body: Any) -> Any:
    return client.post("/api/v1/search", json={"k": 6, **body})


def test_two_uploaded_images_any_and_all(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, ids = lib
    files = [
        ("images[]", (n, image_bytes(i), "image/png")) for i, n in [(0, "a.png"), (3, "b.png")]
    ]
    for combine in ("any", "all"):
        response = client.post("/api/v1/search", files=files, data={"k": "6", "combine": combine})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["combine"] == combine
        matched = {h["id"]: h["matched_query"] for h in body["hits"]}
        assert matched[ids["p0.png"]] == 0 and matched[ids["p3.png"]] == 1
        if combine == "any":  # each query image finds itself first
            assert {h["id"] for h in body["hits"][:2]} == {ids["p0.png"], ids["p3.png"]}


def test_stored_image_ids_with_crops(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, ids = lib
    body = _search(
        client, image_ids=[ids["p1.png"], ids["p4.png"]], boxes=[None, [0, 0, 48, 36]]
    ).json()
    assert body["hits"][0]["id"] in {ids["p1.png"], ids["p4.png"]}
    assert {h["matched_query"] for h in body["hits"]} <= {0, 1}
    single = _search(client, image_id=ids["p1.png"]).json()
    assert single["hits"][0]["matched_query"] is None and single["combine"] is None


def test_more_than_eight_images_is_refused_naming_the_limit(
    lib: tuple[AppClient, dict[str, str]],
) -> None:
    client, ids = lib
    files = [("images[]", (f"q{i}.png", image_bytes(i), "image/png")) for i in range(9)]
    error = assert_error(client.post("/api/v1/search", files=files), 400)
    assert "8" in error["detail"]
    error = assert_error(_search(client, image_ids=[ids["p0.png"]] * 9), 400)
    assert "8" in error["detail"]


def test_malformed_multipart_parts_are_refused_with_a_sentence(
    lib: tuple[AppClient, dict[str, str]],
) -> None:
    client, _ = lib
    image = ("images", ("q.png", image_bytes(0), "image/png"))
    text_part = client.post("/api/v1/search", files=[image], data={"images": "not a file"})
    assert "must be an image file" in assert_error(text_part, 400)["detail"]
    bad_list = client.post("/api/v1/search", files=[image], data={"liked": "[not json"})
    assert "'liked' must be JSON" in assert_error(bad_list, 400)["detail"]


def test_unknown_ids_are_not_found(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, ids = lib
    nobody = "00000000-0000-4000-8000-000000000000"
    assert_error(_search(client, image_id=ids["p0.png"], liked=[nobody]), 404)
    assert_error(_search(client, image_id=ids["p0.png"], disliked=[nobody]), 404)
    assert_error(_search(client, image_ids=[ids["p0.png"], nobody]), 404)


def test_a_liked_image_moves_up_in_every_kind_of_query(
    lib: tuple[AppClient, dict[str, str]],
) -> None:
    client, ids = lib
    before = [h["id"] for h in _search(client, image_id=ids["p0.png"]).json()["hits"]]
    last = before[-1]
    after = [h["id"] for h in _search(client, image_id=ids["p0.png"], liked=[last]).json()["hits"]]
    assert after.index(last) < before.index(last)
    disliked = _search(client, image_id=ids["p0.png"], disliked=[before[1]]).json()["hits"]
    assert [h["id"] for h in disliked].index(before[1]) > 1
    form = {"k": "6", "liked": last}  # multipart: a repeated (here single) field
    upload = client.post(
        "/api/v1/search", files=[("image", ("q.png", image_bytes(0), "image/png"))], data=form
    )
    assert [h["id"] for h in upload.json()["hits"]].index(last) < before.index(last)
    several = _search(client, image_ids=[ids["p0.png"], ids["p1.png"]], liked=[last]).json()
    assert last in [h["id"] for h in several["hits"]]


def test_a_contact_sheet_of_a_result(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, ids = lib
    query = {"k": 4, "image_ids": [ids["p0.png"], ids["p2.png"]], "combine": "all"}
    pdf = client.post("/api/v1/search/sheet", json=query)
    assert pdf.status_code == 200, pdf.text
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    files = [("image", ("q.png", image_bytes(2), "image/png"))]
    png = client.post("/api/v1/search/sheet?format=png", files=files, data={"k": "3"})
    assert png.status_code == 200, png.text
    assert png.content.startswith(b"\x89PNG") and png.headers["content-type"] == "image/png"
    assert_error(client.post("/api/v1/search/sheet?format=gif", json=query), 400)
    assert json.loads(client.get("/schema/openapi.json").text)["paths"]["/api/v1/search/sheet"]


def test_box_and_boxes_each_belong_to_their_kind(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, ids = lib
    assert_error(_search(client, text="a ring", boxes=[None]), 400)
    assert_error(_search(client, image_id=ids["p0.png"], boxes=[[0, 0, 8, 8]]), 400)
    assert_error(_search(client, image_ids=[ids["p0.png"]], box=[0, 0, 8, 8]), 400)
    too_many = _search(client, image_ids=[ids["p0.png"]], boxes=[None, None])
    assert "boxes" in assert_error(too_many, 400)["detail"]
