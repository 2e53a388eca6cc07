"""The library over REST: upload, list, read, search, thumbnail, file, tag, delete.

Real engine, real store, real (bundled) models: EfficientNet-Lite0 and the HSV histogram.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from tests.integration.conftest import assert_error, image_bytes


def _upload(client: Any, names: list[str], headers: dict[str, str], tags: str = "") -> Any:
    files = [("files", (name, image_bytes(i), "image/png")) for i, name in enumerate(names)]
    return client.post("/api/v1/images", files=files, data={"tags": tags}, headers=headers)


def test_image_lifecycle(make_app_client: Any) -> None:
    client = make_app_client()
    client.login()
    client.wait_ready()
    csrf = client.csrf_headers()

    response = _upload(client, ["red one.png", "../escape.png", "c.png"], csrf, tags="shoes, red")
    assert response.status_code == 201, response.text
    images = response.json()["images"]
    assert [i["filename"] for i in images] == ["red_one.png", "escape.png", "c.png"]
    assert all(i["paths"][0].startswith("uploads/") for i in images)
    assert all(i["tags"] == ["red", "shoes"] for i in images)
    first = images[0]

    page = client.get("/api/v1/images", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2
    rest = client.get("/api/v1/images", params={"limit": 2, "offset": 2}).json()
    listed = {i["id"] for i in page["items"] + rest["items"]}
    assert listed == {i["id"] for i in images}
    assert client.get("/api/v1/images", params={"tag": "nope"}).json()["total"] == 0

    image = client.get(f"/api/v1/images/{first['id']}").json()
    assert image["width"] == 96 and image["height"] == 72 and image["format"] == "PNG"
    assert image["thumbnail_url"] == f"/api/v1/images/{first['id']}/thumbnail"

    # Search by the uploaded bytes, and by the stored id: the image itself comes first.
    query = {"image": ("query.png", image_bytes(0), "image/png")}
    hits = client.post("/api/v1/search", files=query, data={"k": "3"}, headers=csrf).json()
    assert hits["hits"][0]["id"] == first["id"]
    assert hits["hits"][0]["score"] >= 0.999
    assert set(hits["timings"]) == {
        "decode_ms",
        "embed_ms",
        "search_ms",
        "keypoints_ms",
        "verify_ms",
    }
    assert hits["models"] == {"cnn": "effnet-lite0", "hsv": "hsv-8x8x8"}
    by_id = client.post("/api/v1/search", json={"image_id": first["id"], "k": 3}, headers=csrf)
    hit = by_id.json()["hits"][0]
    assert hit["id"] == first["id"]
    assert set(hit) >= {
        "filename",
        "paths",
        "score",
        "scores",
        "thumbnail_url",
        "file_url",
        "width",
        "height",
        "tags",
    }
    assert min(h["score"] for h in by_id.json()["hits"]) >= 0.0

    thumb = client.get(first["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    assert "immutable" in thumb.headers["cache-control"]
    assert client.get(first["thumbnail_url"]).content == thumb.content  # from the cache
    file = client.get(first["file_url"])
    assert file.content == image_bytes(0) and file.headers["content-type"] == "image/png"

    patched = client.patch(
        f"/api/v1/images/{first['id']}", json={"tags": ["b", "a", "a"]}, headers=csrf
    )
    assert patched.json()["tags"] == ["a", "b"]
    assert client.get("/api/v1/images", params={"tag": "a"}).json()["total"] == 1

    deleted = client.delete(f"/api/v1/images/{first['id']}", headers=csrf)
    assert deleted.status_code == 204
    assert_error(client.get(f"/api/v1/images/{first['id']}"), 404, "not_found")
    after = client.post(
        "/api/v1/search", json={"image_id": images[1]["id"], "k": 5}, headers=csrf
    ).json()
    assert first["id"] not in {h["id"] for h in after["hits"]}


def test_seed_search_with_an_api_key(make_app_client: Any) -> None:
    """The acceptance check: curl -H "Authorization: Bearer $KEY" -F image=@x -F k=5 /search."""
    client = make_app_client()
    client.wait_ready()
    write = client.api_key("write")
    uploaded = _upload(client, ["x.png", "y.png", "z.png"], write).json()["images"]
    read = client.api_key("read")
    query = {"image": ("x.png", image_bytes(0), "image/png")}
    response = client.post("/search", files=query, data={"k": "5"}, headers=read)
    assert response.status_code == 200, response.text
    assert response.json()["hits"][0]["id"] == uploaded[0]["id"]
    assert response.json()["hits"][0]["filename"] == "x.png"


def test_search_options(make_app_client: Any) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    ids = [i["id"] for i in _upload(client, ["a.png", "b.png", "c.png"], key).json()["images"]]
    client.patch(f"/api/v1/images/{ids[2]}", json={"tags": ["keep"]}, headers=key)

    def search(**body: Any) -> Any:
        return client.post("/api/v1/search", json={"image_id": ids[0], **body}, headers=key)

    assert [h["id"] for h in search(k=1).json()["hits"]] == [ids[0]]
    assert [h["id"] for h in search(threshold=0.999).json()["hits"]] == [ids[0]]
    only = search(filters={"tags_any": ["keep"]}).json()["hits"]
    assert [h["id"] for h in only] == [ids[2]]
    colour = search(weights={"hsv": 1, "cnn": 0}).json()
    assert colour["weights"] == {"hsv": 1.0, "cnn": 0.0}
    # A crop of the query (multipart 'box', as the UI sends it) still finds its source first.
    form = {"k": "3", "box": "[0, 0, 60, 48]", "weights": "cnn=1,hsv=1"}
    query = {"image": ("q.png", image_bytes(1), "image/png")}
    cropped = client.post("/api/v1/search", files=query, data=form, headers=key).json()
    assert cropped["hits"][0]["id"] == ids[1]
    # These synthetic images differ mostly in colour, so weigh colour as the multipart case does
    # (the calibrated defaults favour shape, which suits real photos).
    boxed = search(box=[0, 0, 60, 48], k=3, weights={"cnn": 1, "hsv": 1}).json()
    assert boxed["hits"][0]["id"] == ids[0]


def test_bad_input_gets_the_standard_error(make_app_client: Any) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    image = {"image": ("q.png", image_bytes(0), "image/png")}

    def post(path: str = "/api/v1/search", **kwargs: Any) -> Any:
        return client.post(path, headers={**key, **kwargs.pop("headers", {})}, **kwargs)

    detail = assert_error(post(files=image, data={"k": "0"}), 400)["detail"]
    assert detail == "The number of results (k) must be a whole number, at least 1."  # not "$.k"
    assert_error(post(files=image, data={"k": "many"}), 400, "bad_input")
    assert_error(post(files=image, data={"k": "5000"}), 400, "bad_input")
    body = {"content": b'{"image_id": ', "headers": {"Content-Type": "application/json"}}
    assert_error(post(**body), 400, "bad_input")
    assert_error(post(files={"other": ("q.png", b"x", "image/png")}), 400, "bad_input")
    assert_error(post(json={"k": 3}), 400, "bad_input")
    assert_error(post(json={"image_id": "not-a-uuid"}), 400, "bad_input")
    assert_error(post(json={"image_id": str(_uuid())}), 404, "not_found")
    junk = {"image": ("q.png", b"this is not an image", "image/png")}
    assert_error(post(files=junk), 400, "undecodable_image")
    unknown = assert_error(post(files=image, data={"weights": '{"smell": 1}'}), 400)
    assert "smell" in unknown["detail"]
    assert "smell" in assert_error(post(files=image, data={"weights": "smell=1"}), 400)["detail"]
    assert_error(post(files=image, data={"box": "[500, 0, 5, 5]"}), 400, "bad_input")
    assert post(files=image, data={"box": "[0, 0, 500, 500]"}).status_code == 200  # cut at the edge
    assert_error(post(files=image, data={"threshold": "2"}), 400, "bad_input")
    assert_error(post(json={"image_id": str(_uuid()), "surprise": 1}), 400, "bad_input")
    assert_error(post(content=b"k=3", headers={"Content-Type": "text/plain"}), 400)

    junk_upload = {"files": ("q.png", b"this is not an image", "image/png")}
    refused = assert_error(post("/api/v1/images", files=junk_upload), 400, "undecodable_image")
    assert refused["results"] == [
        {
            "filename": "q.png",
            "status": "rejected",
            "id": None,
            "paths": [],
            "detail": refused["detail"],
        }
    ]
    assert_error(post("/api/v1/images", data={"tags": "x"}), 400, "bad_input")
    assert client.get("/api/v1/images", headers=key).json()["total"] == 0  # nothing was saved
    assert_error(client.get("/api/v1/images?limit=0", headers=key), 400, "bad_input")
    assert_error(client.get("/api/v1/images/not-a-uuid", headers=key), 400, "bad_input")
    patch = client.patch(f"/api/v1/images/{_uuid()}", json={"tags": "x"}, headers=key)
    assert_error(patch, 400, "bad_input")
    assert_error(client.put("/api/v1/images", headers=key), 405, "method_not_allowed")


def test_upload_size_limit(make_app_client: Any) -> None:
    client = make_app_client(max_upload_mb=1)
    client.wait_ready()
    key = client.api_key("write")
    big = {"files": ("big.png", b"\0" * (1024 * 1024 + 1), "image/png")}
    body = assert_error(client.post("/api/v1/images", files=big, headers=key), 413, "too_large")
    # The limit is per file: the request fits (it allows multipart overhead), the file not.
    assert "limit is 1 MB per file (LOOKALIKE_MAX_UPLOAD_MB)" in body["detail"]
    assert body["results"][0]["status"] == "rejected"
    # A request far over one file's size is cut off before it is read.
    huge = {"files": ("huge.png", b"\0" * (3 * 1024 * 1024), "image/png")}
    body = assert_error(client.post("/api/v1/images", files=huge, headers=key), 413, "too_large")
    assert "LOOKALIKE_MAX_UPLOAD_MB" in body["detail"]


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())
