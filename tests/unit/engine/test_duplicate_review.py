"""engine.duplicate_review: kinds, remembered decisions, changed groups, the bulk keep-one."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.composition import Lookalike
from engine.duplicate_review import REVIEW_KEY, GroupChanged, signature
from engine.errors import BadInput, NotFound
from tests.unit.engine.conftest import picture, save

T = 0.9  # groups b.png with its JPEG (HSV fused score about 0.92)


@pytest.fixture
def lk(make_lookalike: Callable[..., Lookalike]) -> Lookalike:
    # Verification off: these tests are about kinds by score and decisions. With it, b.jpg
    # (a JPEG of b.png) is a verified copy: tests/unit/engine/test_verification.py.
    lk = make_lookalike(verify=False)
    lib = lk.settings.library_dir
    save(picture(1), lib / "a.png")
    save(picture(1), lib / "copy" / "a.png")  # the same bytes: one point, two paths
    save(picture(4), lib / "d.png")
    save(picture(4), lib / "d.bmp")  # the same pixels, other bytes: two points, score 1
    save(picture(2), lib / "b.png")
    save(picture(2), lib / "b.jpg", quality=70)  # similar
    save(picture(3), lib / "c.png")
    lk.indexing.index()
    return lk


def _by_kind(lk: Lookalike, **kw: object) -> dict[tuple[str, int], object]:
    report = lk.duplicate_review.report(T, **kw)  # type: ignore[arg-type]
    return {(g.kind, len(g.ids)): g for g in report.groups}


def test_groups_are_exact_copies_or_similar(lk: Lookalike) -> None:
    groups = _by_kind(lk)
    assert set(groups) == {("exact", 1), ("exact", 2), ("similar", 2)}
    similar = groups["similar", 2]
    assert similar.signature == signature(list(reversed(similar.ids)))  # type: ignore[attr-defined]
    assert similar.decision is None  # type: ignore[attr-defined]


def test_a_dismissed_group_stays_dismissed_after_a_restart_and_a_reindex(
    lk: Lookalike, make_lookalike: Callable[..., Lookalike]
) -> None:
    group = _by_kind(lk)["similar", 2]
    lk.duplicate_review.decide(group.ids, "not_duplicates", threshold=T)  # type: ignore[attr-defined]
    assert ("similar", 2) not in _by_kind(lk)
    lk.close()
    again = make_lookalike(verify=False)
    again.indexing.index()
    assert ("similar", 2) not in _by_kind(again)
    shown = _by_kind(again, include_dismissed=True)["similar", 2]
    assert shown.decision == "not_duplicates" and shown.decided_at  # type: ignore[attr-defined]


def test_a_new_member_reopens_a_dismissed_group(lk: Lookalike) -> None:
    group = _by_kind(lk)["similar", 2]
    lk.duplicate_review.decide(group.ids, "keep_all", threshold=T)  # type: ignore[attr-defined]
    save(picture(2), lk.settings.library_dir / "b.webp", quality=80)
    lk.indexing.index()
    reopened = [g for g in lk.duplicate_review.report(T).groups if len(g.ids) == 3]
    assert len(reopened) == 1 and reopened[0].decision is None and reopened[0].reopened


def test_a_decision_on_a_changed_group_is_a_conflict_carrying_the_group(lk: Lookalike) -> None:
    group = _by_kind(lk)["similar", 2]
    seen = group.ids  # type: ignore[attr-defined]
    save(picture(2), lk.settings.library_dir / "b.webp", quality=80)
    lk.indexing.index()
    with pytest.raises(GroupChanged) as caught:
        lk.duplicate_review.decide(seen, "keep_all", threshold=T)
    assert caught.value.status == 409 and caught.value.group is not None
    assert len(caught.value.group.ids) == 3
    stored = lk.store.retrieve(seen)
    assert all(REVIEW_KEY not in r.payload for r in stored)  # bad input changes nothing


def test_bad_decisions_change_nothing(lk: Lookalike) -> None:
    group = _by_kind(lk)["similar", 2]
    review = lk.duplicate_review
    with pytest.raises(BadInput, match="one of"):
        review.decide(group.ids, "maybe", threshold=T)  # type: ignore[attr-defined]
    with pytest.raises(BadInput, match="kept image"):
        review.decide(group.ids, "keep_one", threshold=T)  # type: ignore[attr-defined]
    with pytest.raises(BadInput, match="not one of this group"):
        review.decide(group.ids, "keep_one", "x", threshold=T)  # type: ignore[attr-defined]
    with pytest.raises(NotFound):
        review.decide(["00000000-0000-0000-0000-000000000000"], "keep_all", threshold=T)
    single = _by_kind(lk)["exact", 1]
    with pytest.raises(BadInput, match="one image content"):
        review.decide(single.ids, "keep_one", single.ids[0], threshold=T)  # type: ignore[attr-defined]
    assert all(REVIEW_KEY not in r.payload for r in lk.store.scroll())


def test_apply_deletes_all_but_the_kept_image_after_confirmation(lk: Lookalike) -> None:
    group = _by_kind(lk)["exact", 2]
    kept = group.ids[1]  # type: ignore[attr-defined]
    review = lk.duplicate_review
    review.decide(group.ids, "keep_one", kept, threshold=T)  # type: ignore[attr-defined]
    assert _by_kind(lk)["exact", 2].decision == "keep_one"  # stays shown until applied
    before = lk.store.count()
    with pytest.raises(BadInput, match="delete 1 image"):
        review.apply(False, T)
    assert lk.store.count() == before
    result = review.apply(True, T)
    gone = group.ids[0]  # type: ignore[attr-defined]
    assert [d.id for d in result.deleted] == [gone] and result.groups == 1
    assert lk.store.count() == before - 1
    assert lk.store.retrieve([kept]) and not lk.store.retrieve([gone])
    assert ("exact", 2) not in _by_kind(lk)
    assert review.apply(True, T).deleted == []


def test_apply_keeps_a_group_that_a_new_image_joined_after_the_decision(lk: Lookalike) -> None:
    group = _by_kind(lk)["similar", 2]
    lk.duplicate_review.decide(group.ids, "keep_one", group.ids[0], threshold=T)  # type: ignore[attr-defined]
    save(picture(2), lk.settings.library_dir / "b.webp", quality=80)
    lk.indexing.index()
    before = lk.store.count()
    result = lk.duplicate_review.apply(True, T)
    assert result.deleted == [] and result.groups == 0
    assert lk.store.count() == before


def test_apply_reads_the_decision_from_the_store_not_a_stale_report(lk: Lookalike) -> None:
    # Another process withdrew the "keep one" in the store; this one's mirror cache has not
    # caught up yet, so its report still says "keep one". The store decides.
    group = _by_kind(lk)["exact", 2]
    ids, kept = group.ids, group.ids[1]  # type: ignore[attr-defined]
    review = lk.duplicate_review
    review.decide(ids, "keep_one", kept, threshold=T)
    withdrawn = {"decision": "keep_all", "signature": signature(ids), "kept": None}
    lk.store.set_payload(ids, {REVIEW_KEY: withdrawn})
    assert [g.kept for g, _ in review.pending(T)] == [kept]  # the stale view
    before = lk.store.count()
    result = review.apply(True, T)
    assert result.deleted == [] and result.groups == 0
    assert lk.store.count() == before and len(lk.store.retrieve(ids)) == 2
