"""Text search, the duplicate report and the colour filter, through the real app.

CLIP runs with random weights here ('random'): the plumbing is tested, never the quality.
The other tests use the HSV model alone, which needs no torch and keeps them fast.
"""

from __future__ import annotations

import io
import json
from typing import Any

from PIL import Image

from cli import main as cli_main
from tests.integration.conftest import assert_error, image_bytes

HSV_ONLY = {"clip_weights": "off", "cnn": "off"}


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def _smaller(data: bytes) -> bytes:
    """A near copy: the same picture at 90 % of its size, saved again."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    buf = io.BytesIO()
    img.resize((img.width * 9 // 10, img.height * 9 // 10)).save(buf, "PNG")
    return buf.getvalue()


def _upload(client: Any, files: dict[str, bytes]) -> list[dict[str, Any]]:
    parts = [("files", (name, data, "image/png")) for name, data in files.items()]
    response = client.post("/api/v1/images", files=parts, headers=client.csrf_headers())
    assert response.status_code == 201, response.text
    return list(response.json()["images"])


def _ready(client: Any) -> Any:
    client.login()
    client.wait_ready()
    return client


def test_text_search_without_clip_is_a_clear_422(make_app_client: Any) -> None:
    client = _ready(make_app_client(**HSV_ONLY))
    _upload(client, {"a.png": image_bytes(1)})
    response = client.post(
        "/api/v1/search", json={"text": "a red shoe"}, headers=client.csrf_headers()
    )
    body = assert_error(response, 422, "model_unavailable")
    assert "LOOKALIKE_CLIP_WEIGHTS" in body["detail"]


def test_text_search_with_clip_searches_the_clip_block(make_app_client: Any) -> None:
    client = _ready(make_app_client(clip_weights="random", cnn="off"))
    _upload(client, {f"img{i}.png": image_bytes(i) for i in range(3)})
    csrf = client.csrf_headers()
    response = client.post("/api/v1/search", json={"text": "a red shoe", "k": 2}, headers=csrf)
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["hits"]) == 2
    assert body["weights"] == {"clip": 1.0}
    assert all(set(h["scores"]) == {"clip"} for h in body["hits"])
    assert "embed_ms" in body["timings"]

    image_id = body["hits"][0]["id"]
    both = client.post("/api/v1/search", json={"text": "x", "image_id": image_id}, headers=csrf)
    assert "exactly one" in assert_error(both, 400, "bad_input")["detail"]
    assert_error(client.post("/api/v1/search", json={"text": "  "}, headers=csrf), 400)
    # The multipart form takes a text too, like every other search field.
    fields = {"text": (None, "a shoe"), "k": (None, "1")}
    form = client.post("/api/v1/search", files=fields, headers=csrf)
    assert form.status_code == 200, form.text


def test_duplicates_report_groups_near_copies(make_app_client: Any) -> None:
    client = _ready(make_app_client(**HSV_ONLY))
    original = image_bytes(7, size=(160, 120))
    images = _upload(
        client,
        {
            "original.png": original,
            "copy.png": _smaller(original),
            "other1.png": _png((200, 30, 30)),
            "other2.png": _png((30, 30, 200)),
        },
    )
    by_name = {i["filename"]: i["id"] for i in images}
    response = client.get("/api/v1/duplicates", params={"threshold": 0.9})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["threshold"] == 0.9
    assert [{m["id"] for m in g["members"]} for g in report["groups"]] == [
        {by_name["original.png"], by_name["copy.png"]}
    ]
    member = report["groups"][0]["members"][0]
    assert member["thumbnail_url"].endswith("/thumbnail") and 0.9 <= member["score"] <= 1
    assert_error(client.get("/api/v1/duplicates", params={"threshold": 1.5}), 400)
    assert client.get("/duplicates").status_code == 200


def test_duplicates_cli_prints_json(make_app_client: Any, monkeypatch: Any, capsys: Any) -> None:
    client = _ready(make_app_client(**HSV_ONLY))
    original = image_bytes(3, size=(160, 120))
    _upload(client, {"a.png": original, "b.png": _smaller(original), "c.png": _png((9, 9, 9))})
    settings = client.settings
    client.app.state.services.lookalike.close()  # the CLI opens the (embedded) store itself
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LOOKALIKE_LIBRARY_DIR", str(settings.library_dir))
    monkeypatch.setenv("LOOKALIKE_CLIP_WEIGHTS", "off")
    monkeypatch.setenv("LOOKALIKE_CNN", "off")
    capsys.readouterr()
    assert cli_main(["duplicates", "--threshold", "0.9", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["groups"]) == 1 and report["groups"][0]["size"] == 2


def test_colour_filter_keeps_images_with_that_colour(make_app_client: Any) -> None:
    client = _ready(make_app_client(**HSV_ONLY))
    images = _upload(
        client,
        {
            "red.png": _png((220, 20, 20)),
            "blue.png": _png((20, 40, 210)),
            "mix.png": image_bytes(2),
        },
    )
    by_name = {i["filename"]: i for i in images}
    assert by_name["red.png"]["palette"] == ["#dc1414"]  # k-means in Lab gives it back exactly
    csrf = client.csrf_headers()

    def search(filters: dict[str, Any]) -> Any:
        body = {"image_id": by_name["mix.png"]["id"], "k": 10, "filters": filters}
        return client.post("/api/v1/search", json=body, headers=csrf)

    red = search({"colour": "#e01010", "colour_tolerance": 10}).json()["hits"]
    assert [h["filename"] for h in red] == ["red.png"]
    blue = search({"colour": "#1428d2"}).json()["hits"]
    assert [h["filename"] for h in blue] == ["blue.png"]
    assert search({"colour": "#00ff00", "colour_tolerance": 5}).json()["hits"] == []
    assert_error(search({"colour": "red"}), 400)
