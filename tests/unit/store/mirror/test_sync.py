"""Catch-up, full comparison and rebuild against a real store (qdrant-client's in-process
mode). Writes made straight through the client stand in for another process whose commit
lands late or whose clock runs fast."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from store import Record, Store, StoreConfig, open_store
from store.mirror import Mirror
from store.mirror.sync import OVERLAP_US

MODELS = {"clip": 16, "cnn": 24}
BLOCKS = list(MODELS.items())
COLLECTION = "mirror_sync_test"


def random_records(rng: np.random.Generator, n: int) -> list[Record]:
    return [
        Record(
            str(uuid.uuid4()),
            {},
            {name: rng.standard_normal(dim).astype(np.float32) for name, dim in MODELS.items()},
        )
        for _ in range(n)
    ]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(9)


@pytest.fixture
def client() -> Iterator[QdrantClient]:
    client = QdrantClient(":memory:")
    yield client
    client.close()


@pytest.fixture
def store(tmp_path: Path, client: QdrantClient) -> Iterator[Store]:
    store = open_store(StoreConfig(data_dir=tmp_path, collection=COLLECTION), client=client)
    store.create(MODELS)
    yield store
    store.close()


@pytest.fixture
def mirror(tmp_path: Path) -> Mirror:
    return Mirror(tmp_path / "mirror", BLOCKS)


def write_behind_the_store(client: QdrantClient, rng: np.random.Generator, rev: int) -> str:
    """A point committed by someone else with a rev of their own choosing."""
    pid = str(uuid.uuid4())
    vectors = {name: rng.standard_normal(dim).tolist() for name, dim in MODELS.items()}
    client.upsert(COLLECTION, [qm.PointStruct(id=pid, vector=vectors, payload={"rev": rev})])
    return pid


def test_catch_up_applies_each_change_once(
    store: Store, mirror: Mirror, rng: np.random.Generator
) -> None:
    rev = store.upsert(random_records(rng, 50))
    assert mirror.lag(store) == 50
    assert mirror.catch_up(store) == 50
    assert mirror.watermark == rev and mirror.lag(store) == 0
    assert mirror.catch_up(store) == 0  # the overlap is re-read, and skipped

    some = sorted(mirror.ids())[:5]
    rev = store.set_payload(some, {"tags": ["x"]})
    assert mirror.lag(store) == 5
    assert mirror.catch_up(store) == 5
    assert mirror.revs(some) == dict.fromkeys(some, rev)


def test_a_late_commit_inside_the_overlap_is_caught(
    store: Store, client: QdrantClient, mirror: Mirror, rng: np.random.Generator
) -> None:
    store.upsert(random_records(rng, 10))
    mirror.catch_up(store)
    late = write_behind_the_store(client, rng, mirror.watermark - OVERLAP_US // 5)
    assert mirror.lag(store) == 0  # its rev is below the watermark...
    assert mirror.catch_up(store) == 1  # ...but within the overlap
    assert late in mirror.ids()

    very_late = write_behind_the_store(client, rng, mirror.watermark - 2 * OVERLAP_US)
    assert mirror.catch_up(store) == 0
    assert mirror.full_diff(store) == (0, 1)  # the periodic comparison finds it
    assert very_late in mirror.ids()


def test_a_fast_clock_cannot_push_the_watermark_past_now(
    store: Store, client: QdrantClient, mirror: Mirror, rng: np.random.Generator
) -> None:
    hour = 3_600 * 1_000_000
    write_behind_the_store(client, rng, time.time_ns() // 1000 + hour)
    assert mirror.catch_up(store) == 1
    assert mirror.watermark <= time.time_ns() // 1000
    (normal,) = random_records(rng, 1)
    store.upsert([normal])
    assert mirror.catch_up(store) == 1  # with the watermark an hour ahead this is missed
    assert normal.id in mirror.ids()


def test_full_diff_removes_fetches_and_refreshes(
    store: Store, mirror: Mirror, rng: np.random.Generator
) -> None:
    records = random_records(rng, 40)
    store.upsert(records)
    mirror.catch_up(store)
    store.delete([r.id for r in records[:6]])
    mirror.remove([r.id for r in records[6:10]])
    stale = random_records(rng, 3)
    for old, new in zip(records[10:13], stale, strict=True):
        new.id, new.payload = old.id, {"rev": 1}
    mirror.upsert(stale, advance_watermark=False)

    assert mirror.full_diff(store) == (6, 4 + 3)
    assert mirror.ids() == {r.id for r in records[6:]}
    for rec in store.retrieve([r.id for r in records[10:13]], with_vectors=True):
        np.testing.assert_allclose(mirror.vector(rec.id)["cnn"], rec.vectors["cnn"], atol=1e-6)
    assert mirror.full_diff(store) == (0, 0)


def test_rebuild_replaces_everything(
    store: Store, mirror: Mirror, rng: np.random.Generator
) -> None:
    records = random_records(rng, 40)
    rev = store.upsert(records)
    mirror.upsert(random_records(rng, 7))  # nothing the store has
    query = {"clip": records[3].vectors["clip"]}
    assert mirror.rebuild(store) == 40
    assert mirror.ids() == {r.id for r in records}
    assert mirror.watermark == rev
    assert mirror.search(query, {"clip": 1.0}, k=1)[0].id == records[3].id


def test_catch_up_from_a_snapshot_fetches_only_changes(
    store: Store, mirror: Mirror, rng: np.random.Generator
) -> None:
    records = random_records(rng, 30)
    store.upsert(records)
    mirror.catch_up(store)
    mirror.save()
    store.upsert(random_records(rng, 4))
    store.set_payload([records[0].id], {"tags": ["y"]})
    loaded = Mirror.load(mirror.path, BLOCKS)
    assert loaded is not None and loaded.lag(store) == 5
    assert loaded.catch_up(store) == 5
    assert len(loaded) == 34


def test_models_the_store_lacks_stay_empty(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    store.upsert(random_records(rng, 5))
    mirror = Mirror(tmp_path / "m", [*BLOCKS, ("hsv", 8)])
    assert mirror.catch_up(store) == 5
    assert all(set(mirror.vector(i)) == set(MODELS) for i in mirror.ids())


def test_a_model_of_another_dimension_is_refused(
    store: Store, tmp_path: Path, rng: np.random.Generator
) -> None:
    store.upsert(random_records(rng, 5))
    mirror = Mirror(tmp_path / "m", [("clip", 32)])
    with pytest.raises(ValueError, match="'clip' has dim 16 in the store, 32 here"):
        mirror.catch_up(store)
