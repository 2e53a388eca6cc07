"""``POST /api/v1/search/stream``: the ranking before verification, then the answer, as NDJSON.

Real engine, store and bundled models (EfficientNet-Lite0 + HSV), copy verification on: a
crop of a library photo is ranked first, then proven a copy in the final step, which is
exactly what ``POST /api/v1/search`` answers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import AppClient, assert_error, library_app

NAMES = ("astronaut", "coffee", "chelsea")


def _jpeg(pixels: Any, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(pixels)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppClient, dict[str, str]]]:
    import skimage.data

    files = [(f"{n}.jpg", _jpeg(getattr(skimage.data, n)()), "image/jpeg") for n in NAMES]
    with library_app(tmp_path_factory.mktemp("stream"), files) as lib:
        yield lib


def _steps(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.text.endswith("\n")
    return [json.loads(line) for line in response.text.splitlines()]


def _crop() -> bytes:
    import skimage.data

    return _jpeg(Image.fromarray(skimage.data.astronaut()).crop((100, 20, 380, 400)), 60)


def test_a_picture_is_ranked_then_verified(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, ids = lib
    query = {"image": ("crop.jpg", _crop(), "image/jpeg")}
    steps = _steps(client.post("/api/v1/search/stream", files=query, data={"k": "3"}))
    assert [s["stage"] for s in steps] == ["ranked", "final"]
    ranked, final = steps[0]["result"], steps[1]["result"]
    # The ranking by the vectors alone: nothing checked yet, no verification timed.
    assert ranked["hits"] and all(h["verified"] is None for h in ranked["hits"])
    assert "verify_ms" not in ranked["timings"] and "embed_ms" in ranked["timings"]
    assert len(ranked["hits"]) <= 3
    # The answer: the crop's source proven a copy, and what the plain route answers.
    assert final["hits"][0]["id"] == ids["astronaut.jpg"]
    assert final["hits"][0]["verified"]["sentence"].endswith("a copy")
    plain = client.post("/api/v1/search", files=query, data={"k": "3"}).json()
    assert [h["id"] for h in final["hits"]] == [h["id"] for h in plain["hits"]]
    assert [h["score"] for h in final["hits"]] == pytest.approx(
        [h["score"] for h in plain["hits"]], abs=1e-5
    )
    assert final["hits"][0]["verified"] == plain["hits"][0]["verified"]


def test_the_threshold_applies_to_the_ranking_too(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, _ = lib
    query = {"image": ("crop.jpg", _crop(), "image/jpeg")}
    everything = _steps(client.post("/api/v1/search/stream", files=query, data={"k": "3"}))
    scores = sorted(h["score"] for h in everything[0]["result"]["hits"])
    assert len(scores) == 3 and scores[0] < scores[-1]
    cut = (scores[0] + scores[-1]) / 2
    data = {"k": "3", "threshold": str(cut)}
    steps = _steps(client.post("/api/v1/search/stream", files=query, data=data))
    for step in steps:
        hits = step["result"]["hits"]
        assert hits and all(h["score"] >= cut for h in hits), step["stage"]
    assert len(steps[0]["result"]["hits"]) < 3


def test_a_query_with_nothing_to_verify_has_one_step(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, ids = lib
    steps = _steps(
        client.post("/api/v1/search/stream", json={"image_id": ids["coffee.jpg"], "k": 2})
    )
    assert [s["stage"] for s in steps] == ["final"]
    assert steps[0]["result"]["hits"][0]["id"] == ids["coffee.jpg"]


def test_bad_input_is_refused_before_any_step(lib: tuple[AppClient, dict[str, str]]) -> None:
    client, _ = lib
    junk = {"image": ("notes.jpg", b"not a picture at all", "image/jpeg")}
    body = assert_error(client.post("/api/v1/search/stream", files=junk), 400)
    assert body["detail"].startswith("Cannot decode notes.jpg")
    assert_error(client.post("/api/v1/search/stream", json={"k": 3}), 400, "bad_input")
    unknown = {"image_id": "00000000-0000-4000-8000-000000000000"}
    assert_error(client.post("/api/v1/search/stream", json=unknown), 404)


def test_a_failure_after_the_ranking_is_told_as_a_line(
    lib: tuple[AppClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: verification breaks after the first step went out. The client reads
    a last line that says so (the status line was sent already); the server keeps serving."""
    client, _ = lib
    verification = client.app.state.services.ready_lookalike().search._pictures._verification

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk gone")

    monkeypatch.setattr(verification, "rerank", broken)
    query = {"image": ("crop.jpg", _crop(), "image/jpeg")}
    steps = _steps(client.post("/api/v1/search/stream", files=query))
    assert [s["stage"] for s in steps] == ["ranked", "error"]
    assert steps[1]["error"]["status"] == 500 and "disk gone" not in json.dumps(steps[1])
    assert steps[1]["error"]["detail"].endswith(".")
    monkeypatch.undo()
    again = _steps(client.post("/api/v1/search/stream", files=query))
    assert again[-1]["stage"] == "final"
