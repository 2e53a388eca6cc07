"""Migrations: ordered, recorded in the store, safe to run again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

import migrations
from migrations import MIGRATIONS, apply_pending, pending
from store import Store, StoreConfig, StoreError, open_store
from store.edge import EdgeStore
from store.schema import INDEXED_FIELDS

MODELS = {"clip-vit-b-32": 512, "resnet50": 2048, "effnet-lite0": 1280, "hsv-8x8x8": 512}
ALL = [m.name for m in MIGRATIONS]


@pytest.fixture(params=["edge", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    client = QdrantClient(":memory:") if request.param == "memory" else None
    opened = open_store(StoreConfig(data_dir=tmp_path), client=client)
    yield opened
    opened.close()


def test_a_fresh_store_has_everything_pending_and_gets_the_collection(store: Store) -> None:
    assert ALL[0] == "0001_create_collection"
    assert pending(store) == ALL
    assert apply_pending(store, MODELS) == ALL
    assert pending(store) == []
    assert store.vector_dims() == MODELS
    recorded = store.get_meta(migrations.META_KEY)
    assert list(recorded) == ALL and all("T" in when for when in recorded.values())


def test_applying_again_is_a_no_op(store: Store) -> None:
    apply_pending(store, MODELS)
    recorded = store.get_meta(migrations.META_KEY)
    assert apply_pending(store, MODELS) == []
    assert store.get_meta(migrations.META_KEY) == recorded


def test_a_crash_before_recording_just_runs_the_migration_again(store: Store) -> None:
    store.create(MODELS)  # applied, but the process died before it was recorded
    assert pending(store) == ALL
    assert apply_pending(store, MODELS) == ALL
    assert store.vector_dims() == MODELS


def test_a_collection_deleted_by_hand_is_created_again(tmp_path: Path) -> None:
    client = QdrantClient(":memory:")
    with open_store(StoreConfig(data_dir=tmp_path, collection="imgs"), client=client) as store:
        apply_pending(store, MODELS)
        client.delete_collection("imgs")
        assert pending(store) == ALL
        assert apply_pending(store, MODELS) == ALL and store.exists()


def test_a_store_migrated_by_a_newer_version_is_refused(store: Store) -> None:
    apply_pending(store, MODELS)
    store.set_meta(migrations.META_KEY, {**store.get_meta(migrations.META_KEY), "0099_x": "t"})
    with pytest.raises(StoreError, match="newer Lookalike"):
        pending(store)


def test_the_collection_needs_vectors(store: Store) -> None:
    with pytest.raises(ValueError):
        apply_pending(store, {})


def test_edge_collection_gets_the_payload_indexes(tmp_path: Path) -> None:
    store = EdgeStore(StoreConfig(data_dir=tmp_path))
    try:
        apply_pending(store, MODELS)
        assert store._shard is not None
        schema = store._shard.info().payload_schema
    finally:
        store.close()
    kinds = {name: str(info.data_type).rsplit(".", 1)[-1].lower() for name, info in schema.items()}
    assert kinds == INDEXED_FIELDS


def test_a_store_from_before_0002_gets_the_paths_index(tmp_path: Path) -> None:
    store = EdgeStore(StoreConfig(data_dir=tmp_path))
    try:
        older = {k: v for k, v in INDEXED_FIELDS.items() if k != "paths"}
        with pytest.MonkeyPatch.context() as mp:  # what 0001 created before 0002 existed
            mp.setattr("store.edge.INDEXED_FIELDS", older)
            migrations.m0001_create_collection.apply(store, MODELS)
        store.set_meta(migrations.META_KEY, {"0001_create_collection": "2026-01-01T00:00:00"})
        assert store._shard is not None
        assert "paths" not in store._shard.info().payload_schema
        assert apply_pending(store, MODELS) == ["0002_index_paths", "0003_vector_layout"]
        assert "paths" in store._shard.info().payload_schema
    finally:
        store.close()
