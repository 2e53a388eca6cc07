"""One behaviour, every backend: EdgeStore, ServerStore over ":memory:", a real server."""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from store import Filter, Record, Store, StoreError, StoreUnavailable
from store import base as store_base

CLIP, HSV = "clip-vit-b-32", "hsv-8x8x8"


def _ids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v)).astype(np.float32)


def _random_records(rng: np.random.Generator, n: int, dims: dict[str, int]) -> list[Record]:
    folders = ["art/2021", "art/2022", "photos", "scans"]
    tags = ["logo", "blue", "draft", "final", "print"]
    formats = ["JPEG", "PNG", "WEBP"]
    records = []
    for pid in _ids(n):
        payload = {
            "folder": list(rng.choice(folders, size=int(rng.integers(1, 3)), replace=False)),
            "tags": list(rng.choice(tags, size=int(rng.integers(0, 4)), replace=False)),
            "format": str(rng.choice(formats)),
            "width": int(rng.integers(100, 4000)),
            "height": int(rng.integers(100, 4000)),
            "paths": sorted(
                f"lib/{name}.jpg"
                for name in rng.choice(40, size=int(rng.integers(1, 3)), replace=False)
            ),
        }
        vectors = {name: rng.standard_normal(d).astype(np.float32) for name, d in dims.items()}
        records.append(Record(pid, payload, vectors))
    return records


def matches(flt: Filter, point_id: str, payload: dict[str, Any]) -> bool:
    """The filter semantics, written out independently of store.filters."""
    tags = set(payload.get("tags", []))
    checks = [
        not flt.folders or bool(set(flt.folders) & set(payload.get("folder", []))),
        not flt.tags_any or bool(set(flt.tags_any) & tags),
        set(flt.tags_all) <= tags,
        not flt.formats or payload.get("format") in flt.formats,
        flt.min_width is None or payload["width"] >= flt.min_width,
        flt.max_width is None or payload["width"] <= flt.max_width,
        flt.min_height is None or payload["height"] >= flt.min_height,
        flt.max_height is None or payload["height"] <= flt.max_height,
        flt.rev_gt is None or payload["rev"] > flt.rev_gt,
        flt.ids is None or point_id in flt.ids,
        not flt.paths or bool(set(flt.paths) & set(payload.get("paths", []))),
    ]
    return all(checks)


# --- writes and reads -----------------------------------------------------------------
def test_upsert_then_retrieve_round_trips_vectors_and_payload(store: Store) -> None:
    rng = np.random.default_rng(1)
    dims = store.vector_dims()
    payload: dict[str, Any] = {
        "paths": ["/lib/a.png", "/lib/copy/a.png"],
        "folder": ["lib", "lib/copy"],
        "tags": [],
        "palette": [[255, 0, 0], [0, 0, 255]],
        "exif": {"camera": "X100", "iso": 200, "flash": False, "lens": None},
        "filename": "a é.png",
        "mtime": 1732460000.25,
    }
    [a, b] = _ids(2)
    va = {name: rng.standard_normal(d).astype(np.float32) for name, d in dims.items()}
    rev = store.upsert([Record(a, payload, va), Record(b, {"tags": ["x"]}, {CLIP: va[CLIP]})])

    missing = str(uuid.uuid4())
    got = store.retrieve([b, missing, a], with_vectors=True)
    assert [r.id for r in got] == [b, a]  # request order, missing left out
    rec_b, rec_a = got
    assert rec_a.payload == {**payload, "rev": rev}
    assert set(rec_a.vectors) == set(dims)
    for name, v in va.items():
        assert rec_a.vectors[name].dtype == np.float32
        np.testing.assert_allclose(rec_a.vectors[name], _unit(v), atol=1e-6)  # cosine: unit
    assert set(rec_b.vectors) == {CLIP}
    assert store.retrieve([a])[0].vectors == {}
    assert set(store.retrieve([a], with_vectors=[HSV])[0].vectors) == {HSV}
    assert store.retrieve([]) == []


def test_upsert_replaces_the_whole_point(store: Store) -> None:
    [a] = _ids(1)
    store.upsert([Record(a, {"tags": ["old"], "width": 5}, {CLIP: np.ones(16), HSV: np.ones(8)})])
    rev = store.upsert([Record(a, {"tags": ["new"]}, {CLIP: np.arange(16.0) + 1})])
    [rec] = store.retrieve([a], with_vectors=True)
    assert rec.payload == {"tags": ["new"], "rev": rev}
    assert set(rec.vectors) == {CLIP}
    assert store.count() == 1


