"""Two ways to serve a search, one answer: the FAISS mirror against Qdrant's exact two-round
fusion (``engine.store_search``), on every backend.

Same top-10 ids and scores within 1e-4, with and without filters, for the three kinds of
query: an image (every model weighted), a sentence (the clip block alone) and "find
similar" (a stored image's own vectors). The points are clustered like a real library
(families of near-duplicates around a few designs) and non-negative where the real CNN and
HSV vectors are; a second collection of plain random vectors makes round one's depth
certificate work harder (flat cosines: the start depth is rarely enough).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable

import numpy as np
import pytest

from engine.store_search import (
    DEEPEN,
    MAX_N,
    StoreFusedSearch,
    hnsw_ef,
    next_depth,
    prefetch_n,
)
from store import Filter, Record, Store, VectorQuery
from store.base import Hit
from store.mirror import Mirror

MODELS = {"clip-vit-b-32": 48, "resnet50": 96, "hsv-8x8x8": 32}
N_POINTS = 1_500
TAGS = ("ring", "necklace", "print")

MakeStore = Callable[..., Store]


def clustered_records(rng: np.random.Generator, n: int, *, flat: bool = False) -> list[Record]:
    centres = {name: rng.standard_normal((40, dim)) for name, dim in MODELS.items()}
    records = []
    for i in range(n):
        family = int(rng.integers(0, 40))
        vectors = {}
        for name, dim in MODELS.items():
            v = (
                rng.standard_normal(dim)
                if flat
                else centres[name][family] + 0.6 * rng.standard_normal(dim)
            )
            if name != "clip-vit-b-32" and not flat:
                v = np.abs(v)  # CNN (after ReLU) and HSV histograms are non-negative
            vectors[name] = v.astype(np.float32)
        payload = {
            "width": int(rng.integers(100, 2000)),
            "tags": [TAGS[i % 3]],
            "folder": ["a" if i % 2 else "b"],
        }
        records.append(Record(str(uuid.UUID(bytes=rng.bytes(16), version=4)), payload, vectors))
    return records


def filled(make_store: MakeStore, records: list[Record]) -> Store:
    store: Store = make_store(migrate=False)
    store.create(MODELS)
    for start in range(0, len(records), 500):
        store.upsert(records[start : start + 500])
    return store


FILTERS = [
    None,
    Filter(tags_any=("ring",)),
    Filter(min_width=800, folders=("a",)),
    Filter(tags_all=("print",), max_width=900),
]


def queries(rng: np.random.Generator, records: list[Record]) -> list[tuple[str, dict, dict]]:
    """(kind, query vectors, weights by model name)."""
    out = []
    for _ in range(4):
        seed = records[int(rng.integers(len(records)))]
        noisy = {n: v + 0.3 * rng.standard_normal(v.shape) for n, v in seed.vectors.items()}
        out.append(("image", noisy, {"clip-vit-b-32": 1.0, "resnet50": 1.0, "hsv-8x8x8": 0.1}))
        text = {"clip-vit-b-32": rng.standard_normal(MODELS["clip-vit-b-32"])}
        out.append(("text", text, {"clip-vit-b-32": 1.0}))
        other = records[int(rng.integers(len(records)))]
        out.append(("similar", dict(other.vectors), {n: 1.0 for n in MODELS}))
    return out


def mirror_answer(mirror: Mirror, store: Store, vectors, weights, flt):
    """What the read policy does in mirror mode: filter in the store, rank in the mirror."""
    allowed = None
    if flt is not None:
        allowed = [r.id for r in store.scroll(flt, with_payload=False)]
    return mirror.search(vectors, weights, 10, allowed=allowed)


@pytest.mark.parametrize("flat", [False, True], ids=["clustered", "flat"])
def test_mirror_and_qdrant_modes_give_one_answer(
    make_store: MakeStore, tmp_path_factory: pytest.TempPathFactory, flat: bool
) -> None:
    rng = np.random.default_rng(7 if flat else 11)
    records = clustered_records(rng, N_POINTS, flat=flat)
    store = filled(make_store, records)
    mirror = Mirror(tmp_path_factory.mktemp("mirror"), list(MODELS.items()))
    mirror.catch_up(store)
    served = StoreFusedSearch(lambda: store, lambda: N_POINTS)
    depths = []
    for kind, vectors, weights in queries(rng, records):
        for flt in FILTERS:
            want = mirror_answer(mirror, store, vectors, weights, flt)
            got = served.search(vectors, weights, 10, flt)
            depths.append((len([w for w in weights.values() if w > 0]), served.last_n))
            assert [h.id for h in got] == [h.id for h in want], (kind, flt)
            np.testing.assert_allclose(
                [h.score for h in got], [h.score for h in want], atol=1e-4, rtol=0
            )
            for g, w in zip(got, want, strict=True):  # the "why": every model's cosine
                assert set(g.scores) >= set(w.scores)
                for name in w.scores:
                    assert abs(g.scores[name] - w.scores[name]) <= 1e-4
    start = prefetch_n(N_POINTS, 10)
    several = [n for models, n in depths if models > 1]
    # one weighted model (a sentence): its own top 10 is the answer, asked for alone
    assert {n for models, n in depths if models == 1} == {10}
    if flat:  # flat cosines: the certificate had to send round one deeper at least once
        assert max(several) > start
    else:
        assert min(several) == start


def test_nothing_to_rank_is_an_empty_answer(make_store: MakeStore) -> None:
    rng = np.random.default_rng(3)
    records = clustered_records(rng, 200)
    store = filled(make_store, records)
    served = StoreFusedSearch(lambda: store, lambda: 200)
    vectors = dict(records[0].vectors)
    nobody = Filter(tags_any=("no-such-tag",))
    assert served.search(vectors, {"resnet50": 1.0}, 10, nobody) == []
    assert served.search(vectors, {"resnet50": 0.0}, 10) == []
    # a model the collection lacks is ignored, like the mirror does
    assert served.search({"other": np.ones(4)}, {"other": 1.0}, 10) == []
    # fewer matching points than k: all of them, best first
    few = Filter(ids=tuple(r.id for r in records[:3]))
    got = served.search(vectors, {"resnet50": 1.0}, 10, few)
    assert {h.id for h in got} == {r.id for r in records[:3]}
    assert got[0].id == records[0].id and got[0].score == pytest.approx(1.0, abs=1e-5)


def test_round_one_grows_with_the_collection() -> None:
    sizes = [20_000, 100_000, 1_000_000, 10_000_000]
    depths = [prefetch_n(n, 10) for n in sizes]
    assert depths == sorted(depths) and depths[0] == 48
    assert 300 <= depths[-1] <= 600  # measured: about 300-500 at 10M
    assert prefetch_n(500, 100) == 200  # never shallower than twice k
    efs = [hnsw_ef(n) for n in [1_000, *sizes, 10**9]]
    assert efs == sorted(efs) and efs[:3] == [256, 256, 256]
    assert 900 <= hnsw_ef(1_000_000) <= 1100  # measured: CLIP's top 10 needed 1,024 at 1M
    assert efs[-1] == 4096


def test_round_two_scores_only_what_round_one_did_not(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(11)
    records = clustered_records(rng, N_POINTS)
    store = filled(make_store, records)
    listed: dict[str, set[str]] = {}  # round one: each model's list
    scored: dict[str, set[str]] = {}  # round two: each model's ids
    search_batch = store.search_batch

    def spied(batch: list[VectorQuery], flt: Filter | None = None) -> list[list[Hit]]:
        found = search_batch(batch, flt)
        for q, hits in zip(batch, found, strict=True):
            if q.ids is None:
                listed.setdefault(q.vector_name, set()).update(h.id for h in hits)
            else:
                scored.setdefault(q.vector_name, set()).update(q.ids)
        return found

    monkeypatch.setattr(store, "search_batch", spied)
    served = StoreFusedSearch(lambda: store, lambda: N_POINTS)
    seed = records[5]
    weights = {"clip-vit-b-32": 1.0, "resnet50": 1.0, "hsv-8x8x8": 0.0}
    got = served.search(seed.vectors, weights, 10)
    assert got[0].id == seed.id and all(set(h.scores) == set(MODELS) for h in got)
    union = set().union(*listed.values())
    assert set(listed) == {"clip-vit-b-32", "resnet50"}
    # round one's lists carry exact cosines (rescored): round two reads only the rest
    for name in MODELS:
        assert scored.get(name, set()) == union - listed.get(name, set()), name
    # one weighted model: round one asks for the top 10 alone, round two only for the "why"
    listed.clear()
    scored.clear()
    got = served.search(seed.vectors, {"resnet50": 1.0}, 10)
    assert [len(listed["resnet50"]), served.last_n] == [10, 10]
    assert scored == {m: {h.id for h in got} for m in MODELS if m != "resnet50"}


def test_a_deeper_round_one_goes_where_the_lists_say_the_proof_will_hold() -> None:
    n, active = 200, {"clip-vit-b-32": 1.0, "resnet50": 1.0}

    def listed(level: float, fall: float, size: int = n) -> list[Hit]:
        # cosines falling linearly in the log of the rank, as measured on real-shaped data
        return [Hit(str(r), level - fall * math.log(r), {}) for r in range(1, size + 1)]

    first = [listed(0.9, 0.03), listed(0.8, 0.02)]
    # the bound at depth r: (0.9 - 0.03 ln r + 0.8 - 0.02 ln r) / 2 = 0.85 - 0.025 ln r
    proven_at = {r: 0.85 - 0.025 * math.log(r) for r in (250, 1000, 10**6)}
    assert abs(next_depth(first, active, n, 2.0, proven_at[1000]) - 1.25 * 1000) <= 2
    assert next_depth(first, active, n, 2.0, proven_at[250]) == 2 * n  # at least twice as deep
    assert next_depth(first, active, n, 2.0, proven_at[10**6]) == MAX_N
    # a complete (short) list adds nothing to the bound: the other list decides
    short = [listed(0.9, 0.03), listed(0.8, 0.02, size=50)]
    assert abs(next_depth(short, active, n, 2.0, (0.9 - 0.03 * math.log(1000)) / 2) - 1250) <= 2
    # nothing to extrapolate (flat cosines), or no k-th score yet: DEEPEN times deeper
    flat = [[Hit(str(r), 0.5, {}) for r in range(n)]] * 2
    assert next_depth(flat, active, n, 2.0, 0.4) == DEEPEN * n
    assert next_depth(first, active, n, 2.0, None) == DEEPEN * n
