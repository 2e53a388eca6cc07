"""engine.watch: a watched library indexes what changes, within seconds, and only that."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from PIL import Image

from engine.composition import Lookalike
from engine.indexer import IndexReport
from engine.watch import LibraryWatcher
from tests.unit.engine.conftest import picture, save

WITHIN_S = 5.0  # the promise: indexed within 5 s of the change


@pytest.fixture
def watched(make_lookalike: Callable[..., Lookalike]) -> Iterator[tuple[Lookalike, list]]:
    lk = make_lookalike()
    lk.indexing.index()  # opens the store and the mirror, as a server has
    reports: list[IndexReport] = []
    watcher = lk.watcher(on_report=reports.append, settle_s=0.3)
    watcher.start()
    time.sleep(0.3)  # inotify watches are in place once the loop runs
    yield lk, reports
    watcher.stop()


def _until(cond: Callable[[], bool], what: str, timeout: float = WITHIN_S) -> float:
    started = time.monotonic()
    while not cond():
        assert time.monotonic() - started < timeout, f"{what} took over {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - started


def _paths(lk: Lookalike) -> set[str]:
    return {p for r in lk.store.scroll(with_payload=["paths"]) for p in r.payload["paths"]}


def test_new_changed_and_deleted_files(watched: tuple[Lookalike, list]) -> None:
    lk, reports = watched
    lib = lk.settings.library_dir
    for seed in range(3):
        save(picture(seed), lib / "new" / f"p{seed}.png")
    _until(lambda: _paths(lk) == {f"new/p{s}.png" for s in range(3)}, "indexing new files")
    before = {r.id for r in lk.store.scroll()}
    save(picture(7), lib / "new" / "p1.png")  # same name, other content
    _until(lambda: {r.id for r in lk.store.scroll()} != before, "re-indexing a changed file")
    assert lk.store.count() == 3
    (lib / "new" / "p0.png").unlink()
    _until(lambda: _paths(lk) == {"new/p1.png", "new/p2.png"}, "dropping a deleted file")
    assert len(lk.mirror) == 2
    assert all(not r.failed for r in reports)


def test_a_half_written_file_waits_until_it_is_whole(watched: tuple[Lookalike, list]) -> None:
    lk, reports = watched
    buf = io.BytesIO()
    picture(5, size=(600, 400)).save(buf, "PNG")
    data = buf.getvalue()
    target = lk.settings.library_dir / "slow.png"
    with target.open("wb") as fh:  # a slow copy: half now, the rest a moment later
        fh.write(data[: len(data) // 2])
        fh.flush()
        time.sleep(0.15)
        fh.write(data[len(data) // 2 :])
    _until(lambda: _paths(lk) == {"slow.png"}, "indexing the finished file")
    assert all(not r.failed for r in reports), [r.failed for r in reports]


def test_a_folder_moved_in_and_out_as_a_whole(
    watched: tuple[Lookalike, list], tmp_path_factory: pytest.TempPathFactory
) -> None:
    lk, _ = watched
    outside = tmp_path_factory.mktemp("outside") / "set"
    for seed in range(2):
        save(picture(seed + 10), outside / f"s{seed}.png")
    shutil.move(str(outside), lk.settings.library_dir / "set")  # one event, for the folder
    _until(lambda: _paths(lk) == {"set/s0.png", "set/s1.png"}, "indexing a moved-in folder")
    shutil.move(str(lk.settings.library_dir / "set"), str(outside))
    _until(lambda: _paths(lk) == set(), "dropping a moved-out folder")


@pytest.mark.slow
def test_a_copy_of_1000_files_ends_with_1000_points(
    make_lookalike: Callable[..., Lookalike], tmp_path_factory: pytest.TempPathFactory
) -> None:
    lk = make_lookalike()
    lk.indexing.index()
    source = tmp_path_factory.mktemp("source")
    rng = np.random.default_rng(0)
    for i in range(1000):
        pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(source / f"f{i:04d}.png")
    reports: list[IndexReport] = []
    watcher = LibraryWatcher(lk.indexing, lk.settings.library_dir, on_report=reports.append)
    watcher.start()
    try:
        time.sleep(0.3)
        started = time.monotonic()
        shutil.copytree(source, lk.settings.library_dir / "batch")
        _until(lambda: lk.store.count() == 1000, "indexing 1,000 copied files", timeout=120)
        print(f"1,000 files indexed {time.monotonic() - started:.1f} s after the copy began")
    finally:
        watcher.stop()
    assert all(not r.failed for r in reports)
    assert sum(r.embedded for r in reports) == 1000  # each file embedded once, no full reindex
    assert len(lk.mirror) == 1000
