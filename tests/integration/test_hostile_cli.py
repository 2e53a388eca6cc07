"""The hostile-input corpus through ``lookalike index`` and ``lookalike search`` (subprocesses).

The indexer must finish (exit 0), index every legal file once with the right size and
format, list every refused file under ``failed`` with a reason, and leave the store so that
a second run changes nothing. A refused query file makes ``search`` exit 2 with one line of
error, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.served import FAST_MODELS as FAST
from engine.composition import Lookalike
from engine.folder import IMAGE_SUFFIXES
from engine.indexing import UNNAMED
from engine.settings import Settings
from tests.hostile.corpus import write_corpus


def _cli(tmp: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        **FAST,
        "LOOKALIKE_DATA_DIR": str(tmp / "data"),
        "LOOKALIKE_LIBRARY_DIR": str(tmp / "library"),
    }
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], env=env, capture_output=True, timeout=300
    )


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    tmp = tmp_path_factory.mktemp("hostile-cli")
    corpus = write_corpus(tmp / "library")
    proc = _cli(tmp, "index", "--json")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    return tmp, corpus, json.loads(proc.stdout)


def _scanned(name: bytes) -> bool:
    return os.path.splitext(os.fsdecode(name))[1].lower() in IMAGE_SUFFIXES


def test_index_keeps_the_legal_files_and_names_the_refused_ones(indexed: tuple) -> None:
    tmp, corpus, report = indexed
    scanned = {name: case for name, case in corpus.items() if _scanned(name)}
    legal = {os.fsdecode(n): c for n, c in scanned.items() if c.legal}
    failed = {f["path"]: f["error"] for f in report["failed"]}
    refused = {
        os.fsencode(n).decode("utf-8", "backslashreplace")
        for n, c in scanned.items()
        if not c.legal
    }
    assert set(failed) == refused
    assert failed["caf\\xe9-\\xff.png"] == UNNAMED
    assert "too large to decode safely" in failed["bomb.png"]
    assert report["scanned"] == len(scanned)
    assert report["embedded"] == len(legal)

    engine = Lookalike(
        Settings(
            data_dir=tmp / "data",
            library_dir=tmp / "library",
            clip_weights="off",
            cnn="effnet-lite0",
        )
    )
    try:
        records = list(engine.store.scroll())
        by_path = {r.payload["paths"][0]: r.payload for r in records}
        assert sorted(p for r in records for p in r.payload["paths"]) == sorted(legal)
        for name, case in legal.items():
            payload = by_path[name]
            assert (payload["width"], payload["height"]) == case.size, case.name
            assert payload["format"] == case.format, case.name
        assert engine.mirror.ids() == {r.id for r in records}
    finally:
        engine.close()


def test_a_second_index_changes_nothing(indexed: tuple) -> None:
    tmp, _, first = indexed
    again = json.loads(_cli(tmp, "index", "--json").stdout)
    assert again["embedded"] == again["attached"] == again["deleted_points"] == 0
    assert again["unchanged"] == first["embedded"]
    assert len(again["failed"]) == len(first["failed"])  # still named, still not fatal


def test_search_refuses_hostile_queries_with_one_line(indexed: tuple) -> None:
    tmp, _, _ = indexed
    library = tmp / "library"
    for name in (b"empty.jpg", b"bomb.png", b"notes.jpg", b"vector.svg"):
        proc = _cli(tmp, "search", os.path.join(os.fsencode(library), name))
        err = proc.stderr.decode(errors="replace")
        assert proc.returncode == 2, (name, err)
        assert "error:" in err and "Traceback" not in err, (name, err)
    unusual = (b"cmyk.jpg", b"rgb48.png", b"rotated.jpg", b"animated.webp", b"big-photo.jpg")
    legal = [os.path.join(os.fsencode(library), n) for n in unusual]
    proc = _cli(tmp, "search", *legal, "--k", "1", "--json")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    for line, query in zip(proc.stdout.splitlines(), legal, strict=True):
        hit = json.loads(line)["hits"][0]
        assert os.fsencode(hit["path"]) == query
