"""Run the same tests against every store backend.

Fixtures (names are stable; other congruence tests build on them):

``backend``
    The backend under test: ``"edge"`` (EdgeStore on a temporary directory), ``"sharded"``
    (ShardedStore: three Edge shards on a temporary directory), ``"memory"``
    (ServerStore over ``QdrantClient(":memory:")``) or ``"server"`` (ServerStore against
    the real server at ``$QDRANT_URL``, with ``$QDRANT_API_KEY`` if set; skipped unless
    ``QDRANT_URL`` is set).

``make_store(*, migrate=True, vectors=VECTORS) -> Store``
    Opens a store on this test's storage, applying the migrations first unless
    ``migrate=False``. Every call opens the *same* storage again, like a process restart:
    Edge reopens the directory (close the previous store first, as only one may hold it),
    the server backends open a new ServerStore on the same server and collection. Each test
    gets fresh storage; every store opened is closed, and real-server collections are
    dropped, at teardown.

``store``
    ``make_store()``: a fresh, migrated store.

``VECTORS`` are the named vectors the fixtures create: small, so tests stay fast.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from migrations import apply_pending
from store import Store, StoreConfig, open_store

VECTORS: dict[str, int] = {"clip-vit-b-32": 16, "hsv-8x8x8": 8}
BACKENDS = ["edge", "sharded", "memory", "server"]

MakeStore = Callable[..., Store]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "server" and not os.environ.get("QDRANT_URL"):
        pytest.skip("set QDRANT_URL to run the congruence tests against a real Qdrant server")
    return str(request.param)


@pytest.fixture
def make_store(backend: str, tmp_path: Path) -> Iterator[MakeStore]:
    collection = f"lookalike_test_{uuid.uuid4().hex[:12]}"
    url = os.environ.get("QDRANT_URL") if backend == "server" else None
    api_key = os.environ.get("QDRANT_API_KEY") if backend == "server" else None
    shards = 3 if backend == "sharded" else 1
    config = StoreConfig(
        data_dir=tmp_path, url=url, api_key=api_key, collection=collection, edge_shards=shards
    )
    client: Any = None
    if backend == "memory":
        from qdrant_client import QdrantClient

        client = QdrantClient(":memory:")
    opened: list[Store] = []

    def make(*, migrate: bool = True, vectors: dict[str, int] | None = None) -> Store:
        store = open_store(config, client=client)
        opened.append(store)
        if migrate:
            apply_pending(store, VECTORS if vectors is None else vectors)
        return store

    yield make
    for store in opened:
        store.close()
    if backend == "server":
        _drop_collections(str(url), api_key, prefix=collection)


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


def _drop_collections(url: str, api_key: str | None, *, prefix: str) -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(url=url, api_key=api_key, timeout=5)
    try:
        for found in client.get_collections().collections:
            if found.name.startswith(prefix):
                client.delete_collection(found.name)
    finally:
        client.close()
