"""One identical file of an image removed (an exact copy cleared up): the file goes to the
trash, the image stays with its other files, in the store and in the mirror."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import assert_error, image_bytes
from tests.integration.test_api_jobs import _wait


def test_an_exact_copy_is_removed_and_the_image_keeps_its_other_file(
    make_app_client: Any,
) -> None:
    client = make_app_client()
    library = client.settings.library_dir
    (library / "a").mkdir()
    (library / "b").mkdir()
    ring = image_bytes(21)
    (library / "a" / "ring.png").write_bytes(ring)
    (library / "b" / "ring copy.png").write_bytes(ring)
    (library / "other.png").write_bytes(image_bytes(22))
    client.wait_ready()
    key = client.api_key("write")
    job = _wait(client, client.post("/api/v1/reindex", headers=key).json()["id"], key)
    assert job["state"] == "done", job
    listed = client.get("/api/v1/images", params={"folder": "a"}, headers=key).json()
    (image,) = listed["items"]
    assert image["paths"] == ["a/ring.png", "b/ring copy.png"]

    url = f"/api/v1/images/{image['id']}/files"
    kept = client.delete(url, params={"path": "b/ring copy.png"}, headers=key)
    assert kept.status_code == 200, kept.text
    assert kept.json()["paths"] == ["a/ring.png"]
    assert not (library / "b" / "ring copy.png").exists()
    trash = client.settings.data_dir / "trash" / image["id"] / "ring copy.png"
    assert trash.read_bytes() == ring  # moved, not destroyed
    assert (library / "a" / "ring.png").read_bytes() == ring
    # The store and the mirror agree: the image is found by its own vectors, one file.
    found = client.post("/api/v1/search", json={"image_id": image["id"], "k": 1}, headers=key)
    assert found.json()["hits"][0]["paths"] == ["a/ring.png"]
    status = client.get("/api/v1/status", headers=key).json()
    assert status["points"] == 2 and status["mirror"]["points"] == 2

    # Its last file is the image itself: refused, nothing moved.
    last = client.delete(url, params={"path": "a/ring.png"}, headers=key)
    assert "delete the image instead" in assert_error(last, 409, "conflict")["detail"]
    assert (library / "a" / "ring.png").exists()
    # A path the image does not have, and a read-only key.
    assert_error(client.delete(url, params={"path": "other.png"}, headers=key), 404)
    read = client.api_key("read")
    assert_error(client.delete(url, params={"path": "a/ring.png"}, headers=read), 403)
    # A reconcile changes nothing afterwards: the folder and the store already agree.
    job = _wait(client, client.post("/api/v1/reconcile", headers=key).json()["id"], key)
    assert job["result"]["index"]["embedded"] == 0 and job["result"]["index"]["attached"] == 0
