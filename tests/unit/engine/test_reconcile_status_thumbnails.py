"""engine.reconcile, engine.status and engine.thumbnails over a real library."""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

from engine.composition import Lookalike
from store.base import Filter
from tests.unit.engine.conftest import picture, save


def test_reconcile_brings_store_and_mirror_back_in_line(
    make_lookalike: Callable[..., Lookalike],
) -> None:
    lk = make_lookalike()
    lib = lk.settings.library_dir
    for seed in range(3):
        save(picture(seed), lib / f"p{seed}.png")
    lk.indexing.index()
    (lib / "p0.png").unlink()
    save(picture(9), lib / "new.png")
    result = lk.reconcile.run()
    assert result["index"]["removed_files"] == 1 and result["index"]["embedded"] == 1
    assert lk.store.count() == 3 and len(lk.mirror) == 3
    assert lk.reconcile.run()["index"]["unchanged"] == 3  # converged: nothing left to do


def test_status_names_models_defaults_and_lag(make_lookalike: Callable[..., Lookalike]) -> None:
    lk = make_lookalike()
    save(picture(1), lk.settings.library_dir / "p.png")
    lk.indexing.index()
    status = lk.status.read()
    assert (status["points"], status["backend"], status["mirror_lag"]) == (1, "edge", 0)
    assert [m["name"] for m in status["models"]] == ["hsv-8x8x8"]
    assert status["defaults"]["weights"] == status["default_weights"] == {"hsv": 1.0}
    assert status["defaults"]["source"] == "calibration.json [hsv-8x8x8]"
    assert status["inference"] == {}  # HSV has no inference mode


def test_a_thumbnail_is_made_once_and_is_small(make_lookalike: Callable[..., Lookalike]) -> None:
    lk = make_lookalike()
    save(picture(2, size=(900, 600)), lk.settings.library_dir / "big.png")
    lk.indexing.index()
    (image,) = lk.library.list_images(Filter()).items
    path = lk.thumbnails.path(image["id"])
    with Image.open(path) as thumb:
        assert thumb.format == "WEBP" and max(thumb.size) == 256
    made = path.stat().st_mtime_ns
    assert lk.thumbnails.path(image["id"]) == path and path.stat().st_mtime_ns == made
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