def test_set_payload_merges_keys_and_skips_missing_ids(store: Store) -> None:
    [a, b] = _ids(2)
    v = {CLIP: np.ones(16), HSV: np.ones(8)}
    first = store.upsert([Record(a, {"tags": ["t"], "width": 10}, v), Record(b, {"width": 1}, v)])
    rev = store.set_payload([a, str(uuid.uuid4())], {"tags": ["t", "u"], "note": {"k": 1}})
    assert rev > first
    [rec_a, rec_b] = store.retrieve([a, b], with_vectors=True)
    assert rec_a.payload == {"tags": ["t", "u"], "width": 10, "note": {"k": 1}, "rev": rev}
    assert rec_b.payload == {"width": 1, "rev": first}
    assert set(rec_a.vectors) == {CLIP, HSV}
    assert store.count() == 2  # the missing id was not created


def test_update_vectors_keeps_the_other_vectors_and_payload(store: Store) -> None:
    rng = np.random.default_rng(2)
    [a, b] = _ids(2)
    old = {CLIP: rng.standard_normal(16), HSV: rng.standard_normal(8)}
    first = store.upsert([Record(a, {"tags": ["keep"]}, old), Record(b, {}, {CLIP: old[CLIP]})])
    new_hsv = rng.standard_normal(8)
    rev = store.update_vectors(
        [
            Record(a, vectors={HSV: new_hsv}),
            Record(b, vectors={HSV: new_hsv}),
            Record(str(uuid.uuid4()), vectors={HSV: new_hsv}),
        ]
    )
    assert rev > first
    [rec_a, rec_b] = store.retrieve([a, b], with_vectors=True)
    np.testing.assert_allclose(rec_a.vectors[CLIP], _unit(old[CLIP]), atol=1e-6)
    np.testing.assert_allclose(rec_a.vectors[HSV], _unit(new_hsv), atol=1e-6)
    assert rec_a.payload == {"tags": ["keep"], "rev": rev}
    assert set(rec_b.vectors) == {CLIP, HSV}  # a vector the point lacked is added
    assert store.count() == 2
    assert store.count(Filter(rev_gt=first)) == 2  # the mirror sees both as changed


def test_delete_removes_points_and_ignores_missing(store: Store) -> None:
    ids = _ids(3)
    store.upsert([Record(i, {}, {CLIP: np.ones(16)}) for i in ids])
    store.delete([ids[0], str(uuid.uuid4())])
    store.delete([])
    assert store.count() == 2
    assert store.retrieve(ids) == store.retrieve(ids[1:])
    assert ids[0] not in {h.id for h in store.search(CLIP, np.ones(16), 10)}


def test_invalid_writes_are_refused_whole(store: Store) -> None:
    [a, b] = _ids(2)
    good = Record(a, {}, {CLIP: np.ones(16)})
    with pytest.raises(StoreError, match="resnet50"):
        store.upsert([good, Record(b, {}, {"resnet50": np.ones(4)})])
    with pytest.raises(StoreError, match="shape"):
        store.upsert([good, Record(b, {}, {CLIP: np.ones(3)})])
    with pytest.raises(ValueError, match="UUID"):
        store.upsert([good, Record("image-1", {}, {CLIP: np.ones(16)})])
    with pytest.raises(ValueError, match="finite"):
        store.upsert([good, Record(b, {}, {CLIP: np.full(16, np.nan)})])
    with pytest.raises(StoreError, match="nope"):
        store.search("nope", np.ones(16), 3)
    with pytest.raises(StoreError, match="shape"):
        store.update_vectors([Record(a, vectors={HSV: np.ones(16)})])
    assert store.count() == 0  # nothing of a refused batch landed


# --- filters ----------------------------------------------------------------------------
FILTERS = [
    Filter(),
    Filter(folders=["photos"]),
    Filter(folders=["art/2021", "scans"]),
    Filter(tags_any=["logo", "blue"]),
    Filter(tags_all=["logo", "blue"]),
    Filter(tags_all=["draft"]),
    Filter(formats=["PNG"]),
    Filter(formats=["JPEG", "WEBP"]),
    Filter(min_width=1000),
    Filter(max_width=1000),
    Filter(min_width=500, max_width=2500, min_height=500, max_height=2500),
    Filter(folders=["photos", "scans"], tags_any=["final"], formats=["JPEG", "PNG"]),
    Filter(folders=["nowhere"]),
    Filter(ids=[]),
]


