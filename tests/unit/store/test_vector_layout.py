"""The vector layout (int8 quantization, on-disk originals, HNSW, shards): set at creation,
brought to existing collections by migration 0003, honoured by approximate search."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient
from qdrant_client import models as qm

import migrations
from migrations import apply_pending
from store import Record, StoreConfig, StoreConfigError, VectorQuery, open_store
from store.base import CONFIG_UNAPPLIED_META
from store.edge import EdgeStore
from store.edge_dir import read_json
from store.edge_params import search_params as edge_search_params
from store.server import ServerStore
from store.server_params import search_params as server_search_params
from store.server_params import shard_layout, vector_diff, vector_params

VECTORS = {"clip-vit-b-32": 16, "hsv-8x8x8": 8}
INT8_RAM = {"scalar": {"type": "int8", "always_ram": True}}


def _edge_layout(data_dir: Path) -> dict[str, Any]:
    return read_json(data_dir / "qdrant-edge" / "shard" / "edge_config.json")["vectors"]


def test_an_edge_shard_is_created_with_the_configured_layout(tmp_path: Path) -> None:
    with open_store(StoreConfig(data_dir=tmp_path)) as store:
        apply_pending(store, VECTORS)
        store.create({**VECTORS, "resnet50": 32})  # a model added later gets it too
    layout = _edge_layout(tmp_path)
    assert set(layout) == {*VECTORS, "resnet50"}
    for params in layout.values():
        assert params["quantization_config"] == INT8_RAM and params["memory"] == "cold"
        assert (params["hnsw_config"]["m"], params["hnsw_config"]["ef_construct"]) == (32, 256)
    other = StoreConfig(
        data_dir=tmp_path / "b", quantization="off", on_disk=False, hnsw_m=8, hnsw_ef_construct=40
    )
    with open_store(other) as store:
        apply_pending(store, VECTORS)
    for params in _edge_layout(tmp_path / "b").values():
        assert params.get("quantization_config") is None and params["memory"] == "cached"
        assert (params["hnsw_config"]["m"], params["hnsw_config"]["ef_construct"]) == (8, 40)


def _old_edge_shard(data_dir: Path) -> list[Record]:
    """A shard as Lookalike made it before 0003 (plain vectors, memory-mapped), with points,
    recorded as migrated up to 0002."""
    config = qe.EdgeConfig(
        vectors={
            n: qe.EdgeVectorParams(size=d, distance=qe.Distance.Cosine, memory=qe.Memory.Cold)
            for n, d in VECTORS.items()
        }
    )
    (data_dir / "qdrant-edge").mkdir(parents=True)
    qe.EdgeShard.create(str(data_dir / "qdrant-edge" / "shard"), config).close()
    rng = np.random.default_rng(3)
    records = [
        Record(str(uuid.uuid4()), {"n": i}, {n: rng.random(d) + 0.1 for n, d in VECTORS.items()})
        for i in range(50)
    ]
    with EdgeStore(StoreConfig(data_dir=data_dir)) as store:
        store.create(VECTORS)
        store.upsert(records)
        done = {"0001_create_collection": "2026-01-01T00:00:00", "0002_index_paths": "x"}
        store.set_meta(migrations.META_KEY, done)
    return records


def test_migration_0003_brings_an_old_edge_shard_to_the_layout_once(tmp_path: Path) -> None:
    records = _old_edge_shard(tmp_path)
    assert "quantization_config" not in _edge_layout(tmp_path)["hsv-8x8x8"]
    with open_store(StoreConfig(data_dir=tmp_path)) as store:
        assert apply_pending(store, VECTORS) == ["0003_vector_layout"]
        assert store.reconfigure() == {}  # idempotent: nothing left to change
        assert store.get_meta(CONFIG_UNAPPLIED_META) is None
        assert store.count() == 50
        store.optimize()
        hits = store.search("hsv-8x8x8", records[7].vectors["hsv-8x8x8"], 1)
        assert hits[0].id == records[7].id and hits[0].payload["n"] == 7
    assert all(p["quantization_config"] == INT8_RAM for p in _edge_layout(tmp_path).values())


def test_a_later_change_of_the_settings_is_applied_at_the_next_start(tmp_path: Path) -> None:
    with open_store(StoreConfig(data_dir=tmp_path)) as store:
        apply_pending(store, VECTORS)
    with open_store(StoreConfig(data_dir=tmp_path, hnsw_m=24, hnsw_ef_construct=64)) as store:
        assert apply_pending(store, VECTORS) == []
    for params in _edge_layout(tmp_path).values():
        assert (params["hnsw_config"]["m"], params["hnsw_config"]["ef_construct"]) == (24, 64)


def test_edge_turns_quantization_off_and_originals_into_ram_in_place(tmp_path: Path) -> None:
    with open_store(StoreConfig(data_dir=tmp_path)) as store:
        apply_pending(store, VECTORS)
    changed = StoreConfig(data_dir=tmp_path, quantization="off", on_disk=False)
    with open_store(changed) as store:
        assert store.reconfigure() == {n: ["quantization", "on_disk"] for n in VECTORS}
        assert store.reconfigure() == {}
    for params in _edge_layout(tmp_path).values():
        assert params.get("quantization_config") is None and params["memory"] == "cached"


class _RefusingEdge:
    """qdrant_edge whose shards refuse any new configuration on load (Edge 0.9 accepts
    every change Lookalike asks for; a later version might not)."""

    def __init__(self) -> None:
        self.EdgeShard = self

    def load(self, path: str, config: Any = None) -> qe.EdgeShard:
        if config is not None:
            raise Exception("incompatible configuration")  # how the bindings fail
        return qe.EdgeShard.load(path)

    def __getattr__(self, attr: str) -> Any:
        return getattr(qe, attr)


def test_what_edge_refuses_to_change_is_left_logged_and_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_store(StoreConfig(data_dir=tmp_path)) as store:
        apply_pending(store, VECTORS)
    with open_store(StoreConfig(data_dir=tmp_path, hnsw_m=48)) as store:
        monkeypatch.setattr("store.edge_params.qe", _RefusingEdge())
        assert store.reconfigure() == {}
        detail = store.get_meta(CONFIG_UNAPPLIED_META)
        assert "LOOKALIKE_HNSW_*" in detail and "'hsv-8x8x8': hnsw" in detail
        assert detail in caplog.text
        assert store.count() == 0 and store.vector_dims() == VECTORS  # still serving
        monkeypatch.undo()
        assert store.reconfigure() == {n: ["hnsw"] for n in VECTORS}
        assert store.get_meta(CONFIG_UNAPPLIED_META) is None  # applied at last: cleared


def test_approximate_search_through_hnsw_and_int8_keeps_recall(tmp_path: Path) -> None:
    # A low threshold puts 5k small points through the graph and the quantized copies.
    config = StoreConfig(data_dir=tmp_path, indexing_threshold_kb=16)
    dims = {"clip-vit-b-32": 64, "hsv-8x8x8": 32}
    rng = np.random.default_rng(8)
    with open_store(config) as store:
        apply_pending(store, dims)
        make = {"clip-vit-b-32": rng.standard_normal, "hsv-8x8x8": rng.random}
        records = [
            Record(str(uuid.uuid4()), {}, {n: make[n](d) for n, d in dims.items()})
            for _ in range(5000)
        ]
        for start in range(0, 5000, 1000):
            store.upsert(records[start : start + 1000])
        assert store.optimize()
        assert isinstance(store, EdgeStore) and store._shard is not None
        assert store._shard.info().indexed_vectors_count == 2 * 5000
        for name, d in dims.items():
            queries = [make[name](d) for _ in range(100)]
            exact = store.search_batch([VectorQuery(name, q, 10) for q in queries])
            approx = store.search_batch([VectorQuery(name, q, 10, exact=False) for q in queries])
            found, errors = 0, [0.0]
            for a, e in zip(approx, exact, strict=True):
                truth = {h.id: h.score for h in e}
                found += sum(h.id in truth for h in a)
                errors += [abs(h.score - truth[h.id]) for h in a if h.id in truth]
            assert found / 1000 >= 0.99, name
            assert max(errors) < 1e-6  # rescored with the originals: exact scores


@pytest.mark.parametrize("quantization", ["int8", "off"])
def test_approximate_searches_keep_the_number_of_candidates_asked_for(quantization: str) -> None:
    both = (edge_search_params, server_search_params)
    unset = StoreConfig(data_dir=Path("."), quantization=quantization)  # type: ignore[arg-type]
    for search_params in both:
        assert search_params(False, unset).hnsw_ef == 256  # nobody chose: Lookalike's floor
        assert search_params(False, unset, 900).hnsw_ef == 900  # the searcher chose
        assert search_params(True, unset, 900).exact is True
        assert not search_params(True, unset, 900).hnsw_ef  # exact: no graph walked
    pinned = StoreConfig(data_dir=Path("."), quantization=quantization, hnsw_ef=777)  # type: ignore[arg-type]
    for search_params in both:
        assert search_params(False, pinned, 900).hnsw_ef == 777  # LOOKALIKE_HNSW_EF wins


# --- server -----------------------------------------------------------------------------
class _Cluster:
    """qdrant-client's in-process mode posing as a three-node cluster: what the store asks
    of the server is recorded, and forwarded where the stand-in can answer."""

    def __init__(self) -> None:
        self.inner = QdrantClient(":memory:")
        self.init_options: dict[str, Any] = {"location": None, "path": None}
        self.created: dict[str, Any] = {}
        self.updates: list[dict[str, qm.VectorParamsDiff]] = []

    def cluster_status(self) -> qm.ClusterStatusOneOf1:
        peers = {str(i): None for i in range(3)}
        return qm.ClusterStatusOneOf1.model_construct(status="enabled", peers=peers)

    def create_collection(self, name: str, **kwargs: Any) -> bool:
        self.created = kwargs
        return self.inner.create_collection(name, **kwargs)

    def update_collection(self, name: str, vectors_config: Any) -> bool:
        self.updates.append(vectors_config)
        return True

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
def test_a_server_collection_is_made_for_the_cluster(tmp_path: Path) -> None:
    cluster = _Cluster()
    store = ServerStore(StoreConfig(data_dir=tmp_path), client=cluster)  # type: ignore[arg-type]
    store.create(VECTORS)
    kwargs = cluster.created
    assert (kwargs["shard_number"], kwargs["replication_factor"]) == (6, 2)
    assert kwargs["write_consistency_factor"] == 1
    # What the in-process stand-in keeps of it: the per-vector layout.
    kept = cluster.inner.get_collection("lookalike").config.params.vectors
    assert isinstance(kept, dict)
    for params in kept.values():
        assert params.on_disk is True and params.hnsw_config is not None
        assert params.hnsw_config.m == 32 and params.hnsw_config.ef_construct == 256
        assert isinstance(params.quantization_config, qm.ScalarQuantization)
        assert params.quantization_config.scalar.always_ram is True
    assert store.reconfigure() == {} and cluster.updates == []  # made right: nothing to do
    store.create({**VECTORS, "resnet50": 32})  # a vector added later gets the layout
    assert list(cluster.updates[-1]) == ["resnet50"]


def test_migration_0003_sends_one_update_with_the_per_vector_differences(tmp_path: Path) -> None:
    cluster = _Cluster()
    plain = {n: qm.VectorParams(size=d, distance=qm.Distance.COSINE) for n, d in VECTORS.items()}
    cluster.inner.create_collection("lookalike", vectors_config=plain)  # as before 0003
    store = ServerStore(StoreConfig(data_dir=tmp_path), client=cluster)  # type: ignore[arg-type]
    changed = store.reconfigure()
    # Qdrant's collection-wide HNSW default is 16 / 100; Lookalike's is 32 / 256 (recall at 1M).
    assert changed == {n: ["quantization", "on_disk", "hnsw"] for n in VECTORS}
    [update] = cluster.updates
    assert update["clip-vit-b-32"].on_disk is True
    assert isinstance(update["clip-vit-b-32"].quantization_config, qm.ScalarQuantization)
    assert update["clip-vit-b-32"].hnsw_config.m == 32


def test_a_graph_inherited_from_the_collection_is_kept_when_it_matches(tmp_path: Path) -> None:
    cluster = _Cluster()
    plain = {n: qm.VectorParams(size=d, distance=qm.Distance.COSINE) for n, d in VECTORS.items()}
    cluster.inner.create_collection("lookalike", vectors_config=plain)
    config = StoreConfig(data_dir=tmp_path, hnsw_m=16, hnsw_ef_construct=100)  # Qdrant's own
    store = ServerStore(config, client=cluster)  # type: ignore[arg-type]
    assert store.reconfigure() == {n: ["quantization", "on_disk"] for n in VECTORS}


def test_vector_diffs_are_empty_once_applied_and_name_what_differs() -> None:
    config = StoreConfig(data_dir=Path("."))
    made = vector_params(8, config)
    assert vector_diff(made, None, config) == (None, [])
    off = StoreConfig(data_dir=Path("."), quantization="off", hnsw_m=32, hnsw_ef_construct=200)
    diff, what = vector_diff(made, None, off)
    assert what == ["quantization", "hnsw"] and diff is not None
    assert diff.quantization_config == qm.Disabled.DISABLED and diff.hnsw_config.m == 32
    # A vector without overrides inherits the collection's settings.
    plain = qm.VectorParams(size=8, distance=qm.Distance.COSINE, on_disk=True)
    collection = qm.CollectionConfig.model_construct(
        hnsw_config=qm.HnswConfig(m=32, ef_construct=256, full_scan_threshold=10000),
        quantization_config=made.quantization_config,
    )
    assert vector_diff(plain, collection, config) == (None, [])


def test_shards_and_replicas_default_by_cluster_size() -> None:
    config = StoreConfig(data_dir=Path("."))
    assert shard_layout(1, config) == (1, 1)
    assert shard_layout(2, config) == (4, 2)
    assert shard_layout(5, config) == (10, 2)
    assert shard_layout(5, StoreConfig(data_dir=Path("."), shards=12, replication=3)) == (12, 3)
    with pytest.raises(StoreConfigError, match="LOOKALIKE_QDRANT_WRITE_CONSISTENCY"):
        shard_layout(1, StoreConfig(data_dir=Path("."), write_consistency=2))
