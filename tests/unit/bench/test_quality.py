"""bench/quality.py end to end on a tiny set: pip-installed photos only, no apt, HSV + hashes
(the CNN path is the Embedder's own, tested in tests/unit/embedder)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bench.quality_data as qd
from bench import quality
from bench.photos import package_photos
from bench.quality_edits import EDITS, edit_rng
from engine.settings import get_settings


@pytest.fixture
def hsv_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOOKALIKE_CLIP_WEIGHTS", "off")
    monkeypatch.setenv("LOOKALIKE_CNN", "off")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_edits_are_deterministic_and_rgb() -> None:
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (120, 160, 3), np.uint8))
    for name, edit in EDITS.items():
        a = edit(img, edit_rng(f"q/{name}")).convert("RGB")
        b = edit(img, edit_rng(f"q/{name}")).convert("RGB")
        assert a.mode == "RGB" and min(a.size) > 10, name
        assert np.array_equal(np.asarray(a), np.asarray(b)), name


@pytest.mark.bench
def test_tiny_benchmark_runs_and_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hsv_only: None
) -> None:
    photos = package_photos(debian=False)[:4]  # 3 sources, 1 held out
    real_build = qd.build_dataset
    monkeypatch.setattr(
        quality, "build_dataset", lambda out, **kw: real_build(out, **kw, photos=photos)
    )
    results, cal = tmp_path / "RESULTS.md", tmp_path / "calibration.json"
    args = [
        *("--out", str(tmp_path / "q"), "--distractors", "12", "--fm-db", "40"),
        *("--fm-queries", "10", "--no-install", "--roles", "hsv"),
        *("--results", str(results), "--write-calibration", str(cal)),
    ]
    assert quality.main(args) == 0
    doc = json.loads(cal.read_text())
    entry = doc["sets"]["hsv-8x8x8"]
    assert entry["weights"] == {"hsv": 1.0}
    assert entry["near_duplicate_threshold"] is None or 0 < entry["near_duplicate_threshold"] <= 1
    text = results.read_text()
    assert "| hsv-8x8x8 (alone) |" in text
    assert "not measured: weights unavailable offline" not in text  # roles limited to hsv
    # Cached vectors: a second run computes nothing and gives the same figures.
    assert quality.main(args) == 0
    assert json.loads(cal.read_text()) == doc


def test_calibrate_on_a_studio_folder(tmp_path: Path, hsv_only: None) -> None:
    from bench.quality_calibrate import calibrate_on

    rng = np.random.default_rng(0)
    (tmp_path / "originals").mkdir()
    for i in range(4):
        colour = rng.integers(0, 256, 3)
        img = np.tile(colour, (64, 64, 1)).astype(np.uint8)
        img[::2, :, :] = 255 - colour  # stripes: a distinct histogram per original
        Image.fromarray(img).save(tmp_path / "originals" / f"o{i}.png")
        copies = tmp_path / "copies" / f"o{i}"
        copies.mkdir(parents=True)
        Image.fromarray(img[:48]).save(copies / "crop.png")
    out = calibrate_on(tmp_path, write=tmp_path / "cal.json")
    assert out["set"] == "hsv-8x8x8" and out["copies"] == 4
    saved = json.loads((tmp_path / "cal.json").read_text())["sets"]["hsv-8x8x8"]
    assert saved["origin"].startswith("studio:")
    assert saved["near_duplicate_threshold"] is not None


def test_copy_folder_must_name_an_original(tmp_path: Path) -> None:
    from bench.quality_calibrate import layout

    (tmp_path / "originals").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "originals" / "a.png")
    (tmp_path / "copies" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "copies" / "b" / "x.png")
    with pytest.raises(SystemExit, match="matches no file"):
        layout(tmp_path)