def test_count_and_scroll_agree_with_the_reference_for_each_filter(store: Store) -> None:
    records = _random_records(np.random.default_rng(3), 80, store.vector_dims())
    store.upsert(records)
    payloads = {r.id: r.payload for r in records}
    probe_width = records[0].payload["width"]  # an exact boundary, inclusive both ways
    some_ids = [r.id for r in records[::7]] + [str(uuid.uuid4())]
    extra = [
        Filter(min_width=probe_width, max_width=probe_width),
        Filter(ids=some_ids),
        Filter(ids=some_ids, tags_any=["logo"]),
        Filter(paths=["lib/3.jpg"]),
        Filter(paths=["lib/3.jpg", "lib/17.jpg", "lib/not-there.jpg"]),
        Filter(paths=["lib/5.jpg"], tags_any=["logo"]),
    ]
    for flt in FILTERS + extra:
        expected = sorted(i for i, p in payloads.items() if matches(flt, i, p))
        assert store.count(flt) == len(expected), flt
        assert [r.id for r in store.scroll(flt, batch=16)] == expected, flt
    assert store.count(Filter(min_width=probe_width, max_width=probe_width)) >= 1


def test_rev_filter_is_strictly_greater(store: Store) -> None:
    ids = _ids(3)
    revs = [store.upsert([Record(i, {}, {CLIP: np.ones(16)})]) for i in ids]
    assert store.count(Filter(rev_gt=revs[0])) == 2
    assert store.count(Filter(rev_gt=revs[2])) == 0
    assert [r.id for r in store.scroll(Filter(rev_gt=revs[1] - 1))] == sorted(ids[1:])


# --- scroll and search ----------------------------------------------------------------
def test_scroll_pages_through_everything_in_id_order(store: Store) -> None:
    records = _random_records(np.random.default_rng(4), 300, store.vector_dims())
    rev = store.upsert(records)
    got = list(store.scroll(batch=64, with_vectors=True))
    assert [r.id for r in got] == sorted(r.id for r in records)
    by_id = {r.id: r for r in records}
    for rec in got[::37]:
        assert rec.payload == {**by_id[rec.id].payload, "rev": rev}
        assert rec.vectors[CLIP].dtype == np.float32
        np.testing.assert_allclose(rec.vectors[CLIP], _unit(by_id[rec.id].vectors[CLIP]), atol=1e-6)
    slim = list(store.scroll(with_payload=["rev"], with_vectors=[HSV], batch=100))
    assert all(r.payload == {"rev": rev} and set(r.vectors) == {HSV} for r in slim)
    assert all(r.payload == {} for r in store.scroll(with_payload=False, batch=299))
    assert len(list(store.scroll(batch=300))) == 300


def test_exact_search_matches_numpy_brute_force(store: Store) -> None:
    rng = np.random.default_rng(5)
    records = _random_records(rng, 200, store.vector_dims())
    store.upsert(records)
    matrix = np.stack([_unit(r.vectors[CLIP]) for r in records])
    ids = np.array([r.id for r in records])
    flt = Filter(formats=["PNG", "WEBP"])
    allowed = np.array([matches(flt, r.id, r.payload) for r in records])
    for _ in range(4):
        query = rng.standard_normal(16).astype(np.float32)
        scores = matrix @ _unit(query)
        for mask, f in ((np.ones(len(ids), bool), None), (allowed, flt)):
            order = np.argsort(-np.where(mask, scores, -np.inf))[:10]
            hits = store.search(CLIP, query * 3.0, 10, f, exact=True)  # scale must not matter
            assert [h.id for h in hits] == list(ids[order])
            np.testing.assert_allclose([h.score for h in hits], scores[order], atol=1e-4)
    assert hits[0].payload["format"] in {"PNG", "WEBP"}
    assert "rev" in hits[0].payload


def test_search_with_k_beyond_count_returns_everything(store: Store) -> None:
    records = _random_records(np.random.default_rng(6), 7, store.vector_dims())
    store.upsert(records)
    hits = store.search(HSV, np.ones(8), 50)
    assert sorted(h.id for h in hits) == sorted(r.id for r in records)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert store.search(HSV, np.ones(8), 0) == []
    assert store.search(HSV, np.ones(8), 5, Filter(ids=[])) == []


# --- revisions, meta, schema ----------------------------------------------------------
def test_every_write_returns_a_growing_rev_stamped_on_the_points(store: Store) -> None:
    [a, b] = _ids(2)
    v = {CLIP: np.ones(16)}
    revs = [
        store.upsert([Record(a, {}, v), Record(b, {}, v)]),
        store.set_payload([a], {"x": 1}),
        store.update_vectors([Record(b, vectors={HSV: np.ones(8)})]),
        store.upsert([Record(a, {}, v)]),
    ]
    assert revs == sorted(set(revs))
    assert {r.id: r.payload["rev"] for r in store.retrieve([a, b])} == {a: revs[3], b: revs[2]}


