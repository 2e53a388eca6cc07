"""The FAISS mirror against Qdrant, on every backend.

With all the weight on one model, the mirror's fused search must be exactly Qdrant's exact
search on that named vector: same top-10 ids, scores within 1e-4. Random float vectors make
ties negligible, so comparing ordered ids is fair. Then the mirror must follow the store
through every kind of write.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from store import Record, Store
from store.mirror import Mirror

MODELS = {"clip-vit-b-32": 64, "resnet50": 96, "hsv-8x8x8": 32}
BLOCKS = list(MODELS.items())

MakeStore = Callable[..., Store]


def random_records(rng: np.random.Generator, n: int) -> list[Record]:
    return [
        Record(
            str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            {"width": int(rng.integers(10, 1000))},
            {name: rng.standard_normal(dim).astype(np.float32) for name, dim in MODELS.items()},
        )
        for _ in range(n)
    ]


def collection(make_store: MakeStore) -> Store:
    store: Store = make_store(migrate=False)
    store.create(MODELS)
    return store


def assert_mirrors(mirror: Mirror, store: Store) -> None:
    """Same ids, and each point's vectors are the store's."""
    stored = {r.id: r for r in store.scroll(with_payload=["rev"], with_vectors=True)}
    assert mirror.ids() == set(stored)
    assert mirror.revs() == {i: r.payload["rev"] for i, r in stored.items()}
    for pid, rec in stored.items():
        mine = mirror.vector(pid)
        assert set(mine) == set(rec.vectors)
        for name, vec in rec.vectors.items():
            np.testing.assert_allclose(mine[name], vec, atol=1e-6)


def test_one_model_top10_equals_qdrant_exact(
    make_store: MakeStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = collection(make_store)
    rng = np.random.default_rng(20240611)
    records = random_records(rng, 2_000)
    for start in range(0, len(records), 500):
        store.upsert(records[start : start + 500])
    mirror = Mirror(tmp_path_factory.mktemp("mirror"), BLOCKS)
    assert mirror.catch_up(store) == 2_000

    for model in MODELS:
        weights = {name: float(name == model) for name in MODELS}
        for _ in range(20):
            query = {name: rng.standard_normal(dim) for name, dim in MODELS.items()}
            want = store.search(model, query[model], 10, exact=True)
            got = mirror.search(query, weights, 10)
            assert [h.id for h in got] == [h.id for h in want], model
            np.testing.assert_allclose(
                [h.score for h in got], [h.score for h in want], atol=1e-4, rtol=0
            )
            assert all(h.scores[model] == h.score for h in got)


def test_mirror_follows_every_kind_of_write(
    make_store: MakeStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = collection(make_store)
    rng = np.random.default_rng(5)
    records = random_records(rng, 300)
    store.upsert(records)
    path: Path = tmp_path_factory.mktemp("mirror")
    mirror = Mirror(path, BLOCKS)
    assert mirror.catch_up(store) == 300
    assert mirror.lag(store) == 0
    assert mirror.catch_up(store) == 0  # the overlap re-reads, but nothing changed
    mirror.save()

    replaced = random_records(rng, 20)
    for old, new in zip(records[:20], replaced, strict=True):
        new.id = old.id
    store.upsert(replaced)
    store.set_payload([r.id for r in records[20:30]], {"tags": ["seen"]})
    hsv = {r.id: rng.standard_normal(32).astype(np.float32) for r in records[30:35]}
    store.update_vectors([Record(i, {}, {"hsv-8x8x8": v}) for i, v in hsv.items()])
    store.upsert(random_records(rng, 30))
    store.delete([r.id for r in records[100:125]])
    assert mirror.lag(store) == 20 + 10 + 5 + 30

    assert mirror.catch_up(store) == 20 + 10 + 5 + 30
    assert mirror.lag(store) == 0
    assert len(mirror) == 330  # deletions are invisible to catch-up...
    assert mirror.full_diff(store) == (25, 0)  # ...and found by the full comparison
    assert_mirrors(mirror, store)

    # A restart from the snapshot taken before those writes converges the same way.
    restarted = Mirror.load(path, BLOCKS)
    assert restarted is not None and len(restarted) == 300
    restarted.catch_up(store)
    assert restarted.full_diff(store) == (25, 0)
    assert_mirrors(restarted, store)

    rebuilt = Mirror(path, BLOCKS)
    rebuilt.upsert(random_records(rng, 3))  # stale junk that the rebuild must drop
    assert rebuilt.rebuild(store) == 305
    assert_mirrors(rebuilt, store)
    assert rebuilt.full_diff(store) == (0, 0)
