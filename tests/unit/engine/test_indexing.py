"""engine.indexing: a folder or a few files in, the store and the mirror in line."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from engine.composition import Lookalike
from engine.errors import BadInput, Busy, NotFound, StoreUnavailableError
from store.base import Filter
from tests.unit.engine.conftest import Outage, picture, save


def test_index_then_nothing_to_do(make_lookalike: Callable[..., Lookalike]) -> None:
    lk = make_lookalike()
    lib = lk.settings.library_dir
    for seed in range(3):
        save(picture(seed), lib / f"p{seed}.png")
    save(picture(0), lib / "copy" / "p0.png")  # the same bytes at a second path
    first = lk.indexing.index()
    assert (first.scanned, first.embedded) == (4, 4)  # files; the copy shares a point
    assert lk.store.count() == 3 and len(lk.mirror) == 3
    again = lk.indexing.index()
    assert (again.unchanged, again.embedded, again.models_loaded) == (4, 0, False)
    (lib / "p2.png").unlink()
    gone = lk.indexing.index()
    assert (gone.removed_files, gone.deleted_points) == (1, 1) and len(lk.mirror) == 2


def test_index_files_and_their_roll_back(make_lookalike: Callable[..., Lookalike]) -> None:
    lk = make_lookalike()
    paths = [save(picture(s), lk.settings.library_dir / "uploads" / f"u{s}.png") for s in (1, 2)]
    save(picture(3), lk.settings.library_dir / "not-mine.png")
    report = lk.indexing.index_files(paths, tags=["new"])
    assert report.embedded == 2 and lk.store.count() == 2  # the other file left alone
    assert all(r.payload["tags"] == ["new"] for r in lk.store.scroll())
    for p in paths:
        p.unlink()
    lk.indexing.unindex_files(paths)
    assert lk.store.count() == 0 and len(lk.mirror) == 0


def test_a_folder_that_is_not_one(make_lookalike: Callable[..., Lookalike]) -> None:
    lk = make_lookalike()
    with pytest.raises(BadInput, match="is not a folder"):
        lk.indexing.index(lk.settings.library_dir / "missing")


@pytest.mark.parametrize(
    ("sub", "error", "message"),
    [
        ("../elsewhere", BadInput, "is not inside the library"),
        ("missing", NotFound, "The library has no folder 'missing'"),
        ("0" * 1024, NotFound, "The library has no folder"),  # a name part over 255 bytes
        ("a\x00b", BadInput, "is not a folder of the library"),  # no folder can have it
    ],
)
def test_a_reindex_folder_is_checked_before_the_job(
    make_lookalike: Callable[..., Lookalike], sub: str, error: type[Exception], message: str
) -> None:
    lk = make_lookalike()
    (lk.settings.library_dir / "shoes").mkdir()
    assert lk.indexing.library_folder("/shoes/") == (lk.settings.library_dir / "shoes").resolve()
    with pytest.raises(error, match=message):
        lk.indexing.library_folder(sub)


def test_writing_waits_then_says_busy(make_lookalike: Callable[..., Lookalike]) -> None:
    lk = make_lookalike()
    held, release = threading.Event(), threading.Event()

    def reindex() -> None:
        with lk.indexing.writing():
            held.set()
            release.wait(10)

    worker = threading.Thread(target=reindex)
    worker.start()
    held.wait(5)
    try:
        with pytest.raises(Busy, match="re-indexed"), lk.indexing.writing(timeout=0.05):
            pass
    finally:
        release.set()
        worker.join()
    with lk.indexing.writing(timeout=0.05):
        pass  # free again


def test_writing_is_refused_at_once_while_the_store_is_down(server_lookalike: Outage) -> None:
    lk = server_lookalike.lookalike
    lk.indexing.index()  # opens the store and the mirror
    server_lookalike.go_down()
    assert not lk.reader.check_store()
    with pytest.raises(StoreUnavailableError), lk.indexing.writing():
        pass


def test_keywords_inside_files_become_tags(make_lookalike: Callable[..., Lookalike]) -> None:
    from tests.unit.embedder.test_metadata import encode, xmp

    lk = make_lookalike()
    path = lk.settings.library_dir / "tagged.png"
    path.write_bytes(encode("PNG", xmp(["ring", "gold"], "Aurora")))
    lk.indexing.index(tags=["import"])
    (record,) = lk.store.scroll()
    assert record.payload["tags"] == ["gold", "import", "ring"]
    assert (record.payload["keywords"], record.payload["title"]) == (["ring", "gold"], "Aurora")
    assert lk.store.count(Filter(tags_any=["gold"])) == 1  # a filter like any tag
