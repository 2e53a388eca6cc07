"""engine.read_policy: where each read goes while the store is up, down, and back."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

from engine.errors import NotFound, StoreUnavailableError
from store import Record, StoreConfig, open_store
from store.base import Filter
from tests.unit.engine.conftest import Outage, picture, save


def _index(outage: Outage, n: int = 4) -> list[str]:
    lk = outage.lookalike
    for seed in range(n):
        save(picture(seed), lk.settings.library_dir / f"p{seed}.png")
    lk.indexing.index()
    lk.store.set_payload([r.id for r in lk.store.scroll()][:1], {"tags": ["gold"]})
    lk.mirror_keeper.sync()
    return sorted(r.id for r in lk.store.scroll())


def _query(outage: Outage) -> dict[str, np.ndarray]:
    lk = outage.lookalike
    first = next(iter(lk.store.scroll(with_vectors=True)))
    return first.vectors


def test_up_reads_filters_and_payloads_from_the_store(server_lookalike: Outage) -> None:
    ids = _index(server_lookalike)
    reader = server_lookalike.lookalike.reader
    found = reader.search(_query(server_lookalike), {"hsv-8x8x8": 1.0}, 10, None)
    assert not found.degraded and sorted(h.id for h in found.hits) == ids
    assert set(found.payloads) == set(ids)
    gold = reader.search(
        _query(server_lookalike), {"hsv-8x8x8": 1.0}, 10, Filter(tags_any=["gold"])
    )
    assert len(gold.hits) == 1 and gold.payloads[gold.hits[0].id]["tags"] == ["gold"]


def test_down_answers_from_the_mirror_and_its_cache(server_lookalike: Outage) -> None:
    ids = _index(server_lookalike)
    reader = server_lookalike.lookalike.reader
    query = _query(server_lookalike)
    server_lookalike.go_down()
    found = reader.search(query, {"hsv-8x8x8": 1.0}, 10, Filter(tags_any=["gold"]))
    assert found.degraded and len(found.hits) == 1  # the filter ran on the cached payloads
    assert found.payloads[found.hits[0].id]["tags"] == ["gold"]
    assert reader.health.down
    assert reader.image(ids[0])["id"] == ids[0]  # shown from the cache
    assert set(reader.vectors(ids[0])) == {"hsv-8x8x8"}  # from the mirror
    with pytest.raises(NotFound):
        reader.vectors(str(uuid.uuid4()))
    with pytest.raises(StoreUnavailableError):
        reader.stored_image(ids[0])  # a change must reach the store
    with pytest.raises(StoreUnavailableError):
        reader.require_store()


def test_the_first_answer_after_an_outage_resyncs_the_mirror(
    server_lookalike: Outage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("engine.health.RETRY_S", 0.0)  # retry at once, not in 2 s
    _index(server_lookalike)
    lk = server_lookalike.lookalike
    server_lookalike.go_down()
    assert not lk.reader.check_store()
    server_lookalike.come_back()
    # Another process writes while we were cut off.
    other = open_store(
        StoreConfig(data_dir=lk.settings.data_dir, url="http://shared", collection="c"),
        client=server_lookalike.store._client,
    )
    new_id = str(uuid.uuid4())
    vector = np.random.default_rng(9).random(512).astype(np.float32)
    other.upsert([Record(id=new_id, payload={"paths": ["x.png"]}, vectors={"hsv-8x8x8": vector})])
    assert lk.reader.check_store()
    deadline = time.monotonic() + 10
    while new_id not in lk.mirror.ids():
        assert time.monotonic() < deadline, "the mirror was not resynchronised"
        time.sleep(0.05)
