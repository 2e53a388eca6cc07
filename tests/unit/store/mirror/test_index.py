"""The Mirror: fusion maths, restriction, writes and concurrency, checked against numpy, and
attaching rows in place."""

from __future__ import annotations

import itertools
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from store.base import Record
from store.mirror import Mirror

BLOCKS = [("clip", 24), ("cnn", 40), ("hsv", 8)]
NAMES = [name for name, _ in BLOCKS]

Filled = tuple[Mirror, list[Record]]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_records(rng: np.random.Generator, n: int, rev: int = 1) -> list[Record]:
    return [
        Record(
            id=str(uuid.UUID(int=int(rng.integers(1 << 62)))),
            payload={"rev": rev},
            vectors={name: rng.normal(size=dim).astype(np.float32) for name, dim in BLOCKS},
        )
        for _ in range(n)
    ]


def make_query(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.normal(size=dim) for name, dim in BLOCKS}


def expected(
    records: list[Record], query: dict[str, np.ndarray], weights: dict[str, float]
) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Reference ranking in float64: ids best first, fused scores, per-model cosines."""
    cos = {
        name: np.stack([unit(r.vectors[name].astype(np.float64)) for r in records])
        @ unit(query[name])
        for name in NAMES
    }
    total = sum(weights.values())
    fused = sum(w * cos[name] for name, w in weights.items()) / total
    order = np.argsort(-fused)
    return [records[i].id for i in order], fused[order], {n: c[order] for n, c in cos.items()}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    return Mirror(tmp_path / "mirror", BLOCKS)


@pytest.fixture
def filled(mirror: Mirror, rng: np.random.Generator) -> Filled:
    records = make_records(rng, 300)
    mirror.upsert(records)
    return mirror, records


@pytest.mark.parametrize("name", NAMES)
def test_one_model_weight_gives_that_models_cosine(
    filled: Filled, rng: np.random.Generator, name: str
) -> None:
    mirror, records = filled
    query = make_query(rng)
    hits = mirror.search(query, {name: 1.0}, k=10)
    ids, scores, _ = expected(records, query, {name: 1.0})
    assert [h.id for h in hits] == ids[:10]
    np.testing.assert_allclose([h.score for h in hits], scores[:10], atol=1e-5)
    assert all(h.scores[name] == h.score for h in hits)


def test_mixed_weights_give_weighted_mean_of_cosines(
    filled: Filled, rng: np.random.Generator
) -> None:
    mirror, records = filled
    weights = {"clip": 2.0, "cnn": 1.0, "hsv": 0.5}
    for _ in range(5):
        query = make_query(rng)
        hits = mirror.search(query, weights, k=15)
        ids, scores, cos = expected(records, query, weights)
        assert [h.id for h in hits] == ids[:15]
        np.testing.assert_allclose([h.score for h in hits], scores[:15], atol=1e-5)
        for name in NAMES:
            np.testing.assert_allclose([h.scores[name] for h in hits], cos[name][:15], atol=1e-5)
        for h in hits:
            mean = sum(w * h.scores[n] for n, w in weights.items()) / sum(weights.values())
            assert h.score == pytest.approx(mean, abs=2e-6)


def test_weights_are_relative_and_unqueried_models_weigh_nothing(
    filled: Filled, rng: np.random.Generator
) -> None:
    mirror, _ = filled
    query = make_query(rng)
    base = mirror.search(query, {"clip": 1.0, "cnn": 3.0}, k=10)
    assert mirror.search(query, {"clip": 10.0, "cnn": 30.0}, k=10) == base
    without_hsv = {n: v for n, v in query.items() if n != "hsv"}
    assert mirror.search(without_hsv, {"clip": 1.0, "cnn": 3.0, "hsv": 5.0}, k=10) == [
        type(h)(h.id, h.score, {n: s for n, s in h.scores.items() if n != "hsv"}) for h in base
    ]


def test_query_vectors_need_not_be_normalised(filled: Filled, rng: np.random.Generator) -> None:
    mirror, _ = filled
    query = make_query(rng)
    scaled = {n: 7.5 * v for n, v in query.items()}
    weights = {"clip": 1.0, "hsv": 1.0}
    assert mirror.search(scaled, weights, k=5) == mirror.search(query, weights, k=5)


@pytest.mark.parametrize(
    "weights",
    [{}, {"clip": 0.0, "cnn": 0.0}, {"nope": 0.0}],
)
def test_all_zero_weights_are_an_error(
    filled: Filled, rng: np.random.Generator, weights: dict[str, float]
) -> None:
    mirror, _ = filled
    with pytest.raises(ValueError, match="weight"):
        mirror.search(make_query(rng), weights, k=5)


def test_bad_queries_are_errors(filled: Filled, rng: np.random.Generator) -> None:
    mirror, _ = filled
    query = make_query(rng)
    with pytest.raises(ValueError, match="weight"):
        mirror.search(query, {"clip": -1.0, "cnn": 2.0}, k=5)
    with pytest.raises(ValueError, match="unknown models"):
        mirror.search(query, {"vit-h": 1.0}, k=5)
    extra = {**query, "vit-h": np.ones(3)}  # a model the mirror lacks, with no weight
    assert mirror.search(extra, {"clip": 1.0, "vit-h": 0}, k=5) == mirror.search(
        query, {"clip": 1.0}, k=5
    )
    with pytest.raises(ValueError, match="values, want 24"):
        mirror.search({**query, "clip": np.ones(5)}, {"clip": 1.0}, k=5)
    with pytest.raises(ValueError, match="weight"):  # weight only on a model not queried
        mirror.search({"clip": query["clip"]}, {"cnn": 1.0}, k=5)


def test_allowed_restricts_results(filled: Filled, rng: np.random.Generator) -> None:
    mirror, records = filled
    chosen = [records[i] for i in rng.choice(len(records), 12, replace=False)]
    query = make_query(rng)
    weights = {"clip": 1.0, "cnn": 1.0}
    allowed = {r.id for r in chosen} | {"not-a-point"}
    hits = mirror.search(query, weights, k=5, allowed=allowed)
    assert [h.id for h in hits] == expected(chosen, query, weights)[0][:5]
    assert len(mirror.search(query, weights, k=50, allowed=allowed)) == 12
    assert mirror.search(query, weights, k=5, allowed=[]) == []
    assert mirror.search(query, weights, k=5, allowed=["not-a-point"]) == []


def test_k_edges(mirror: Mirror, filled: Filled, rng: np.random.Generator) -> None:
    query = make_query(rng)
    assert len(mirror.search(query, {"clip": 1.0}, k=1000)) == 300
    assert mirror.search(query, {"clip": 1.0}, k=0) == []
    assert Mirror(mirror.path, BLOCKS).search(query, {"clip": 1.0}, k=3) == []


def test_missing_vector_is_a_zero_block(mirror: Mirror, rng: np.random.Generator) -> None:
    full, partial = make_records(rng, 2)
    del partial.vectors["hsv"]
    mirror.upsert([full, partial])
    assert set(mirror.vector(partial.id)) == {"clip", "cnn"}
    query = {"clip": partial.vectors["clip"], "hsv": rng.normal(size=8)}
    hit = next(h for h in mirror.search(query, {"clip": 1, "hsv": 1}, k=2) if h.id == partial.id)
    assert hit.scores == {"clip": pytest.approx(1.0, abs=1e-6)}
    assert hit.score == pytest.approx(0.5, abs=1e-6)  # (1 * 1 + 1 * 0) / 2


def test_upsert_replaces_and_keeps_the_last_of_duplicates(
    filled: Filled, rng: np.random.Generator
) -> None:
    mirror, records = filled
    target = records[0]
    first, second = make_records(rng, 2, rev=9)
    first.id = second.id = target.id
    assert mirror.upsert([first, second]) == 1
    assert len(mirror) == 300
    stored = mirror.vector(target.id)
    for name in NAMES:
        np.testing.assert_allclose(stored[name], unit(second.vectors[name]), atol=1e-6)
    top = mirror.search(second.vectors, {"cnn": 1.0}, k=1)[0]
    assert top.id == target.id and top.score == pytest.approx(1.0, abs=1e-6)
    assert mirror.revs([target.id]) == {target.id: 9}


def test_a_rev_only_update_keeps_the_row_in_place(
    filled: Filled, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror, records = filled
    (changed,) = make_records(rng, 1, rev=8)
    changed.id = records[1].id
    same = Record(records[0].id, {"rev": 8}, records[0].vectors)
    slots_before = dict(mirror._state.fid_of)  # white-box: which slot holds each point
    rows = mirror._state.rows
    written: list[int] = []
    put = rows.put
    monkeypatch.setattr(rows, "put", lambda slots, new: (written.extend(slots), put(slots, new)))
    mirror.upsert([same, changed])
    assert mirror.revs([same.id, changed.id]) == {same.id: 8, changed.id: 8}
    assert mirror._state.fid_of == slots_before  # a changed vector is rewritten in place
    assert written == [slots_before[changed.id]]  # and only the changed one is rewritten
    np.testing.assert_allclose(mirror.vector(changed.id)["cnn"], unit(changed.vectors["cnn"]))
    assert len(mirror) == 300
    top = mirror.search(records[0].vectors, {"clip": 1.0, "cnn": 1.0}, k=1)[0]
    assert top.id == same.id and top.score == pytest.approx(1.0, abs=1e-6)


def test_remove(filled: Filled, rng: np.random.Generator) -> None:
    mirror, records = filled
    gone = {r.id for r in records[:50]}
    assert mirror.remove([*gone, "unknown"]) == 50
    assert mirror.remove(gone) == 0
    assert len(mirror) == 250
    assert mirror.ids() == {r.id for r in records[50:]}
    with pytest.raises(KeyError):
        mirror.vector(records[0].id)
    hits = mirror.search(records[0].vectors, {"clip": 1.0}, k=250)
    assert gone.isdisjoint(h.id for h in hits) and len(hits) == 250


def test_watermark_follows_revs(mirror: Mirror, rng: np.random.Generator) -> None:
    assert mirror.watermark == 0
    mirror.upsert(make_records(rng, 3, rev=50) + make_records(rng, 2, rev=70))
    assert mirror.watermark == 70
    mirror.upsert(make_records(rng, 1, rev=40))
    assert mirror.watermark == 70
    mirror.upsert(make_records(rng, 1, rev=99), advance_watermark=False)
    assert mirror.watermark == 70
    mirror.advance_watermark(80)
    assert mirror.watermark == 80


def test_bad_records_leave_the_mirror_unchanged(filled: Filled, rng: np.random.Generator) -> None:
    mirror, records = filled
    (bad,) = make_records(rng, 1)
    bad.vectors["cnn"] = np.ones(3)
    with pytest.raises(ValueError, match="'cnn' vector has 3 values"):
        mirror.upsert([records[0], bad])
    bad.vectors["cnn"] = np.full(40, np.nan)
    with pytest.raises(ValueError, match="non-finite"):
        mirror.upsert([bad])
    assert len(mirror) == 300 and bad.id not in mirror.ids()


def test_blocks_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Mirror(tmp_path, [])
    with pytest.raises(ValueError):
        Mirror(tmp_path, [("a", 4), ("a", 4)])
    with pytest.raises(ValueError):
        Mirror(tmp_path, [("a", 0)])


def test_readers_run_during_writes(mirror: Mirror, rng: np.random.Generator) -> None:
    """Searches from many threads while one thread upserts, replaces and removes.

    A fixed set of points is never written; a restricted search over them must give the
    same answer every time, whatever the writer is doing to the rest of the index."""
    stable = make_records(rng, 40)
    mirror.upsert(stable)
    query = make_query(rng)
    weights = {"clip": 1.0, "cnn": 2.0, "hsv": 1.0}
    allowed = {r.id for r in stable}
    reference = mirror.search(query, weights, k=10, allowed=allowed)
    churn = [make_records(rng, 50, rev=i) for i in range(2, 40)]
    errors: list[BaseException] = []
    done = threading.Event()
    searches = [0]

    def reader() -> None:
        try:
            while not done.is_set():
                assert mirror.search(query, weights, k=10, allowed=allowed) == reference
                hits = mirror.search(query, weights, k=20)
                assert len({h.id for h in hits}) == len(hits) == 20
                assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
                searches[0] += 1
        except BaseException as exc:
            errors.append(exc)
            done.set()

    def writer() -> None:
        try:
            previous: list[Record] = []
            for batch in churn:
                mirror.upsert(batch)
                mirror.upsert(previous[:25])  # replace half of the last batch
                mirror.remove(r.id for r in previous[25:])
                previous = batch
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert searches[0] > 0
    assert len(mirror) == 40 + 37 * 25 + 50
    assert mirror.watermark == 39


def test_from_rows_uses_the_rows_in_place(tmp_path: Path) -> None:
    blocks = [("clip", 48), ("cnn", 96), ("hsv", 16)]
    rng = np.random.default_rng(7)
    rows = rng.normal(size=(50, 160)).astype(np.float32)
    for sl in (slice(0, 48), slice(48, 144), slice(144, 160)):
        rows[:, sl] /= np.linalg.norm(rows[:, sl], axis=1, keepdims=True)
    np.save(tmp_path / "rows.npy", rows)
    mapped = np.load(tmp_path / "rows.npy", mmap_mode="c")
    ids = [str(uuid.UUID(int=i)) for i in range(50)]
    mirror = Mirror.from_rows(tmp_path / "m", blocks, mapped, ids, np.arange(50), watermark=9)
    assert len(mirror) == 50 and mirror.watermark == 9 and mirror.revs()[ids[3]] == 3
    np.testing.assert_array_equal(mirror.vector(ids[3])["cnn"], rows[3, 48:144])
    hit = mirror.search({"clip": rows[7, :48]}, {"clip": 1.0}, k=1)[0]
    assert hit.id == ids[7] and hit.score == pytest.approx(1.0, abs=1e-6)
    assert mirror.memory() == {"vectors": 50 * 160 * 4, "codes": 0, "points": 50}
