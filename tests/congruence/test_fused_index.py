"""The fused index (store.fused, engine.fused_index): one graph search ranks by the fused
score itself, and answers as the mirror does, on every backend, while every write keeps it.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import fused_index
from engine.store_search import StoreFusedSearch
from store import Filter, Record, Store, StoreConfig, open_store
from store.edge import EdgeStore
from store.fused import FUSED_META, is_fused
from store.mirror import Mirror
from tests.congruence.test_search_modes import (
    FILTERS,
    MODELS,
    MakeStore,
    clustered_records,
    filled,
    mirror_answer,
    queries,
)

N = 600


def agree(served: StoreFusedSearch, mirror: Mirror, store: Store, asks: list) -> list[int]:
    """Every query under every filter answers like the mirror; returns round one's depths."""
    depths = []
    for kind, vectors, weights in asks:
        for flt in FILTERS:
            want = mirror_answer(mirror, store, vectors, weights, flt)
            got = served.search(vectors, weights, 10, flt)
            depths.append(served.last_n)
            assert [h.id for h in got] == [h.id for h in want], (kind, flt)
            np.testing.assert_allclose(
                [h.score for h in got], [h.score for h in want], atol=1e-4, rtol=0
            )
            for g, w in zip(got, want, strict=True):  # the reasons: every model's cosine
                assert g.scores.keys() == w.scores.keys()
                for name in w.scores:
                    assert abs(g.scores[name] - w.scores[name]) <= 1e-4
    return depths


def test_the_fused_index_answers_as_the_mirror_and_writes_keep_it(
    make_store: MakeStore, tmp_path_factory: pytest.TempPathFactory
) -> None:
    rng = np.random.default_rng(5)
    records = clustered_records(rng, N)
    store = filled(make_store, records[:500])
    served = StoreFusedSearch(lambda: store, lambda: N)
    served_now = lambda: StoreFusedSearch(lambda: store, lambda: N)  # noqa: E731  (no cache)
    asks = queries(rng, records)
    several = [a for a in asks if sum(w > 0 for w in a[2].values()) > 1]

    # declared but not built: searches keep the two-round path
    name = store.create_fused()
    assert fused_index.ready(store) is None and served.search(*several[0][1:], 10)
    assert served.last_n > 0
    assert fused_index.ensure(store, True) and fused_index.ready(store) is not None
    assert store.get_meta(FUSED_META) == name and not fused_index.ensure(store, True)

    # the model vectors alone are what callers see
    assert store.vector_dims() == MODELS
    got = store.retrieve([records[0].id], with_vectors=True)[0]
    assert got.vectors.keys() == MODELS.keys()
    assert all(r.vectors.keys() == MODELS.keys() for r in store.scroll(with_vectors=True))

    # writes after the build: new points, a model's vector replaced, a point deleted
    store.upsert(records[500:])
    changed = records[7]
    new_clip = rng.standard_normal(MODELS["clip-vit-b-32"]).astype(np.float32)
    store.update_vectors([Record(changed.id, vectors={"clip-vit-b-32": new_clip})])
    store.delete([records[9].id])
    mirror = Mirror(tmp_path_factory.mktemp("mirror"), list(MODELS.items()))
    mirror.catch_up(store)
    probe = {**changed.vectors, "clip-vit-b-32": new_clip}
    asks.append(("similar", probe, dict.fromkeys(MODELS, 1.0)))
    depths = agree(served_now(), mirror, store, asks)
    assert {
        d
        for d, (_, _, w) in zip(depths[:: len(FILTERS)], asks, strict=True)
        if sum(v > 0 for v in w.values()) > 1
    } == {0}  # the fused index served them
    top = served_now().search(probe, dict.fromkeys(MODELS, 1.0), 3)
    assert top[0].id == changed.id and top[0].score == pytest.approx(1.0, abs=1e-5)
    assert records[9].id not in {
        h.id for h in served_now().search(records[9].vectors, dict.fromkeys(MODELS, 1.0), 10)
    }


