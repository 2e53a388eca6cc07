"""engine.search_mode: who serves a search (LOOKALIKE_SEARCH), and the same answer either way."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from engine.composition import Lookalike
from engine.errors import STORE_DOWN_NO_MIRROR, StoreUnavailableError
from engine.search_request import Filters, SearchRequest
from tests.unit.engine.conftest import Outage, picture, save

MakeLookalike = Callable[..., Lookalike]


def _library(lk: Lookalike) -> None:
    lib = lk.settings.library_dir
    for seed in range(10):
        save(picture(seed), lib / f"p{seed}.png")
    save(picture(3).resize((150, 110)), lib / "copy-of-p3.png")  # a near duplicate
    lk.indexing.index()
    first = sorted(r.id for r in lk.store.scroll())[:4]
    lk.store.set_payload(first, {"tags": ["gold"]})


def _answers(lk: Lookalike, query: bytes, some_id: str) -> list[list[tuple[str, float]]]:
    gold = Filters(tags_any=("gold",))
    requests = [
        SearchRequest(image=query, k=5),
        SearchRequest(image=query, k=5, filters=gold),
        SearchRequest(image_id=some_id, k=5),
        SearchRequest(image_id=some_id, k=5, filters=gold, weights={"hsv": 1.0}),
    ]
    out = []
    for request in requests:
        hits = lk.search.run(request).hits
        # Colour histograms of unrelated pictures often share nothing: a tie at 0, in no
        # particular order. The order of real matches must be the same.
        out.append([(h.id, round(h.score, 4)) for h in hits if h.score > 0.01])
    return out


def test_qdrant_mode_answers_as_the_mirror_does_and_keeps_nothing(
    make_lookalike: MakeLookalike, tmp_path: Path
) -> None:
    mirrored = make_lookalike(search="mirror")
    _library(mirrored)
    query = (mirrored.settings.library_dir / "p3.png").read_bytes()
    some_id = sorted(r.id for r in mirrored.store.scroll())[5]
    want = _answers(mirrored, query, some_id)
    groups = [[m.id for m in g.members] for g in mirrored.duplicates.report(0.95).groups]
    assert mirrored.status.read()["search_mode"]["mode"] == "mirror"
    assert mirrored.status.read()["fused_index"] == "none"  # 'auto': only for qdrant mode
    mirrored.close()
    for kept in (tmp_path / "data" / "mirror", tmp_path / "data" / "mirror_payloads.msgpack"):
        if kept.is_dir():
            for f in kept.iterdir():
                f.unlink()
            kept.rmdir()
        elif kept.exists():
            kept.unlink()

    served = make_lookalike(search="qdrant")
    # opening the store built the fused index for the images already there
    assert served.status.read()["fused_index"] == "ready"
    assert _answers(served, query, some_id) == want
    assert [[m.id for m in g.members] for g in served.duplicates.report(0.95).groups] == groups
    assert len(groups) == 1  # p3 and its copy
    save(picture(42), served.settings.library_dir / "new.png")
    served.indexing.index()  # a write syncs no mirror: there is none
    status = served.status.read()
    assert status["search_mode"] == {
        "mode": "qdrant",
        "setting": "qdrant",
        "reason": status["search_mode"]["reason"],
    }
    assert "no mirror" in status["search_mode"]["reason"]
    assert status["mirror"] is None and status["mirror_lag"] is None
    assert status["points"] == 12
    assert not (tmp_path / "data" / "mirror").exists()
    assert served.mirror_keeper.loaded() is None


def test_auto_hands_over_to_qdrant_past_the_budget(make_lookalike: MakeLookalike) -> None:
    lk = make_lookalike(search="auto")
    _library(lk)
    assert lk.search_mode.current().mode == "mirror"
    assert "fit LOOKALIKE_MIRROR_MAX_MB" in lk.search_mode.current().reason
    assert lk.mirror_keeper.loaded() is not None
    query = (lk.settings.library_dir / "p3.png").read_bytes()
    some_id = sorted(r.id for r in lk.store.scroll())[5]
    want = _answers(lk, query, some_id)

    lk.search_mode.max_mb = 0.001  # as if the library had outgrown the budget
    serving = lk.search_mode.current()
    assert serving.mode == "qdrant" and "exceed LOOKALIKE_MIRROR_MAX_MB" in serving.reason
    assert _answers(lk, query, some_id) == want
    lk.mirror_keeper.sync()
    assert lk.mirror_keeper.loaded() is None  # the memory is given back


def test_auto_never_serves_a_mirror_that_failed_to_catch_up(
    make_lookalike: MakeLookalike, monkeypatch: pytest.MonkeyPatch
) -> None:
    lk = make_lookalike(search="auto")
    _library(lk)
    query = (lk.settings.library_dir / "p3.png").read_bytes()
    some_id = sorted(r.id for r in lk.store.scroll())[5]
    want = _answers(lk, query, some_id)

    def broken(self: object, store: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr("store.mirror.Mirror.catch_up", broken)
    save(picture(50), lk.settings.library_dir / "late.png")
    with pytest.raises(OSError):
        lk.indexing.index()  # the store took the image; the mirror could not follow
    serving = lk.search_mode.current()
    assert serving.mode == "qdrant" and "disk full" in serving.reason
    by_store = _answers(lk, query, some_id)
    late = [h.path for h in lk.search.run(SearchRequest(image=query, k=20)).hits]
    assert "late.png" in late  # the store's answer, not the stale mirror's
    assert by_store[2:] == want[2:]  # by id: the late image is not among the top 5
    monkeypatch.undo()
    lk.mirror_keeper.sync()  # caught up: the mirror serves again, with the late image
    assert lk.search_mode.current().mode == "mirror"
    assert lk.mirror_keeper.problem is None
    assert _answers(lk, query, some_id) == by_store


def test_without_a_mirror_a_store_outage_is_a_sentence(server_lookalike: Outage) -> None:
    lk = server_lookalike.lookalike
    lk.search_mode.setting = "qdrant"
    save(picture(1), lk.settings.library_dir / "a.png")
    lk.indexing.index()
    some_id = next(iter(lk.store.scroll())).id
    server_lookalike.go_down()
    for call in (
        lambda: lk.search.run(SearchRequest(image_id=some_id)),
        lambda: lk.reader.image(some_id),
    ):
        with pytest.raises(StoreUnavailableError) as caught:
            call()
        assert str(caught.value.detail) == STORE_DOWN_NO_MIRROR
    assert "cannot be reached" in STORE_DOWN_NO_MIRROR and "Qdrant" in STORE_DOWN_NO_MIRROR


def test_edge_builds_its_search_indexes_only_while_qdrant_serves(
    make_lookalike: MakeLookalike,
) -> None:
    import time

    from engine.startup import EdgeOptimizer

    for setting, builds in (("auto", False), ("qdrant", True)):
        lk = make_lookalike(search=setting)
        _library(lk)
        optimizer = EdgeOptimizer(lk, interval_s=0.02).start()
        deadline = time.monotonic() + (10 if builds else 0.3)
        while optimizer.runs == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        optimizer.stop()
        assert (optimizer.runs > 0) is builds, setting
        lk.close()
