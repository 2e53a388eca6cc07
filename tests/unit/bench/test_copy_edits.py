"""The eight edit families of bench/copy_detection.py: deterministic, RGB, and each does
what its name says (sizes, where the photo lands)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bench.quality_data as qd
from bench import copy_detection
from bench.copy_edits import THUMB_SIDE, families, pasted_into
from bench.photos import package_photos
from bench.quality_edits import edit_rng


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (12, 16, 3), np.uint8)  # blocks: edits keep some structure
    return Image.fromarray(small).resize((320, 240), Image.Resampling.NEAREST)


@pytest.fixture(scope="module")
def background() -> Image.Image:
    return Image.new("RGB", (400, 300), (10, 120, 30))


def test_every_family_is_deterministic_and_rgb(photo: Image.Image, background: Image.Image) -> None:
    fams = families([background])
    assert list(fams) == [
        "crop25", "geometry", "colour", "overlay", "screenshot", "pasted", "thumb64", "jpeg25",
    ]  # fmt: skip
    for name, edit in fams.items():
        a = edit(photo, edit_rng(f"copy/x/{name}"))
        b = edit(photo, edit_rng(f"copy/x/{name}"))
        assert a.mode == "RGB" and min(a.size) >= 8, name
        assert np.array_equal(np.asarray(a), np.asarray(b)), name
        assert not np.array_equal(np.asarray(a.resize(photo.size)), np.asarray(photo)), name


def test_sizes(photo: Image.Image, background: Image.Image) -> None:
    fams = families([background])
    crop = fams["crop25"](photo, edit_rng("c"))
    assert crop.size == (160, 120)  # a quarter of the area
    assert max(fams["thumb64"](photo, edit_rng("t")).size) == THUMB_SIDE
    shot = fams["screenshot"](photo, edit_rng("s"))
    assert shot.width == 1280 and shot.height > 240  # the photo inside a bigger window


def test_pasted_photo_covers_30_to_60_percent_of_the_width(
    photo: Image.Image, background: Image.Image
) -> None:
    for seed in range(5):
        out = np.asarray(pasted_into([background])(photo, edit_rng(f"p{seed}")))
        assert out.shape[:2] == (300, 400)  # the background's size
        changed = np.any(out != np.asarray(background), axis=2)
        cols = np.flatnonzero(changed.any(axis=0))
        assert 0.3 * 400 - 2 <= cols[-1] - cols[0] + 1 <= 0.6 * 400 + 2
    with pytest.raises(ValueError):
        pasted_into([])


@pytest.mark.bench
def test_copy_detection_bench_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """bench/copy_detection.py at a tiny size, HSV only (no torch): the real engine indexes
    the library, searches in the four configurations and reports what issue 18 asks for."""
    photos = package_photos(debian=False)[:4]  # 3 sources, 1 held out
    real_build = qd.build_dataset
    monkeypatch.setattr(
        copy_detection, "build_dataset", lambda out, **kw: real_build(out, **kw, photos=photos)
    )
    monkeypatch.setattr(copy_detection, "MODELS", {"clip_weights": "off", "cnn": "off"})
    results = tmp_path / "RESULTS.md"
    args = [
        *("--out", str(tmp_path / "cd"), "--sources", "2", "--distractors", "6"),
        *("--throughput", "4", "--no-install", "--sweep", "--results", str(results)),
    ]
    assert copy_detection.main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["queries"]["total"] == 2 * 8
    assert set(out["map"]) == {"off", "verify", "verify+inside", "default"}
    assert 0 <= out["default_looked_inside"] <= out["queries"]["total"]
    assert all(0 <= v <= 1 for c in out["map"].values() for v in c.values())
    assert out["index_throughput"]["files"] == 4
    assert out["candidates_sweep"]["family"] in out["map"]["off"]
    assert "| family | off | verify | verify+inside | default (auto) |" in results.read_text()