def test_a_reader_following_revs_misses_no_concurrent_write(store: Store) -> None:
    # Reading rev > watermark and then raising the watermark to the newest rev seen only
    # works if revs commit in the order they are drawn, across writer threads too. Each
    # pass here is one page: a scroll of several pages is no snapshot, and a write landing
    # behind its cursor is missed while later ones ahead are seen (8-point pages missed
    # some of these 60 writes), which is why the mirror caps and overlaps its watermark.
    errors: list[BaseException] = []
    written: set[str] = set()

    def writer() -> None:
        try:
            for _ in range(15):
                pid = str(uuid.uuid4())
                store.upsert([Record(pid, {}, {CLIP: np.ones(16)})])
                written.add(pid)
        except BaseException as exc:
            errors.append(exc)

    seen: set[str] = set()
    watermark = 0

    def catch_up() -> None:
        nonlocal watermark
        for rec in store.scroll(Filter(rev_gt=watermark), with_payload=["rev"], batch=100):
            seen.add(rec.id)
            watermark = max(watermark, rec.payload["rev"])

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        catch_up()
    for t in threads:
        t.join()
    catch_up()
    assert errors == []
    assert len(written) == 60 and seen == written and store.count() == 60


def test_meta_records_stay_out_of_image_reads(store: Store) -> None:
    assert store.get_meta("absent") is None
    store.upsert([Record(str(uuid.uuid4()), {"tags": ["x"]}, {CLIP: np.ones(16)})])
    value = {"models": {"clip": "sha256:abc"}, "list": [1, 2.5, None, True], "s": "é"}
    store.set_meta("fingerprints", value)
    store.set_meta("counter", 1)
    store.set_meta("counter", 2)
    assert store.get_meta("fingerprints") == value
    assert store.get_meta("counter") == 2
    assert store.count() == 1
    assert len(list(store.scroll())) == 1
    assert len(store.search(CLIP, np.ones(16), 10)) == 1
    assert store.count(Filter(rev_gt=0)) == 1


def test_create_is_idempotent_and_adds_new_model_vectors(store: Store) -> None:
    before = store.vector_dims()
    [a] = _ids(1)
    store.upsert([Record(a, {}, {CLIP: np.ones(16)})])
    store.create(before)
    assert store.vector_dims() == before and store.count() == 1
    store.create({**before, "resnet50": 4})
    assert store.vector_dims() == {**before, "resnet50": 4}
    store.update_vectors([Record(a, vectors={"resnet50": np.arange(4.0) + 1})])
    assert store.search("resnet50", np.arange(4.0) + 1, 1)[0].id == a
    with pytest.raises(StoreError, match=CLIP):
        store.create({CLIP: 32})


def test_fresh_store_has_no_collection_until_created(make_store: Any) -> None:
    blank = make_store(migrate=False)
    assert not blank.exists()
    assert blank.vector_dims() == {}
    assert blank.get_meta("migrations") is None
    blank.create({CLIP: 16})
    assert blank.exists() and blank.count() == 0 and blank.search(CLIP, np.ones(16), 3) == []


# --- restart ----------------------------------------------------------------------------
def test_data_meta_and_revs_survive_a_restart(make_store: Any, monkeypatch: Any) -> None:
    first = make_store()
    records = _random_records(np.random.default_rng(7), 20, first.vector_dims())
    first.upsert(records)
    last = first.set_payload([records[0].id], {"tags": ["later"]})
    first.set_meta("fingerprints", {"clip": "abc"})
    first.close()

    # A wall clock that went backwards: revs must still grow past what is stored.
    monkeypatch.setattr(store_base, "time", SimpleNamespace(time_ns=lambda: 0))
    second = make_store()
    assert second.count() == 20
    assert second.get_meta("fingerprints") == {"clip": "abc"}
    [rec] = second.retrieve([records[0].id], with_vectors=True)
    assert rec.payload["tags"] == ["later"] and rec.payload["rev"] == last
    np.testing.assert_allclose(rec.vectors[CLIP], _unit(records[0].vectors[CLIP]), atol=1e-6)
    assert second.upsert([Record(str(uuid.uuid4()), {}, {CLIP: np.ones(16)})]) > last


# --- backend-specific guarantees --------------------------------------------------------
def test_second_edge_store_on_the_same_directory_is_refused(tmp_path: Any) -> None:
    from store import StoreConfig, open_store

    config = StoreConfig(data_dir=tmp_path)
    with open_store(config) as held:
        assert held.backend == "edge"
        with pytest.raises(StoreUnavailable, match=str(tmp_path)):
            open_store(config)
    open_store(config).close()  # released on close


def test_unreachable_server_is_reported_fast_and_names_the_setting(tmp_path: Any) -> None:
    from store import StoreConfig, open_store

    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="LOOKALIKE_QDRANT_URL") as raised:
        open_store(StoreConfig(data_dir=tmp_path, url="http://127.0.0.1:1"))
    assert "http://127.0.0.1:1" in str(raised.value)
    assert time.monotonic() - started < 3
