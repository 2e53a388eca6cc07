"""One source of search defaults: a search with no weights gives the same answer through the
CLI, ``POST /api/v1/search`` and the seed-compatible ``POST /search``.

The CLI used to fuse with equal weights while the API used the calibrated ones; on an
edited-copy set the CLI then ranked originals lower. The second test measures that on a set
of its own: real photos, edits that move colour and layout, photo distractors.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from bench.photos import package_photos
from cli import main as cli_main
from engine.defaults import search_defaults

pytestmark = pytest.mark.slow


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _grey_contrast(img: Image.Image) -> Image.Image:
    return ImageEnhance.Contrast(ImageOps.grayscale(img).convert("RGB")).enhance(1.6)


def _banner(img: Image.Image) -> Image.Image:
    out = img.convert("RGB").copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle((0, int(h * 0.7), w, h), fill=(240, 30, 120))
    return out


def _crop_tint(img: Image.Image) -> Image.Image:
    w, h = img.size
    cropped = img.convert("RGB").crop((w // 6, h // 6, w - w // 6, h - h // 6))
    return Image.blend(cropped, Image.new("RGB", cropped.size, (255, 190, 40)), 0.3)


EDITS = {"grey": _grey_contrast, "banner": _banner, "croptint": _crop_tint}


@pytest.fixture(scope="module")
def photos() -> list[tuple[str, Image.Image]]:
    found = package_photos(min_side=256, debian=False)[:18]
    assert len(found) >= 14, "skimage and sklearn ship enough photos"
    out = []
    for p in found:
        img = p.load().convert("RGB")
        img.thumbnail((384, 384))
        out.append((p.name, img))
    return out


def _search_all(client: Any, path: str, data: bytes, key: dict[str, str]) -> list[Any]:
    files = {"image": ("q.jpg", data, "image/jpeg")}
    response = client.post(path, files=files, data={"k": "10"}, headers=key)
    assert response.status_code == 200, response.text
    return [(h["id"], h["score"]) for h in response.json()["hits"]]


def _cli_search(client: Any, monkeypatch: Any, capsys: Any, paths: list[Path]) -> list[Any]:
    """``lookalike search`` on the app's data directory, in this process, once the app has
    let go of its embedded store (a CLI beside a running server is another issue's)."""
    settings = client.settings
    client.app.state.services.lookalike.close()
    for name, value in {
        "LOOKALIKE_DATA_DIR": str(settings.data_dir),
        "LOOKALIKE_LIBRARY_DIR": str(settings.library_dir),
        "LOOKALIKE_CLIP_WEIGHTS": settings.clip_weights,
        "LOOKALIKE_CNN": settings.cnn,
        "LOOKALIKE_CNN_WEIGHTS": settings.cnn_weights,
    }.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    assert cli_main(["search", *map(str, paths), "--k", "10", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    return [[(h["id"], h["score"]) for h in line["hits"]] for line in lines]


def _same(a: list[Any], b: list[Any]) -> None:
    assert [i for i, _ in a] == [i for i, _ in b]
    assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-6)


def test_no_weights_means_the_same_answer_everywhere(
    make_app_client: Any,
    photos: list[tuple[str, Image.Image]],
    tmp_path: Path,
    monkeypatch: Any,
    capsys: Any,
) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    files = [("files", (f"{n}.jpg", _jpeg(img), "image/jpeg")) for n, img in photos[:8]]
    assert client.post("/api/v1/images", files=files, headers=key).status_code == 201
    query = tmp_path / "query.jpg"
    query.write_bytes(_jpeg(_grey_contrast(photos[0][1])))

    status = client.get("/api/v1/status", headers=key).json()
    defaults = search_defaults({m["role"]: m["name"] for m in status["models"]})
    assert status["default_weights"] == defaults.weights
    assert defaults.weights != dict.fromkeys(defaults.weights, 1.0)  # calibrated, not equal

    api = _search_all(client, "/api/v1/search", query.read_bytes(), key)
    seed = _search_all(client, "/search", query.read_bytes(), key)
    [cli] = _cli_search(client, monkeypatch, capsys, [query])
    assert len(api) == 8
    _same(api, seed)
    _same(api, cli)


def _mean_ap(rankings: list[list[str]], relevant: list[str]) -> float:
    """One relevant item per query: AP = 1 / its rank (0 when not in the list)."""
    pairs = zip(rankings, relevant, strict=True)
    aps = [1.0 / (r.index(want) + 1) if want in r else 0.0 for r, want in pairs]
    return float(np.mean(aps))


def test_the_cli_without_weights_reaches_the_api_map_on_edited_copies(
    make_app_client: Any,
    photos: list[tuple[str, Image.Image]],
    tmp_path: Path,
    monkeypatch: Any,
    capsys: Any,
) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    originals, queries = photos[:10], []
    # The originals, and the other photos as distractors.
    files = [("files", (f"{n}.jpg", _jpeg(img), "image/jpeg")) for n, img in photos]
    uploaded = client.post("/api/v1/images", files=files, headers=key).json()["images"]
    id_of = {img["filename"].rsplit(".", 1)[0]: img["id"] for img in uploaded}
    relevant = []
    for name, img in originals:
        for edit, fn in EDITS.items():
            path = tmp_path / f"{name}-{edit}.jpg"
            path.write_bytes(_jpeg(fn(img), quality=80))
            queries.append(path)
            relevant.append(id_of[name])

    api = [
        [i for i, _ in _search_all(client, "/api/v1/search", q.read_bytes(), key)] for q in queries
    ]
    equal = {"weights": "cnn=1,hsv=1"}
    equal_rankings = []
    for q in queries:
        files = {"image": ("q.jpg", q.read_bytes(), "image/jpeg")}
        hits = client.post("/api/v1/search", files=files, data={"k": "10", **equal}, headers=key)
        equal_rankings.append([h["id"] for h in hits.json()["hits"]])
    cli = [[i for i, _ in ranking] for ranking in _cli_search(client, monkeypatch, capsys, queries)]

    api_map, cli_map = _mean_ap(api, relevant), _mean_ap(cli, relevant)
    equal_map = _mean_ap(equal_rankings, relevant)
    print(
        f"edited copies: mAP calibrated {api_map:.3f} (API) {cli_map:.3f} (CLI), "
        f"equal weights {equal_map:.3f}"
    )
    assert cli == api
    assert cli_map == api_map
    assert api_map >= equal_map  # what the CLI lost by fusing with equal weights
