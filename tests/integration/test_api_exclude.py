"""``exclude``: images a search never shows (Find similar leaves out the image it starts
from), on every way in: JSON, multipart, the stream and the contact sheet; still k hits."""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import assert_error, image_bytes, library_app


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    files = [(f"p{i}.png", image_bytes(i), "image/png") for i in range(5)]
    with library_app(tmp_path_factory.mktemp("exclude"), files) as (client, ids):
        client.ids = ids
        yield client


def test_find_similar_leaves_its_own_image_out_and_keeps_k(app: Any) -> None:
    start = app.ids["p0.png"]
    plain = app.post("/api/v1/search", json={"image_id": start, "k": 3}).json()
    assert plain["hits"][0]["id"] == start  # without exclude: itself first, at 100 %
    body = {"image_id": start, "k": 3, "exclude": [start]}
    left = app.post("/api/v1/search", json=body).json()
    others = app.post("/api/v1/search", json={"image_id": start, "k": 4}).json()["hits"][1:]
    assert [h["id"] for h in left["hits"]] == [h["id"] for h in others]
    assert left["k"] == 3
    steps = [json.loads(line) for line in app.post("/api/v1/search/stream", json=body).iter_lines()]
    assert steps[-1]["stage"] == "final"
    assert all(start not in {h["id"] for h in s["result"]["hits"]} for s in steps)


def test_exclude_works_in_a_form_and_in_the_contact_sheet(app: Any) -> None:
    gone = [app.ids["p1.png"], app.ids["p2.png"]]
    image = [("image", ("q.png", image_bytes(1), "image/png"))]
    hits = app.post("/api/v1/search", files=image, data={"k": "5", "exclude": gone}).json()["hits"]
    assert len(hits) == 3 and not {h["id"] for h in hits} & set(gone)
    # The sheet lists the same hits: every image but the one left out.
    body = {"image_id": app.ids["p0.png"], "k": 4, "exclude": [app.ids["p3.png"]]}
    text = _pdf_text(app.post("/api/v1/search/sheet?format=pdf", json=body).content)
    assert all(f"p{i}.png".encode() in text for i in (0, 1, 2, 4))
    assert b"p3.png" not in text


def _pdf_text(pdf: bytes) -> bytes:
    """The streams of a PDF, decoded (reportlab writes them ASCII85, then deflated)."""
    assert pdf.startswith(b"%PDF")
    out = []
    for raw in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.DOTALL):
        data = raw.strip().removesuffix(b"~>")
        try:
            out.append(zlib.decompress(base64.a85decode(data)))
        except ValueError:  # zlib.error and binascii.Error are ValueErrors: an image stream
            continue
    return b"\n".join(out)


def test_exclude_refuses_what_is_not_an_image_id(app: Any) -> None:
    body = {"image_id": app.ids["p0.png"], "exclude": ["not-an-id"]}
    detail = assert_error(app.post("/api/v1/search", json=body), 400)["detail"]
    assert "not an image id" in detail or "UUID" in detail
    many = {"image_id": app.ids["p0.png"], "exclude": [app.ids["p0.png"]] * 101}
    assert_error(app.post("/api/v1/search", json=many), 400)
