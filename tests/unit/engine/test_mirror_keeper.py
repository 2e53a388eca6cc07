"""The serving process picks up writes made by another process through the store."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient

from engine.catalog import EMBEDDING_META
from engine.composition import Lookalike
from engine.mirror_keeper import MirrorFollower
from engine.settings import Settings
from store import open_store
from store.base import Record
from store.config import StoreConfig

MODELS = [{"role": "hsv", "name": "hsv-8x8x8", "dim": 512, "weights": "none", "fallback": False}]


def _vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(512).astype("float32")


def test_writes_and_deletes_from_elsewhere_reach_the_mirror(tmp_path: Path) -> None:
    client = QdrantClient(":memory:")
    settings = Settings(data_dir=tmp_path / "data", library_dir=tmp_path / "lib")
    cfg = StoreConfig(data_dir=tmp_path / "data", url="http://shared", collection="c")
    engine = Lookalike(settings, store=open_store(cfg, client=client))
    engine.resources.open_store()  # creates the collection (migrations)
    other = open_store(cfg, client=client)  # a second writer on the same server
    try:
        engine.store.set_meta(
            EMBEDDING_META, {"config_key": engine.catalog.config_key(), "models": MODELS}
        )
        ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(3)]
        other.upsert(
            [
                Record(id=i, payload={"paths": [i]}, vectors={"hsv-8x8x8": _vec(n)})
                for n, i in enumerate(ids)
            ]
        )
        syncer = MirrorFollower(engine.mirror_keeper.sync, interval_s=0.05, full_every_s=0.2)
        syncer.start()
        _wait(lambda: engine.mirror.ids() == set(ids))
        other.delete([ids[0]])
        _wait(lambda: engine.mirror.ids() == set(ids[1:]))  # only the full diff sees this
        syncer.stop()
        assert syncer.runs > 0
    finally:
        engine.close()


def _wait(cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "mirror did not catch up in time"
        time.sleep(0.05)
