"""ShardedStore: the same points in 1, 3 or 6 Edge shards give the same answers."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from migrations import apply_pending
from store import Filter, Record, Store, StoreConfig, StoreConfigError, VectorQuery, open_store
from store.edge import EdgeStore
from store.sharded import ShardedStore, shard_of

VECTORS = {"clip-vit-b-32": 24, "hsv-8x8x8": 8}
CLIP, HSV = VECTORS
COUNTS = (1, 3, 6)
FILTERS = [
    None,
    Filter(formats=["PNG"]),
    Filter(tags_any=["blue"], min_width=1000),
    Filter(folders=["b"], tags_all=["blue", "final"]),
]


def _points(n: int) -> list[Record]:
    rng = np.random.default_rng(2024)
    tags = ["blue", "final", "draft"]
    return [
        Record(
            str(uuid.UUID(int=int(rng.integers(1, 2**62)) << 64 | i)),
            {
                "format": ["JPEG", "PNG", "WEBP"][i % 3],
                "folder": [["a", "b", "c"][i % 5 % 3]],
                "tags": [t for j, t in enumerate(tags) if (i >> j) & 1],
                "width": int(rng.integers(100, 4000)),
            },
            {CLIP: rng.standard_normal(24), HSV: rng.random(8) + 0.01},
        )
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, Store]]:
    points = _points(2000)
    opened: dict[int, Store] = {}
    try:
        for count in COUNTS:
            config = StoreConfig(data_dir=tmp_path_factory.mktemp(f"s{count}"), edge_shards=count)
            store = opened[count] = open_store(config)
            apply_pending(store, VECTORS)
            for start in range(0, len(points), 500):
                store.upsert(points[start : start + 500])
        yield opened
    finally:
        for store in opened.values():
            store.close()


def _plain(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != "rev"}  # each store drew its own revs


def _same_hits(a: list, b: list) -> None:
    assert [h.id for h in a] == [h.id for h in b]
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-6)


def test_one_shard_is_the_plain_store_and_more_are_sharded(stores: dict[int, Store]) -> None:
    assert isinstance(stores[1], EdgeStore)
    assert all(isinstance(stores[c], ShardedStore) for c in (3, 6))
    sizes = [s.count() for s in stores[6]._shards]  # type: ignore[attr-defined]
    assert sum(sizes) == 2000 and min(sizes) > 250  # spread by id, roughly evenly


@pytest.mark.parametrize("flt", FILTERS)
def test_search_and_search_batch_agree_across_shard_counts(
    stores: dict[int, Store], flt: Filter | None
) -> None:
    rng = np.random.default_rng(7)
    queries = [VectorQuery(CLIP, rng.standard_normal(24), 10) for _ in range(3)]
    queries.append(VectorQuery(HSV, rng.random(8), 10, exact=False))
    queries.append(VectorQuery(CLIP, rng.standard_normal(24), 10, ids=[p.id for p in _points(60)]))
    one = stores[1]
    batch_one = one.search_batch(queries, flt)
    assert all(len(hits) == 10 for hits in batch_one[:4])
    for count in (3, 6):
        other = stores[count]
        for got, expected in zip(other.search_batch(queries, flt), batch_one, strict=True):
            _same_hits(got, expected)
        for q, expected in zip(queries, batch_one, strict=True):
            narrowed = flt if q.ids is None else replace(flt or Filter(), ids=q.ids)
            hits = other.search(q.vector_name, q.vector, q.k, narrowed, exact=q.exact)
            _same_hits(hits, expected)
            _same_hits(hits, one.search(q.vector_name, q.vector, q.k, narrowed, exact=q.exact))
            assert _plain(hits[0].payload) == _plain(one.retrieve([hits[0].id])[0].payload)


@pytest.mark.parametrize("flt", FILTERS)
def test_count_scroll_and_retrieve_agree_across_shard_counts(
    stores: dict[int, Store], flt: Filter | None
) -> None:
    expected = [(r.id, _plain(r.payload)) for r in stores[1].scroll(flt, batch=97)]
    assert expected == sorted(expected, key=lambda item: item[0])
    some = [*[pid for pid, _ in expected[::37]][::-1], str(uuid.UUID(int=1))]
    for count in (3, 6):
        store = stores[count]
        assert store.count(flt) == stores[1].count(flt) == len(expected)
        assert [(r.id, _plain(r.payload)) for r in store.scroll(flt, batch=97)] == expected
        assert [r.id for r in store.retrieve(some)] == some[:-1]  # asked order, missing left out


def test_a_write_across_shards_is_one_rev_and_meta_lives_on_shard_0(tmp_path: Path) -> None:
    with open_store(StoreConfig(data_dir=tmp_path, edge_shards=4)) as store:
        apply_pending(store, VECTORS)
        points = _points(40)
        rev = store.upsert(points)
        assert len({shard_of(p.id, 4) for p in points}) == 4
        assert {r.payload["rev"] for r in store.scroll(with_payload=["rev"])} == {rev}
        later = store.set_payload([p.id for p in points[:9]], {"tags": ["x"]})
        assert later > rev
        assert store.count(Filter(rev_gt=rev)) == 9
        store.delete([p.id for p in points[:5]])
        assert store.count() == 35
        store.set_meta("k", {"v": 1})
        assert store._shards[0].get_meta("k") == {"v": 1}  # type: ignore[attr-defined]
    with open_store(StoreConfig(data_dir=tmp_path, edge_shards=4)) as again:
        assert again.get_meta("k") == {"v": 1} and again.count() == 35
        assert again.upsert(points[:1]) > later  # revs keep growing after a restart


def test_a_changed_shard_count_fails_at_start_up_and_reshuffles_nothing(tmp_path: Path) -> None:
    sharded, single = tmp_path / "sharded", tmp_path / "single"
    with open_store(StoreConfig(data_dir=sharded, edge_shards=3)) as store:
        apply_pending(store, VECTORS)
    with open_store(StoreConfig(data_dir=single)) as store:
        apply_pending(store, VECTORS)
    for data_dir, shards, found in ((sharded, 1, "3"), (sharded, 6, "3"), (single, 2, "one")):
        with pytest.raises(StoreConfigError, match="LOOKALIKE_EDGE_SHARDS") as raised:
            open_store(StoreConfig(data_dir=data_dir, edge_shards=shards))
        assert found in str(raised.value) and str(data_dir) in str(raised.value)
    assert sorted(p.name for p in (sharded / "qdrant-edge-shards").glob("shard-*")) == [
        "shard-0",
        "shard-1",
        "shard-2",
    ]
    # A directory opened with another count but never migrated holds no points: allowed.
    fresh = tmp_path / "fresh"
    open_store(StoreConfig(data_dir=fresh, edge_shards=2)).close()
    open_store(StoreConfig(data_dir=fresh, edge_shards=5)).close()
