"""Concurrent uploads, concurrent searches and reindexes at once, against a real server.

No write is lost (every upload is answered 201, none is refused because a reindex holds the
library: uploads wait for it), nothing is duplicated (the same bytes uploaded by several
clients at once are stored once; the others are told it exists), and afterwards the store,
the library folder, the FAISS mirror and its payload cache agree exactly.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.served import LiveServer
from tests.hostile.converge import assert_converged, tiny_png

pytestmark = pytest.mark.slow

UPLOADERS, UPLOADS_EACH, SEARCHERS = 4, 12, 4


def test_uploads_searches_and_reindex_at_once(tmp_path: Path) -> None:
    server = LiveServer(tmp_path)
    for i in range(80):  # work for the reindexes: files on disk that are not indexed yet
        folder = server.library / f"shelf{i % 4}"
        folder.mkdir(exist_ok=True)
        (folder / f"s{i:02d}.png").write_bytes(tiny_png(i))
    key = server.key("write")
    server.start()
    statuses: Counter[str] = Counter()
    acked: dict[str, list[str]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    shared = tiny_png(99_999)  # every uploader also sends these same bytes

    def record(kind: str, response: Any, ok: int) -> Any:
        with lock:
            statuses[f"{kind} {response.status_code}"] += 1
            if response.status_code != ok:
                errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
        return response

    def uploader(n: int) -> None:
        with server.client() as http:
            for j in range(UPLOADS_EACH):
                data = shared if j == UPLOADS_EACH // 2 else tiny_png(1000 * (n + 1) + j)
                files = {"files": (f"u{n}-{j}.png", data, "image/png")}
                response = record(
                    "upload", http.post("/api/v1/images", files=files, headers=key), 201
                )
                if response.status_code == 201:
                    with lock:
                        acked[f"u{n}-{j}.png"] = [i["id"] for i in response.json()["images"]]

    stop = threading.Event()

    def searcher(n: int) -> None:
        with server.client() as http:
            while not stop.is_set():
                query = {"image": ("q.png", tiny_png(n), "image/png")}
                record("search", http.post("/api/v1/search", files=query, headers=key), 200)
                listed = http.get("/api/v1/images", params={"limit": 5}, headers=key)
                record("list", listed, 200)
                items = listed.json().get("items") or []
                if items:
                    body = {"image_id": items[0]["id"], "k": 5}
                    record("search", http.post("/api/v1/search", json=body, headers=key), 200)

    def reindexer() -> None:
        for path in ("/api/v1/reindex", "/api/v1/reconcile", "/api/v1/reindex"):
            with server.client() as http:
                job = record("job", http.post(path, json={}, headers=key), 202).json()
            done = server.wait_job(job["id"])
            if done["state"] != "done":
                errors.append(f"job {path}: {done}")

    threads = [threading.Thread(target=reindexer)]
    threads += [threading.Thread(target=uploader, args=(n,)) for n in range(UPLOADERS)]
    searchers = [threading.Thread(target=searcher, args=(n,)) for n in range(SEARCHERS)]
    started = time.monotonic()
    for t in threads + searchers:
        t.start()
    for t in threads:
        t.join(timeout=300)
    stop.set()
    for t in searchers:
        t.join(timeout=60)
    elapsed = time.monotonic() - started
    with server.client() as http:
        status = http.get("/api/v1/status", headers=key).json()
    server.stop()

    assert not errors, errors[:5]
    assert len(acked) == UPLOADERS * UPLOADS_EACH, "an upload was lost"
    shared_ids = {
        ids[0] for name, ids in acked.items() if name.endswith(f"-{UPLOADS_EACH // 2}.png")
    }
    assert len(shared_ids) == 1, "the same bytes became several points"
    result = assert_converged(server.data, server.library)
    # The shared bytes are stored once: the later uploads of them answer "exists".
    assert result["files"] == 80 + UPLOADERS * UPLOADS_EACH - (UPLOADERS - 1)
    assert result["points"] == result["files"]
    assert status["points"] == result["points"] and status["mirror_lag"] == 0
    print(f"concurrency: {dict(statuses)} in {elapsed:.1f} s; {result}")


def test_an_upload_waits_for_a_reindex_then_gives_up_with_503(
    make_app_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine import uploads as library
    from tests.integration.conftest import assert_error

    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    engine = client.app.state.services.lookalike
    uploads = Path(client.settings.library_dir) / "uploads"
    monkeypatch.setattr(library, "UPLOAD_WAIT_S", 0.5)
    held = threading.Event()
    release = threading.Event()

    def long_reindex() -> None:  # holds the library as a reindex does
        with engine.indexing.writing():
            held.set()
            release.wait(10)

    blocker = threading.Thread(target=long_reindex)
    blocker.start()
    held.wait(5)
    files = {"files": ("late.png", tiny_png(7), "image/png")}
    body = assert_error(client.post("/api/v1/images", files=files, headers=key), 503, "busy")
    assert "re-indexed" in body["detail"]
    assert not uploads.exists() or not any(uploads.iterdir())  # nothing written
    # Released within the wait, the same upload goes through.
    threading.Timer(0.2, release.set).start()
    monkeypatch.setattr(library, "UPLOAD_WAIT_S", 5.0)
    assert client.post("/api/v1/images", files=files, headers=key).status_code == 201
    blocker.join()
