"""Saving and loading the mirror: round trip, refusal of damaged or foreign snapshots, and
crash safety (a save killed at any moment leaves a loadable snapshot)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from store.base import Record
from store.mirror import Mirror
from store.mirror.snapshot import MANIFEST

BLOCKS = [("clip", 24), ("cnn", 40), ("hsv", 8)]
REPO = Path(__file__).resolve().parents[4]


def make_records(rng: np.random.Generator, n: int, rev: int) -> list[Record]:
    return [
        Record(
            id=str(uuid.UUID(int=int(rng.integers(1 << 62)))),
            payload={"rev": rev},
            vectors={name: rng.normal(size=dim) for name, dim in BLOCKS},
        )
        for _ in range(n)
    ]


@pytest.fixture
def saved(tmp_path: Path) -> Mirror:
    rng = np.random.default_rng(3)
    mirror = Mirror(tmp_path / "mirror", BLOCKS)
    records = make_records(rng, 200, rev=1_000)
    del records[0].vectors["cnn"]
    mirror.upsert(records)
    mirror.remove([records[5].id, records[9].id])
    mirror.upsert(make_records(rng, 10, rev=2_000))
    mirror.save()
    return mirror


def data_files(directory: Path) -> dict[str, Path]:
    manifest = json.loads((directory / MANIFEST).read_text())
    keys = ("vectors", "ids", "codes", "compact")
    return {key: directory / manifest[key]["file"] for key in keys if key in manifest}


@pytest.fixture
def two_stage(tmp_path: Path) -> Mirror:
    """A saved mirror large enough (for its lowered threshold) to have compact codes."""
    mirror = Mirror(tmp_path / "mirror", BLOCKS)
    mirror.exact_below = 100
    mirror.upsert(make_records(np.random.default_rng(8), 400, rev=5))
    mirror.remove(list(mirror.ids())[:30])
    mirror.save()
    return mirror


def test_round_trip(saved: Mirror) -> None:
    loaded = Mirror.load(saved.path, BLOCKS)
    assert loaded is not None
    assert len(loaded) == len(saved) == 208
    assert loaded.ids() == saved.ids()
    assert loaded.revs() == saved.revs()
    assert loaded.watermark == saved.watermark == 2_000
    some = sorted(saved.ids())[0]
    for name, vec in saved.vector(some).items():
        np.testing.assert_array_equal(loaded.vector(some)[name], vec)
    query = {name: np.linspace(-1, 1, dim) for name, dim in BLOCKS}
    weights = {"clip": 1.0, "cnn": 0.5, "hsv": 0.25}
    assert loaded.search(query, weights, k=20) == saved.search(query, weights, k=20)
    # New points get faiss ids that do not collide with the loaded ones.
    loaded.upsert(make_records(np.random.default_rng(4), 5, rev=3_000))
    assert len(loaded) == 213 and len(loaded.search(query, weights, k=500)) == 213


def test_saving_again_replaces_the_snapshot_and_tidies(saved: Mirror) -> None:
    old = data_files(saved.path)
    saved.remove(list(saved.ids())[:8])
    saved.save()
    assert not any(p.exists() for p in old.values())
    assert sorted(p.name for p in saved.path.iterdir()) == sorted(
        [MANIFEST, *(p.name for p in data_files(saved.path).values())]
    )
    loaded = Mirror.load(saved.path, BLOCKS)
    assert loaded is not None and len(loaded) == 200


def test_empty_mirror_round_trips(tmp_path: Path) -> None:
    Mirror(tmp_path, BLOCKS).save()
    loaded = Mirror.load(tmp_path, BLOCKS)
    assert loaded is not None and len(loaded) == 0 and loaded.watermark == 0


def test_missing_snapshot_is_none(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert Mirror.load(tmp_path / "nothing", BLOCKS) is None
    assert "no mirror snapshot" in caplog.text


@pytest.mark.parametrize(
    ("blocks", "why"),
    [
        ([("clip", 24), ("cnn", 40)], "built for blocks"),
        ([("clip", 24), ("cnn", 40), ("hsv", 16)], "built for blocks"),
        ([("cnn", 40), ("clip", 24), ("hsv", 8)], "built for blocks"),
    ],
)
def test_snapshot_for_other_blocks_is_refused(
    saved: Mirror, caplog: pytest.LogCaptureFixture, blocks: list[tuple[str, int]], why: str
) -> None:
    assert Mirror.load(saved.path, blocks) is None
    assert why in caplog.text


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda d: (d / MANIFEST).write_text('{"format": 1, "blo'), "unreadable manifest"),
        (lambda d: (d / MANIFEST).write_text('{"format": 99}'), "unknown format"),
        (lambda d: flip_byte(data_files(d)["vectors"], 5_000), "fails its checksum"),
        (lambda d: flip_byte(data_files(d)["ids"], 100), "fails its checksum"),
        (lambda d: os.truncate(data_files(d)["vectors"], 1_000), "bytes, want"),
        (lambda d: data_files(d)["ids"].unlink(), "is missing"),
    ],
    ids=["torn-manifest", "format", "vector-bits", "ids-bits", "truncated-vectors", "no-ids"],
)
def test_damaged_snapshot_is_refused(
    saved: Mirror, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], object], why: str
) -> None:
    damage(saved.path)
    assert Mirror.load(saved.path, BLOCKS) is None
    assert why in caplog.text


def test_compact_codes_round_trip(two_stage: Mirror) -> None:
    assert two_stage._state.compact is not None and set(data_files(two_stage.path)) == {
        "vectors",
        "ids",
        "codes",
        "compact",
    }
    loaded = Mirror.load(two_stage.path, BLOCKS)
    assert loaded is not None and loaded._state.compact is not None
    np.testing.assert_array_equal(loaded._state.compact.codes(), two_stage._state.compact.codes())
    assert loaded._state.rows.free == two_stage._state.rows.free  # removed slots stay free
    query = {name: np.linspace(-1, 1, dim) for name, dim in BLOCKS}
    weights = {"clip": 1.0, "cnn": 0.5, "hsv": 0.25}
    assert loaded.search(query, weights, k=10) == two_stage.search(query, weights, k=10)
    # New points take the freed slots first, and get codes.
    loaded.upsert(make_records(np.random.default_rng(9), 40, rev=6))
    assert len(loaded) == 410 and loaded._state.rows.free == []


@pytest.mark.parametrize("key", ["codes", "compact"])
def test_damaged_codes_are_refused(
    two_stage: Mirror, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    flip_byte(data_files(two_stage.path)[key], 200)
    assert Mirror.load(two_stage.path, BLOCKS) is None
    assert "fails its checksum" in caplog.text


def test_a_vector_file_claiming_another_shape_is_refused(
    saved: Mirror, caplog: pytest.LogCaptureFixture
) -> None:
    """CRCs only prove that files are what the save wrote; the .npy header must also agree
    with the manifest before numpy maps anything (a size is never trusted)."""
    path = data_files(saved.path)["vectors"]
    data = path.read_bytes().replace(b"(208, 72)", b"(9999999, 72)")
    path.write_bytes(data)
    manifest = json.loads((saved.path / MANIFEST).read_text())
    manifest["vectors"].update(bytes=len(data), crc32=zlib.crc32(data))
    (saved.path / MANIFEST).write_text(json.dumps(manifest))
    assert Mirror.load(saved.path, BLOCKS) is None
    assert "want (208, 72)" in caplog.text


def test_leftovers_of_an_interrupted_save_are_ignored_then_removed(saved: Mirror) -> None:
    # What a save killed before its manifest replace leaves behind.
    (saved.path / f"{MANIFEST}.1a2b3c4d.tmp").write_text('{"format": 1, "blocks": [[')
    (saved.path / f"{MANIFEST}.k2x_9qzv").write_text('{"format": 2, "bl')  # common.atomic's
    (saved.path / "vectors-0123456789ab.npy").write_bytes(b"\x93NUMPY" + b"\0" * 100)
    (saved.path / "ids-0123456789ab.npz").write_bytes(b"PK\x03\x04")
    (saved.path / "index-0123456789ab.faiss").write_bytes(b"IxMp")  # format 1's index file
    loaded = Mirror.load(saved.path, BLOCKS)
    assert loaded is not None and loaded.ids() == saved.ids()
    loaded.save()
    assert len(list(saved.path.iterdir())) == 3


CHILD = textwrap.dedent(
    """
    import sys, uuid
    import numpy as np
    from pathlib import Path
    from store.base import Record
    from store.mirror import Mirror

    blocks = [("a", 512), ("b", 512)]
    mirror = Mirror(Path(sys.argv[1]), blocks)
    rng = np.random.default_rng(0)
    generation = 0
    while True:  # every snapshot holds 'generation' * 200 points and watermark 'generation'
        generation += 1
        mirror.upsert([
            Record(str(uuid.uuid4()), {"rev": generation},
                   {"a": rng.normal(size=512), "b": rng.normal(size=512)})
            for _ in range(200)
        ])
        mirror.save()
        print(generation, flush=True)
    """
)


def test_a_save_killed_at_any_moment_leaves_a_whole_snapshot(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    directory = tmp_path / "mirror"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory)],
            stdout=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        assert child.stdout is not None
        child.stdout.readline()  # at least one save has finished
        time.sleep(float(rng.uniform(0.0, 0.3)))
        child.send_signal(signal.SIGKILL)
        child.wait()
        loaded = Mirror.load(directory, [("a", 512), ("b", 512)])
        assert loaded is not None
        assert loaded.watermark >= 1 and len(loaded) == 200 * loaded.watermark
