"""engine.library: list, read, tag, delete and find the files of images."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from engine.composition import Lookalike
from engine.errors import BadInput, NotFound
from store.base import Filter
from tests.unit.engine.conftest import picture, save


@pytest.fixture
def lk(make_lookalike: Callable[..., Lookalike]) -> Lookalike:
    lk = make_lookalike()
    for seed in range(5):
        save(picture(seed), lk.settings.library_dir / ("a" if seed < 2 else "b") / f"p{seed}.png")
    lk.indexing.index()
    return lk


def test_pages_are_stable_and_counted(lk: Lookalike) -> None:
    first = lk.library.list_images(Filter(), offset=0, limit=2)
    rest = lk.library.list_images(Filter(), offset=2, limit=10)
    assert first.total == rest.total == 5 and len(first.items) == 2 and len(rest.items) == 3
    assert {i["id"] for i in first.items}.isdisjoint(i["id"] for i in rest.items)
    assert lk.library.list_images(Filter(folders=["a"])).total == 2
    with pytest.raises(BadInput, match="limit between 1 and 500"):
        lk.library.list_images(Filter(), limit=501)


def test_tags_are_checked_stored_and_searchable(lk: Lookalike) -> None:
    image = lk.library.list_images(Filter(folders=["a"]), limit=1).items[0]
    tagged = lk.library.set_tags(image["id"], ["gold ", "ring", "gold"])
    assert tagged["tags"] == ["gold", "ring"]
    assert lk.library.list_images(Filter(tags_any=["ring"])).total == 1
    with pytest.raises(BadInput, match="no comma"):
        lk.library.set_tags(image["id"], ["a,b"])
    with pytest.raises(NotFound):
        lk.library.set_tags(str(uuid.uuid4()), ["x"])


def test_delete_moves_the_files_to_the_trash_and_drops_the_point(lk: Lookalike) -> None:
    image = lk.library.list_images(Filter(folders=["a"]), limit=1).items[0]
    path = lk.library.file_path(image["id"])
    lk.library.delete(image["id"])
    assert not path.exists()
    assert (lk.settings.data_dir / "trash" / image["id"] / path.name).is_file()
    assert lk.store.count() == 4 and image["id"] not in lk.mirror.ids()
    with pytest.raises(NotFound):
        lk.library.get(image["id"])


def test_files_outside_the_library_are_never_served(
    make_lookalike: Callable[..., Lookalike], tmp_path_factory: pytest.TempPathFactory
) -> None:
    lk = make_lookalike()
    outside = tmp_path_factory.mktemp("elsewhere")
    save(picture(7), outside / "o.png")
    lk.indexing.index(outside)  # the CLI may index any folder; the API serves the library only
    (image,) = lk.library.list_images(Filter()).items
    with pytest.raises(NotFound, match="not on disk inside the library"):
        lk.library.file_path(image["id"])


def test_safe_filenames_keep_every_script_and_drop_what_a_shell_or_filesystem_reads() -> None:
    from engine.library import safe_filename

    assert safe_filename("图片.png") == "图片.png"
    assert safe_filename("Café Ring.JPG") == "Café_Ring.jpg"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("a b$(rm -rf).png") == "a_b_rm_-rf.png"
    assert safe_filename("\u202egnp.exe") == "gnp.exe"  # a right-to-left override is dropped
    assert safe_filename("﻿.png") == "image.png"
    long = safe_filename("日本" * 120 + ".jpg")
    assert len(long.encode()) <= 210 and long.endswith(".jpg")  # within 255 bytes on disk


def test_tags_from_text_refuse_what_names_no_tag() -> None:
    from engine.errors import BadInput
    from engine.library import MAX_TAGS, check_tags, parse_tags

    assert parse_tags(None) == [] and parse_tags("") == []
    assert parse_tags(" gold, ring ,gold") == ["gold", "ring"]
    with pytest.raises(BadInput, match="--tags names no tag"):
        parse_tags(",, ,", option="--tags")
    with pytest.raises(BadInput, match="control character"):
        parse_tags("ok,bad\x00tag")
    with pytest.raises(BadInput, match=f"at most {MAX_TAGS} tags"):
        check_tags([f"t{i}" for i in range(MAX_TAGS + 1)])
