"""ServerStore specifics: how failures of the server reach the user, client ownership."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from httpx import Headers
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

from store import Record, StoreConfig, StoreError, StoreUnavailable
from store.server import ServerStore


class _RefusingClient:
    """Stands in for a server that answers every request with one HTTP status."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.init_options: dict[str, Any] = {"location": None, "path": None}

    def collection_exists(self, name: str) -> bool:
        raise UnexpectedResponse(self.status, "refused", b"{}", Headers())

    def close(self) -> None:
        pass


def test_an_unreachable_server_fails_fast_naming_the_url_and_the_setting(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        ServerStore(StoreConfig(data_dir=tmp_path, url="http://127.0.0.1:1"))
    assert "http://127.0.0.1:1" in str(raised.value)
    assert "LOOKALIKE_QDRANT_URL" in str(raised.value)
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("status", "error", "setting"),
    [
        (401, StoreUnavailable, "LOOKALIKE_QDRANT_API_KEY"),
        (403, StoreUnavailable, "LOOKALIKE_QDRANT_API_KEY"),
        (503, StoreUnavailable, "LOOKALIKE_QDRANT_URL"),
        (400, StoreError, "400"),
    ],
)
def test_server_answers_map_to_store_errors(
    tmp_path: Path, status: int, error: type[Exception], setting: str
) -> None:
    config = StoreConfig(data_dir=tmp_path, url="http://qdrant.invalid:6333")
    with pytest.raises(error, match=setting) as raised:
        ServerStore(config, client=_RefusingClient(status))  # type: ignore[arg-type]
    assert status == 400 or "qdrant.invalid" in str(raised.value)


def test_a_server_store_needs_a_url_or_a_client(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="LOOKALIKE_QDRANT_URL"):
        ServerStore(StoreConfig(data_dir=tmp_path))


def test_a_client_handed_in_stays_open_and_meta_lives_beside_the_images(tmp_path: Path) -> None:
    client = QdrantClient(":memory:")
    config = StoreConfig(data_dir=tmp_path, collection="imgs")
    with ServerStore(config, client=client) as store:
        store.create({"v": 4})
        store.upsert([Record(str(uuid.uuid4()), {}, {"v": np.ones(4)})])
        store.set_meta("k", {"a": 1})
    names = {c.name for c in client.get_collections().collections}
    assert names == {"imgs", "imgs__meta"}
    assert client.count("imgs").count == 1
    with ServerStore(config, client=client) as again:
        assert again.get_meta("k") == {"a": 1}


def test_a_vector_added_by_another_process_is_picked_up(tmp_path: Path) -> None:
    client = QdrantClient(":memory:")
    config = StoreConfig(data_dir=tmp_path)
    with ServerStore(config, client=client) as mine, ServerStore(config, client=client) as other:
        mine.create({"v": 4})
        mine.vector_dims()
        other.create({"v": 4, "w": 2})  # e.g. the CLI adding a model while the server runs
        mine.upsert([Record(str(uuid.uuid4()), {}, {"w": np.ones(2)})])
        assert mine.count() == 1
