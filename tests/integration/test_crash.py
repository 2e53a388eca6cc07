"""Crash safety: SIGKILL the indexer and the API server at random points, restart after each
kill, and prove the store converges.

Convergence means: every image file is indexed exactly once (one point per content, each
file claimed by exactly one point), no point is left without a file (no orphans), and the
FAISS mirror and its payload cache hold exactly the store's points. Images are 128 px so a
run is dominated by start-up, not embedding; kills land at random times after the run has
planned its work, so they hit hashing, embedding, store writes and mirror saves.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from bench.served import FAST_MODELS, LiveServer
from engine.uploads import TEMP_PREFIX
from store.base import point_id_for_sha256
from tests.hostile.converge import assert_converged, tiny_png, visible_files

pytestmark = pytest.mark.slow

MIN_KILLS = 10


def test_sigkill_the_indexer_at_random_points(tmp_path: Path) -> None:
    library, data = tmp_path / "library", tmp_path / "data"
    (library / "a").mkdir(parents=True)
    (library / "b").mkdir()
    for i in range(200):
        (library / ("a" if i % 2 else "b") / f"img{i:03d}.png").write_bytes(tiny_png(i))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")},
        **FAST_MODELS,
        "LOOKALIKE_DATA_DIR": str(data),
        "LOOKALIKE_LIBRARY_DIR": str(library),
        "LOOKALIKE_BATCH_SIZE": "8",
    }
    rng = random.Random(20261124)
    kills, runs, finished = 0, 0, 0
    log = tmp_path / "index.log"
    while kills < MIN_KILLS and runs < 40:
        runs += 1
        if kills and kills % 3 == 0:  # the library changes under the crashes, too
            _shuffle_library(library, rng, runs)
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "cli", "-v", "index"], env=env, stdout=out, stderr=out
            )
        planned = _wait_for(log, "index plan", proc)
        if planned is None:  # the run ended before planning: it had nothing to do
            finished += 1
            continue
        if "'to_hash': 0" in planned and "'removed': 0" in planned:
            proc.wait(timeout=120)
            finished += 1
            _shuffle_library(library, rng, runs)  # give the next run work to be killed in
            continue
        time.sleep(rng.uniform(0.0, 0.35))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=120)
    assert kills >= MIN_KILLS, f"only {kills} kills in {runs} runs"
    final = subprocess.run(
        [sys.executable, "-m", "cli", "index", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr
    assert json.loads(final.stdout)["failed"] == []
    result = assert_converged(data, library)
    assert result["files"] >= 200
    print(f"indexer: {kills} SIGKILLs survived in {runs} runs; {result}")


def _shuffle_library(library: Path, rng: random.Random, salt: int) -> None:
    """New files, a deletion, a move and a duplicate: every kind of plan step gets killed."""
    files = visible_files(library)
    for i in range(12):
        (library / "a" / f"new{salt:02d}-{i}.png").write_bytes(tiny_png(10_000 + salt * 100 + i))
    victim = rng.choice(files)
    victim.unlink()
    moved = rng.choice([p for p in files if p != victim])
    moved.rename(moved.parent.parent / ("a" if moved.parent.name == "b" else "b") / moved.name)
    source = rng.choice([p for p in files if p not in (victim, moved)])
    (library / "b" / f"dup{salt:02d}.png").write_bytes(source.read_bytes())


def _wait_for(log: Path, text: str, proc: subprocess.Popen[Any], timeout: float = 60) -> str | None:
    """The log line containing ``text`` once the process wrote it; None if it exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        if proc.poll() is not None:
            return None
        time.sleep(0.005)
    raise TimeoutError(f"no {text!r} in {log}")


def test_sigkill_the_api_during_uploads(tmp_path: Path) -> None:
    server = LiveServer(tmp_path)
    key = server.key("write")
    rng = random.Random(5)
    sent: dict[bytes, str] = {}  # content -> file name, for every upload ever attempted
    acked: set[str] = set()  # ids the server confirmed with 201
    counter = iter(range(1, 1_000_000))
    lock = threading.Lock()
    kills = 0

    def uploader(stop: threading.Event) -> None:
        with server.client(timeout=30) as http:
            while not stop.is_set():
                batch = []
                with lock:
                    for _ in range(rng.randint(1, 3)):
                        n = next(counter)
                        data = tiny_png(50_000 + n)
                        sent[data] = f"up{n}.png"
                        batch.append(("files", (f"up{n}.png", data, "image/png")))
                try:
                    response = http.post("/api/v1/images", files=batch, headers=key)
                except httpx.HTTPError:
                    continue  # killed mid-request: the outcome is unknown, both are fine
                if response.status_code == 201:
                    with lock:
                        acked.update(i["id"] for i in response.json()["images"])
                else:
                    assert response.status_code >= 500, response.text  # never a 4xx

    while kills < MIN_KILLS:
        server.start()
        stop = threading.Event()
        threads = [threading.Thread(target=uploader, args=(stop,)) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.4, 1.6))  # uploads also extract keypoints now
        server.kill()
        kills += 1
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert acked, "no upload was acknowledged between kills: the windows are too short"

    server.start()
    with server.client() as http:
        job = http.post("/api/v1/reconcile", headers=key).json()
    assert server.wait_job(job["id"])["state"] == "done"
    uploads = server.library / "uploads"
    stray = list(uploads.glob(f"{TEMP_PREFIX}*"))
    server.stop()

    # Temporary files of cut-short uploads are hidden and never indexed; once stale they
    # are swept at start-up. A kill rarely lands inside a write of 1 KB, so one is planted.
    planted = uploads / f"{TEMP_PREFIX}planted"
    planted.write_bytes(tiny_png(1)[:300])
    young = uploads / f"{TEMP_PREFIX}in-flight"  # may be another process's upload: kept
    young.write_bytes(b"\x89PNG")
    for path in [*stray, planted]:
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    server.start()
    server.stop()
    assert list(uploads.glob(f"{TEMP_PREFIX}*")) == [young]
    young.unlink()

    files = visible_files(server.library)
    for path in files:  # written by temp file + rename: never half a file
        assert path.read_bytes() in sent, f"{path} is not one of the uploads, byte for byte"
        Image.open(path).load()
    on_disk = {point_id_for_sha256(hashlib.sha256(p.read_bytes()).hexdigest()) for p in files}
    assert acked <= on_disk, "an acknowledged upload was lost"
    result = assert_converged(server.data, server.library)
    print(
        f"uploads: {kills} SIGKILLs survived; {len(sent)} sent, {len(acked)} acknowledged, "
        f"{len(stray)} temp files swept; {result}"
    )
