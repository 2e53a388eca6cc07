"""Two-stage search (compact codes, then exact rescoring) against the exact path, slot reuse,
refitting and paging."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from store.base import Record
from store.mirror import Mirror
from store.mirror.compact import CompactModel, fit

BLOCKS = [("clip", 48), ("cnn", 96), ("hsv", 16)]
WEIGHTS = [{"clip": 1.0, "cnn": 1.0, "hsv": 1.0}, {"clip": 0.0, "cnn": 1.0, "hsv": 3.0}]


def clustered(rng: np.random.Generator, n: int, rev: int = 1) -> list[Record]:
    """Groups of similar points around a shared direction, as embeddings come."""
    centres = {name: rng.normal(size=(max(1, n // 20), dim)) for name, dim in BLOCKS}
    group = rng.integers(0, max(1, n // 20), n)
    return [
        Record(
            str(uuid.UUID(int=int(rng.integers(1 << 62)))),
            {"rev": rev},
            {
                name: (2.0 + centres[name][group[i]] + 0.5 * rng.normal(size=dim)).astype(
                    np.float32
                )
                for name, dim in BLOCKS
            },
        )
        for i in range(n)
    ]


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    m = Mirror(tmp_path / "mirror", BLOCKS)
    m.exact_below = 300  # two stages from 300 points on, instead of thousands
    m.rerank = 64
    m.upsert(clustered(np.random.default_rng(1), 1_500))
    return m


def test_two_stages_give_the_exact_answer(mirror: Mirror) -> None:
    assert mirror._state.compact is not None
    rng = np.random.default_rng(2)
    for i in range(20):
        query = {name: 2.0 + rng.normal(size=dim) for name, dim in BLOCKS}
        weights = WEIGHTS[i % 2]
        got = mirror.search(query, weights, k=10)
        want = mirror.search(query, weights, k=10, exact=True)
        assert got == want  # same ids, same (exactly rescored) scores


def test_removed_points_are_never_candidates_and_their_slots_are_reused(mirror: Mirror) -> None:
    query = {name: 2.0 + np.ones(dim) for name, dim in BLOCKS}
    top = mirror.search(query, WEIGHTS[0], k=5)
    slots = {mirror._state.fid_of[h.id] for h in top}
    assert mirror.remove(h.id for h in top) == 5
    assert not {h.id for h in mirror.search(query, WEIGHTS[0], k=50)} & {h.id for h in top}
    assert set(mirror._state.rows.free) == slots
    fresh = clustered(np.random.default_rng(3), 5, rev=2)
    mirror.upsert(fresh)
    assert {mirror._state.fid_of[r.id] for r in fresh} == slots
    assert mirror._state.rows.n_slots == 1_500


def test_allowed_and_large_k_in_two_stages(mirror: Mirror) -> None:
    rng = np.random.default_rng(4)
    query = {name: 2.0 + rng.normal(size=dim) for name, dim in BLOCKS}
    allowed = set(list(mirror.ids())[::3])  # 500: more than the rerank count
    got = mirror.search(query, WEIGHTS[0], k=10, allowed=allowed)
    assert got == mirror.search(query, WEIGHTS[0], k=10, allowed=allowed, exact=True)
    assert {h.id for h in got} <= allowed
    many = mirror.search(query, WEIGHTS[0], k=200)  # k beyond rerank: 4k candidates
    assert [h.id for h in many] == [
        h.id for h in mirror.search(query, WEIGHTS[0], k=200, exact=True)
    ]


def test_the_projection_is_refitted_when_the_mirror_doubles(mirror: Mirror) -> None:
    assert mirror._state.compact is not None
    first = mirror._state.compact.model
    assert first.trained_on == 1_500  # fitted once, after the fixture's one upsert
    mirror.upsert(clustered(np.random.default_rng(5), 2 * first.trained_on))
    assert mirror._state.compact.model is not first
    assert mirror._state.compact.model.trained_on == 3 * first.trained_on
    assert len(mirror._state.compact) == mirror._state.rows.n_slots


def test_compact_model_round_trips_and_checks_itself() -> None:
    rng = np.random.default_rng(6)
    slices = [slice(0, 48), slice(48, 144), slice(144, 160)]
    model = fit(rng.normal(size=(500, 160)).astype(np.float32), slices, 500, budget=60)
    assert model.width == 60 and model.widths.sum() == 60 and (model.widths >= 16).all()
    again = CompactModel.from_arrays(model.as_arrays(), slices)
    np.testing.assert_array_equal(again.basis, model.basis)
    broken = {**model.as_arrays(), "widths": np.array([60, 0, 0, 0])}
    with pytest.raises(ValueError):
        CompactModel.from_arrays(broken, slices)


def test_page_walks_every_point_in_slot_order(mirror: Mirror) -> None:
    mirror.remove(list(mirror.ids())[:10])
    seen: list[str] = []
    start = 0
    while True:
        ids, rows = mirror.page(start, 400)
        if not ids:
            break
        assert rows.shape == (len(ids), 160)
        for pid, row in zip(ids[:3], rows[:3], strict=True):
            np.testing.assert_array_equal(row[:48], mirror.vector(pid)["clip"])
        seen += ids
        start += len(ids)
    assert len(seen) == len(set(seen)) == len(mirror) == 1_490
    slots = [mirror._state.fid_of[i] for i in seen]
    assert slots == sorted(slots)
