"""Store outage with the server backend: the real qdrant-client against a server that goes away.

While Qdrant is unreachable, searches are answered from the FAISS mirror and its payload
cache and say ``degraded: true`` (so does /ready); every write fails fast with 503 and a
sentence, touching neither the store nor the library folder. When Qdrant is back, writes
work again and the mirror catches up with what other processes wrote meanwhile.

Limits of what runs here: no Qdrant server can run on this machine, and qdrant-client's
in-process stand-in (``":memory:"``) has no network side. So the default test runs the app's
``ServerStore`` on the in-process client while "up", and points the same store at a real
HTTP client aimed at a TCP stub that accepts and drops every connection while "down"
(``FlakyTcp``); recovery swaps the in-process client back. The network failure path is
therefore real (qdrant-client -> httpx -> a dropped TCP connection), the recovery one is a
swap. With ``QDRANT_URL`` set, the same scenario runs against that real server through
``FlakyTcp`` as a forwarding proxy that is cut and restored.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from qdrant_client import QdrantClient

from engine.errors import STORE_DOWN
from engine.health import RETRY_S
from store.config import StoreConfig
from store.server import ServerStore
from tests.hostile.flaky_tcp import FlakyTcp
from tests.integration.conftest import assert_error, image_bytes

FAIL_FAST_S = 2.0  # a refused write answers well within this


@pytest.fixture
def stub() -> Iterator[FlakyTcp]:
    tcp = FlakyTcp(None)  # nothing behind it: every connection is accepted and dropped
    yield tcp
    tcp.close()


def test_outage_against_a_vanishing_server(
    make_app_client: Any, monkeypatch: pytest.MonkeyPatch, stub: FlakyTcp
) -> None:
    memory = QdrantClient(":memory:")
    # The seam: the app builds its qdrant-client for LOOKALIKE_QDRANT_URL; give it the
    # in-process one while the "server" is up.
    monkeypatch.setattr("store.server.QdrantClient", lambda **_: memory)
    client = make_app_client(qdrant_url=stub.url, qdrant_api_key="qdrant-key-never-logged")
    client.wait_ready()
    store = client.app.state.services.lookalike.store
    assert store.backend == "server"
    over_http = QdrantClient(url=stub.url, timeout=2, check_compatibility=False)

    def go_down() -> None:
        store._client, store._local = over_http, False

    def come_back() -> None:
        store._client, store._local = memory, True

    def other_process() -> ServerStore:
        return ServerStore(StoreConfig(data_dir=client.settings.data_dir), client=memory)

    outage_scenario(client, go_down, come_back, other_process)
    assert stub.dropped > 0, "the outage never reached the network"


@pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="set QDRANT_URL to a Qdrant server")
def test_outage_against_a_real_server(make_app_client: Any) -> None:
    url = urlparse(os.environ["QDRANT_URL"])
    proxy = FlakyTcp((url.hostname or "127.0.0.1", url.port or 6333))
    collection = f"outage_{uuid.uuid4().hex[:8]}"
    api_key = os.environ.get("QDRANT_API_KEY")
    try:
        client = make_app_client(
            qdrant_url=proxy.url, qdrant_api_key=api_key, collection=collection
        )
        client.wait_ready()

        def other_process() -> ServerStore:
            config = StoreConfig(
                data_dir=client.settings.data_dir,
                url=os.environ["QDRANT_URL"],
                api_key=api_key,
                collection=collection,
            )
            return ServerStore(config)

        outage_scenario(client, proxy.down, proxy.up, other_process)
    finally:
        proxy.close()
        QdrantClient(url=os.environ["QDRANT_URL"], api_key=api_key).delete_collection(collection)


def _search(client: Any, key: dict[str, str], **body: Any) -> Any:
    if "image" in body:
        files = {"image": ("q.png", body.pop("image"), "image/png")}
        return client.post("/api/v1/search", files=files, data=body, headers=key)
    return client.post("/api/v1/search", json=body, headers=key)


def outage_scenario(
    client: Any,
    go_down: Callable[[], None],
    come_back: Callable[[], None],
    other_process: Callable[[], ServerStore],
) -> None:
    key = client.api_key("write")
    engine = client.app.state.services.lookalike
    library = Path(client.settings.library_dir)
    files = [("files", (f"o{i}.png", image_bytes(100 + i), "image/png")) for i in range(4)]
    ids = [
        i["id"]
        for i in client.post(
            "/api/v1/images", files=files[:1], data={"tags": "red"}, headers=key
        ).json()["images"]
    ]
    ids += [
        i["id"]
        for i in client.post(
            "/api/v1/images", files=files[1:], data={"tags": "blue"}, headers=key
        ).json()["images"]
    ]
    up = _search(client, key, image=image_bytes(101), k="2")
    assert up.status_code == 200 and up.json()["degraded"] is False
    assert "degraded" not in client.get("/ready").json()

    go_down()
    # --- reads: answered from the mirror, marked degraded --------------------------------
    found = _search(client, key, image=image_bytes(101), k="3")
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["degraded"] is True
    top = body["hits"][0]
    assert top["id"] == ids[1] and top["filename"] == "o1.png" and top["tags"] == ["blue"]
    assert (top["width"], top["height"]) == (96, 72) and top["paths"] == ["uploads/o1.png"]
    by_id = _search(client, key, image_id=ids[2], k=2).json()
    assert by_id["degraded"] is True and by_id["hits"][0]["id"] == ids[2]
    red = _search(client, key, image_id=ids[1], filters={"tags_any": ["red"]}).json()
    assert [h["id"] for h in red["hits"]] == [ids[0]]  # filtered by the cached payloads
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["degraded"] is True and ready.json()["error"] == "store_unavailable"
    assert client.get(f"/api/v1/images/{ids[0]}", headers=key).json()["tags"] == ["red"]
    assert client.get(f"/api/v1/images/{ids[0]}/thumbnail", headers=key).status_code == 200

    # --- writes: 503 at once, nothing touched ------------------------------------------------
    listing = sorted(p.relative_to(library) for p in library.rglob("*"))
    writes = {
        "upload": lambda: client.post(
            "/api/v1/images",
            files={"files": ("new.png", image_bytes(200), "image/png")},
            headers=key,
        ),
        "tag": lambda: client.patch(f"/api/v1/images/{ids[0]}", json={"tags": ["x"]}, headers=key),
        "delete": lambda: client.delete(f"/api/v1/images/{ids[0]}", headers=key),
        "reindex": lambda: client.post("/api/v1/reindex", json={}, headers=key),
        "reconcile": lambda: client.post("/api/v1/reconcile", headers=key),
    }
    for name, send in writes.items():
        started = time.monotonic()
        response = send()
        elapsed = time.monotonic() - started
        error = assert_error(response, 503, "store_unavailable")
        assert error["detail"] == STORE_DOWN, name
        assert client.settings.qdrant_url not in response.text, "the server's address leaked"
        assert elapsed < FAIL_FAST_S, f"{name} took {elapsed:.1f} s to fail"
    assert sorted(p.relative_to(library) for p in library.rglob("*")) == listing
    assert not (Path(client.settings.data_dir) / "trash").exists()
    assert_error(client.get("/api/v1/status", headers=key), 503, "store_unavailable")
    assert client.get("/health").status_code == 200

    # Another process writes to Qdrant meanwhile (say a second API instance).
    other = other_process()
    other.delete([ids[3]])
    other.set_payload([ids[1]], {"tags": ["green"]})
    other.close()

    # --- recovery ---------------------------------------------------------------------------
    come_back()
    deadline = time.monotonic() + RETRY_S + 10
    while client.get("/ready").json().get("degraded") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "degraded" not in client.get("/ready").json()
    store_ids = {r.id for r in engine.store.scroll(with_payload=False)}
    while engine.mirror.ids() != store_ids and time.monotonic() < deadline:
        time.sleep(0.1)  # the resync runs in the background after the first answer
    assert engine.mirror.ids() == store_ids == {ids[0], ids[1], ids[2]}
    found = _search(client, key, image=image_bytes(101), k="5").json()
    assert found["degraded"] is False
    assert found["hits"][0]["tags"] == ["green"] and ids[3] not in {h["id"] for h in found["hits"]}
    assert engine.mirror_keeper.payloads.get([ids[1]])[ids[1]]["tags"] == ["green"]
    assert ids[3] not in engine.mirror_keeper.payloads.get(ids)
    again = client.post(
        "/api/v1/images", files={"files": ("new.png", image_bytes(200))}, headers=key
    )
    assert again.status_code == 201, again.text
    assert client.patch(f"/api/v1/images/{ids[0]}", json={"tags": ["x"]}, headers=key).json()[
        "tags"
    ] == ["x"]
    assert engine.mirror.ids() == {r.id for r in engine.store.scroll(with_payload=False)}
