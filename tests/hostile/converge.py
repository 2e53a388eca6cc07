"""What "the store converged" means, for the crash and concurrency tests."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from engine.composition import Lookalike
from engine.settings import Settings
from store.base import point_id_for_sha256


def tiny_png(seed: int, side: int = 128) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(small).resize((side, side), Image.NEAREST).save(buf, "PNG")
    return buf.getvalue()


def visible_files(library: Path) -> list[Path]:
    return sorted(p for p in library.rglob("*") if p.is_file() and not p.name.startswith("."))


def assert_converged(data: Path, library: Path) -> dict[str, int]:
    """Every file indexed exactly once, no orphans, mirror and payload cache equal the store."""
    files = visible_files(library)
    expected = {point_id_for_sha256(hashlib.sha256(p.read_bytes()).hexdigest()) for p in files}
    settings = Settings(data_dir=data, library_dir=library, clip_weights="off", cnn="effnet-lite0")
    engine = Lookalike(settings)
    try:
        records = list(engine.store.scroll())
        ids = {r.id for r in records}
        assert ids == expected, f"{len(ids - expected)} orphan, {len(expected - ids)} missing"
        claimed = sorted(key for r in records for key in r.payload["paths"])
        assert claimed == sorted(p.relative_to(library).as_posix() for p in files)
        for r in records:  # the payload describes the content the id was derived from
            first = library / r.payload["paths"][0]
            assert point_id_for_sha256(hashlib.sha256(first.read_bytes()).hexdigest()) == r.id
        engine.mirror_keeper.sync()  # what the next start does; must be a no-op on a clean store
        assert engine.mirror.ids() == ids
        assert engine.status.read()["mirror_lag"] == 0
        assert set(engine.mirror_keeper.payloads.get(ids)) == ids
        return {"points": len(ids), "files": len(files)}
    finally:
        engine.close()