def test_a_new_model_retires_the_index_until_it_is_built_again(make_store: MakeStore) -> None:
    rng = np.random.default_rng(8)
    records = clustered_records(rng, 200)
    store = filled(make_store, records)
    fused_index.ensure(store, True)
    old = fused_index.ready(store)
    assert old is not None
    store.create({**MODELS, "effnet-lite0": 24})  # another model's vector
    assert store.fused_index() is None and fused_index.ready(store) is None
    # still searchable, by the two-round path, and every write goes on
    store.upsert(records[:5])
    served = StoreFusedSearch(lambda: store, lambda: 200)
    got = served.search(records[3].vectors, dict.fromkeys(MODELS, 1.0), 5)
    assert got[0].id == records[3].id and served.last_n > 0
    assert fused_index.ensure(store, True)
    new = fused_index.ready(store)
    assert new is not None and new[0] != old[0]
    assert [m for m, _ in new[1]] == sorted([*MODELS, "effnet-lite0"])
    got = StoreFusedSearch(lambda: store, lambda: 200).search(
        records[3].vectors, dict.fromkeys(MODELS, 1.0), 5
    )
    assert got[0].id == records[3].id and got[0].score == pytest.approx(1.0, abs=1e-5)


def test_the_index_survives_a_restart(make_store: MakeStore) -> None:
    rng = np.random.default_rng(9)
    records = clustered_records(rng, 100)
    store = filled(make_store, records)
    fused_index.ensure(store, True)
    name = store.get_meta(FUSED_META)
    store.close()
    again = make_store(migrate=False)
    assert fused_index.ready(again) is not None and again.get_meta(FUSED_META) == name
    assert not any(is_fused(n) for n in again.vector_dims())
    assert not fused_index.ensure(again, True)  # nothing to build


def test_the_fused_graph_finds_the_fused_top_10(tmp_path) -> None:
    """Edge with int8 and an HNSW graph on every vector (threshold lowered so 5,000 points
    are indexed): the fused vector's graph, a Dot product over the blocks side by side, finds
    the exact fused top 10 with exact scores."""
    config = StoreConfig(data_dir=tmp_path, indexing_threshold_kb=10)
    rng = np.random.default_rng(4)
    records = clustered_records(rng, 5_000)
    with open_store(config) as store:
        store.create(MODELS)
        for start in range(0, len(records), 1000):
            store.upsert(records[start : start + 1000])
        fused_index.ensure(store, True)
        store.optimize()
        assert isinstance(store, EdgeStore) and store._shard is not None
        # every named vector is in a graph: the three models' and the fused one
        assert store._shard.info().indexed_vectors_count == 4 * len(records)
        mirror = Mirror(tmp_path / "mirror", list(MODELS.items()))
        mirror.catch_up(store)
        served = StoreFusedSearch(lambda: store, lambda: len(records))
        found = 0
        for seed in records[:40]:
            vectors = {n: v + 0.3 * rng.standard_normal(v.shape) for n, v in seed.vectors.items()}
            weights = {"clip-vit-b-32": 1.0, "resnet50": 0.5, "hsv-8x8x8": 2.0}
            want = mirror.search(vectors, weights, 10)
            got = served.search(vectors, weights, 10, Filter())
            assert served.last_n == 0
            found += len({h.id for h in got} & {h.id for h in want})
            exact = {h.id: h.score for h in want}
            for h in got:  # a served score is the exact fused score
                if h.id in exact:
                    assert abs(h.score - exact[h.id]) <= 1e-4
        assert found / (40 * 10) >= 0.99


def test_images_written_without_the_index_get_it_back(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(12)
    records = clustered_records(rng, 120)
    store = filled(make_store, records[:100])
    fused_index.ensure(store, True)
    with monkeypatch.context() as m:  # a writer that does not know the index yet
        m.setattr("store.fused.with_fused", lambda records, index: list(records))
        store.upsert(records[100:])
    everything = dict.fromkeys(MODELS, 1.0)
    probe = records[110]
    missed = StoreFusedSearch(lambda: store, lambda: 120).search(probe.vectors, everything, 5)
    assert probe.id not in {h.id for h in missed}  # what a search through it would miss
    assert fused_index.repair(store) == 20
    found = StoreFusedSearch(lambda: store, lambda: 120).search(probe.vectors, everything, 5)
    assert found[0].id == probe.id and found[0].score == pytest.approx(1.0, abs=1e-5)
    assert fused_index.repair(store) == 0
    assert store.count(Filter(lacks_vector=fused_index.ready(store)[0])) == 0
