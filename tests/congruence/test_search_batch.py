"""Store.search_batch on every backend: the same hits as numpy brute force, in one call."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from store import Filter, Record, Store, StoreError, VectorQuery

CLIP, HSV = "clip-vit-b-32", "hsv-8x8x8"
FORMATS = ["JPEG", "PNG", "WEBP"]


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


@pytest.fixture
def loaded(store: Store) -> tuple[Store, list[Record]]:
    rng = np.random.default_rng(11)
    records = [
        Record(
            str(uuid.uuid4()),
            {"format": FORMATS[i % 3], "tags": ["even"] if i % 2 == 0 else []},
            # Non-negative HSV vectors, as the real histograms are.
            {CLIP: rng.standard_normal(16).astype(np.float32), HSV: rng.random(8) + 0.01},
        )
        for i in range(240)
    ]
    store.upsert(records)
    return store, records


def _reference(
    records: list[Record], name: str, query: np.ndarray, k: int, keep: set[str] | None
) -> tuple[list[str], np.ndarray]:
    ids = np.array([r.id for r in records])
    scores = np.stack([_unit(r.vectors[name]) for r in records]) @ _unit(query)
    mask = np.array([keep is None or i in keep for i in ids])
    order = np.argsort(-np.where(mask, scores, -np.inf))[: min(k, int(mask.sum()))]
    return list(ids[order]), scores[order]


@pytest.mark.parametrize("exact", [True, False])
def test_a_batch_matches_brute_force_with_filters_and_ids(
    loaded: tuple[Store, list[Record]], exact: bool
) -> None:
    store, records = loaded
    rng = np.random.default_rng(12)
    png = {r.id for r in records if r.payload["format"] == "PNG"}
    some = [r.id for r in records[::4]]
    queries = [
        VectorQuery(CLIP, rng.standard_normal(16), 10, exact=exact),
        VectorQuery(HSV, rng.random(8) + 0.01, 7, exact=exact),
        VectorQuery(CLIP, rng.standard_normal(16), 5, exact=exact, ids=some),
        VectorQuery(HSV, rng.random(8) + 0.01, 200, exact=exact, ids=some),
    ]
    for flt, allowed in ((None, None), (Filter(formats=["PNG"]), png)):
        batch = store.search_batch(queries, flt)
        assert len(batch) == len(queries)
        for q, hits in zip(queries, batch, strict=True):
            keep = allowed if q.ids is None else set(q.ids) & (allowed or set(q.ids))
            ids, scores = _reference(records, q.vector_name, q.vector, q.k, keep)
            # Tiny collections are never graphed, so approximate is exact here; the recall
            # of the HNSW + int8 path is measured in tests/unit/store/test_vector_layout.py.
            assert [h.id for h in hits] == ids
            np.testing.assert_allclose([h.score for h in hits], scores, atol=1e-5)
            assert all(h.payload == {} for h in hits)


def test_a_batch_agrees_with_one_search_per_query(loaded: tuple[Store, list[Record]]) -> None:
    store, _ = loaded
    rng = np.random.default_rng(13)
    flt = Filter(tags_all=["even"], formats=["JPEG", "WEBP"])
    queries = [VectorQuery(CLIP, rng.standard_normal(16), 8) for _ in range(3)]
    for q, hits in zip(queries, store.search_batch(queries, flt), strict=True):
        single = store.search(q.vector_name, q.vector, q.k, flt)
        assert [h.id for h in hits] == [h.id for h in single]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in single], atol=1e-6)


def test_empty_ids_zero_k_and_an_empty_batch_match_nothing(
    loaded: tuple[Store, list[Record]],
) -> None:
    store, records = loaded
    ids_in_filter = Filter(ids=[records[0].id, records[1].id])
    queries = [
        VectorQuery(CLIP, np.ones(16), 5, ids=[]),
        VectorQuery(CLIP, np.ones(16), 0),
        VectorQuery(CLIP, np.ones(16), 5, ids=[records[1].id, records[2].id]),
    ]
    empty, zero, narrowed = store.search_batch(queries, ids_in_filter)
    assert empty == [] and zero == []
    assert [h.id for h in narrowed] == [records[1].id]  # the filter's ids AND the query's
    assert store.search_batch([]) == []


def test_a_query_on_an_unknown_vector_is_refused(loaded: tuple[Store, list[Record]]) -> None:
    store, _ = loaded
    with pytest.raises(StoreError, match="no named vector 'nope'"):
        store.search_batch([VectorQuery(CLIP, np.ones(16), 3), VectorQuery("nope", np.ones(4), 3)])
