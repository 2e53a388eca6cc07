"""EdgeStore specifics: the directory lock, durability without flush, lifecycle."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe

from store import Record, StoreConfig, StoreError, StoreUnavailable
from store import edge as edge_module
from store.edge import EdgeStore

REPO = Path(__file__).resolve().parents[3]

# Opens a store, writes one point and a meta record, reports its rev, then waits to be
# killed: nothing is flushed after the write (the flush interval is far away).
CHILD = """
import sys, time
from pathlib import Path
import numpy as np
from store import Record, StoreConfig
from store.edge import EdgeStore
store = EdgeStore(StoreConfig(data_dir=Path(sys.argv[1])))
store.create({"v": 4})
rev = store.upsert([Record(sys.argv[2], {"tags": ["kept"]}, {"v": np.arange(4.0) + 1})])
store.set_meta("fingerprint", {"rev": rev})
print(rev, flush=True)
time.sleep(120)
"""


def _open(path: Path) -> EdgeStore:
    return EdgeStore(StoreConfig(data_dir=path))


def test_writes_survive_kill_9_and_the_lock_names_the_holder(tmp_path: Path) -> None:
    point = str(uuid.uuid4())
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), point],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        rev = int(child.stdout.readline())
        with pytest.raises(StoreUnavailable) as refused:
            _open(tmp_path)
        message = str(refused.value)
        assert f"the data directory {tmp_path} is in use by another Lookalike process" in message
        assert f"(pid {child.pid})" in message and "LOOKALIKE_QDRANT_URL" in message
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        if child.stdout is not None:
            child.stdout.close()

    with _open(tmp_path) as store:
        [rec] = store.retrieve([point], with_vectors=True)
        assert rec.payload == {"tags": ["kept"], "rev": rev}
        np.testing.assert_allclose(rec.vectors["v"] * np.sqrt(30), np.arange(4.0) + 1, atol=1e-5)
        assert store.get_meta("fingerprint") == {"rev": rev}


def test_a_second_store_in_the_same_process_is_refused(tmp_path: Path) -> None:
    with _open(tmp_path), pytest.raises(StoreUnavailable, match="already open in this process"):
        _open(tmp_path)


def test_close_releases_the_directory_and_later_calls_fail_clearly(tmp_path: Path) -> None:
    store = _open(tmp_path)
    store.create({"v": 4})
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"):
        store.count()
    with pytest.raises(StoreError, match="closed"):
        store.set_meta("k", 1)
    _open(tmp_path).close()


def test_vectors_are_memory_mapped_not_loaded_into_ram(tmp_path: Path) -> None:
    # The FAISS mirror serves searches, so Edge keeps its copy of the vectors on disk:
    # opening a 100k-point shard took 1.3 s with in-RAM vectors and 0.3 s mapped.
    with _open(tmp_path) as store:
        store.create({"v": 4, "w": 8})
        store.upsert([Record(str(uuid.uuid4()), {}, {"v": np.ones(4), "w": np.ones(8)})])
    segments = list((tmp_path / "qdrant-edge" / "shard" / "segments").glob("*/segment.json"))
    assert segments
    for segment in segments:
        storage = {
            name: spec["storage_type"]
            for name, spec in json.loads(segment.read_text())["config"]["vector_data"].items()
        }
        assert storage == {"v": "ChunkedMmap", "w": "ChunkedMmap"}
    with _open(tmp_path) as store:  # and it reads back
        assert store.count() == 1


def test_before_create_reads_and_writes_point_at_the_migrations(tmp_path: Path) -> None:
    with _open(tmp_path) as store:
        assert not store.exists()
        with pytest.raises(StoreError, match="migrations"):
            store.count()
        with pytest.raises(StoreError, match="migrations"):
            store.upsert([Record(str(uuid.uuid4()), {}, {"v": np.ones(4)})])
        store.set_meta("k", [1, 2])  # meta works before the collection exists
    with _open(tmp_path) as store:
        assert store.get_meta("k") == [1, 2] and not store.exists()


def test_meta_is_replaced_whole_as_readable_json(tmp_path: Path) -> None:
    with _open(tmp_path) as store:
        store.set_meta("k", [1, 2])
        store.set_meta("title", "Café")
    folder = tmp_path / "qdrant-edge"
    text = (folder / "meta.json").read_text("utf-8")
    assert json.loads(text) == {"k": [1, 2], "title": "Café"} and "Café" in text
    assert not [p.name for p in folder.iterdir() if "meta" in p.name and p.name != "meta.json"]


def test_revs_resume_above_the_stored_maximum_without_a_rev_index(tmp_path: Path) -> None:
    # A shard made outside the migrations has no range index on rev, so no order_by.
    shard_dir = tmp_path / "qdrant-edge" / "shard"
    config = qe.EdgeConfig(vectors={"v": qe.EdgeVectorParams(size=4, distance=qe.Distance.Cosine)})
    shard = qe.EdgeShard.create(str(shard_dir), config)
    future = 10**17
    points = [
        qe.Point(str(uuid.uuid4()), {"v": [1.0, 0, 0, 0]}, {"rev": future - i}) for i in range(3)
    ]
    shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.close()
    with _open(tmp_path) as store:
        assert store.vector_dims() == {"v": 4}
        assert store.set_payload([], {}) > future


class _FlushCounter:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        self.inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize(("interval", "expected"), [(0.0, 3), (3600.0, 0)])
def test_writes_flush_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, interval: float, expected: int
) -> None:
    monkeypatch.setattr(edge_module, "FLUSH_INTERVAL_S", interval)
    with _open(tmp_path) as store:
        store.create({"v": 4})
        counter = _FlushCounter(store._shard)
        store._shard = counter  # type: ignore[assignment]
        pid = str(uuid.uuid4())
        store.upsert([Record(pid, {}, {"v": np.ones(4)})])
        store.set_payload([pid], {"a": 1})
        store.delete([pid])
        assert counter.flushes == expected
        store._shard = counter.inner
