"""The near-duplicate report over a real engine (HSV only: no torch, fast)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.composition import Lookalike
from engine.defaults import DUPLICATES_MIN_THRESHOLD
from engine.duplicates import Duplicates, Group
from engine.errors import BadInput, Cancelled
from engine.settings import Settings


def _picture(seed: int) -> Image.Image:
    """Blocks of colour around one hue per seed, so different seeds look different."""
    rng = np.random.default_rng(seed)
    hue = (seed * 67) % 360
    hsv = np.stack(
        [
            np.full((6, 8), hue * 255 // 360) + rng.integers(-8, 8, (6, 8)),
            rng.integers(120, 255, (6, 8)),
            rng.integers(60, 255, (6, 8)),
        ],
        axis=-1,
    ).clip(0, 255)
    small = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    return small.resize((160, 120), Image.Resampling.NEAREST)


def _save(img: Image.Image, path: Path, **kw: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)


def find_duplicates(
    lk: Lookalike,
    threshold: float | None = None,
    weights: dict[str, float] | None = None,
    *,
    page_size: int | None = None,
) -> list[Group]:
    """The duplicates use case's groups, with pages of ``page_size`` rows when given."""
    duplicates = lk.duplicates
    if page_size is not None:
        payloads = lambda: lk.mirror_keeper.payloads  # noqa: E731
        duplicates = Duplicates(lambda: lk.mirror, payloads, lk.catalog, page_size=page_size)
    return duplicates.report(threshold, weights).groups


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Lookalike:
    tmp = tmp_path_factory.mktemp("dups")
    lib = tmp / "library"
    a, b = _picture(1), _picture(2)
    _save(a, lib / "a.png")
    (lib / "copies").mkdir()
    shutil.copy(lib / "a.png", lib / "copies" / "a.png")
    _save(a, lib / "edits" / "a-q80.jpg", quality=80)  # near copies of a
    _save(a.resize((144, 108)), lib / "edits" / "a-small.png")
    _save(b, lib / "b.png")
    _save(b.crop((4, 3, 156, 117)), lib / "edits" / "b-crop.jpg", quality=85)
    for seed in (3, 4, 5):  # unrelated images
        _save(_picture(seed), lib / f"other{seed}.png")
    settings = Settings(
        data_dir=tmp / "data", library_dir=lib, clip_weights="off", cnn="off", hsv=True
    )
    eng = Lookalike(settings)
    eng.indexing.index()
    yield eng
    eng.close()


def _as_paths(groups: list) -> list[set[str]]:
    return [{p for m in g.members for p in m.paths} for g in groups]


def test_exact_and_near_copies_form_the_right_groups(engine: Lookalike) -> None:
    groups = find_duplicates(engine, threshold=0.9)
    assert sorted(_as_paths(groups), key=len, reverse=True) == [
        {"a.png", "copies/a.png", "edits/a-q80.jpg", "edits/a-small.png"},
        {"b.png", "edits/b-crop.jpg"},
    ]
    for g in groups:
        assert 0.9 <= g.score <= 1.0 + 1e-6
        assert all(0.9 <= m.score <= g.score for m in g.members)
    a_group = next(g for g in groups if g.size == 4)
    assert any(len(m.paths) == 2 for m in a_group.members)  # one content, two paths


def test_small_pages_give_the_same_groups(engine: Lookalike) -> None:
    """The self-join reads the mirror a page at a time; the answer must not depend on it."""
    assert _as_paths(find_duplicates(engine, threshold=0.9, page_size=2)) == _as_paths(
        find_duplicates(engine, threshold=0.9)
    )


def test_an_exact_copy_alone_is_a_group(engine: Lookalike) -> None:
    groups = find_duplicates(engine, threshold=1.0)
    assert _as_paths(groups) == [{"a.png", "copies/a.png"}]
    assert groups[0].score == 1.0


def test_mirror_pages_cover_every_point_once(engine: Lookalike) -> None:
    mirror = engine.mirror
    seen: list[str] = []
    for start in range(0, len(mirror) + 3, 3):
        ids, rows = mirror.page(start, 3)
        assert rows.shape == (len(ids), mirror.dim) and rows.dtype == np.float32
        seen += ids
    assert sorted(seen) == sorted(mirror.ids())
    assert mirror.page(len(mirror), 5)[0] == []


@pytest.mark.parametrize("threshold", [0, 1e-6, 0.49, -0.5, 1.5, float("nan")])
def test_a_threshold_out_of_range_is_refused(engine: Lookalike, threshold: float) -> None:
    with pytest.raises(BadInput, match="threshold"):
        find_duplicates(engine, threshold=threshold)


def test_zero_weights_are_refused(engine: Lookalike) -> None:
    with pytest.raises(BadInput, match="weight"):
        find_duplicates(engine, threshold=0.9, weights={"hsv": 0.0})


def test_the_lowest_threshold_is_allowed(engine: Lookalike) -> None:
    report = engine.duplicates.report(DUPLICATES_MIN_THRESHOLD)
    assert report.threshold == DUPLICATES_MIN_THRESHOLD and not report.truncated


def test_pairs_are_capped_and_the_report_says_so(engine: Lookalike) -> None:
    payloads = lambda: engine.mirror_keeper.payloads  # noqa: E731
    capped = Duplicates(lambda: engine.mirror, payloads, engine.catalog, max_pairs=2)
    report = capped.report(DUPLICATES_MIN_THRESHOLD)
    full = engine.duplicates.report(DUPLICATES_MIN_THRESHOLD)
    assert report.truncated
    pairs_seen = sum(len(g.members) - 1 for g in report.groups if len(g.members) > 1)
    assert pairs_seen <= 2 < sum(len(g.members) - 1 for g in full.groups)


def test_a_report_nobody_waits_for_stops(engine: Lookalike) -> None:
    asked = []

    def cancelled() -> bool:
        asked.append(1)
        return True

    with pytest.raises(Cancelled):
        engine.duplicates.report(0.9, cancelled=cancelled)
    assert asked == [1]  # stopped before the first block was compared
