"""A process that only indexes (``lookalike index``) frees CLIP's text tower, about 250 MB,
keeps bf16 weights only once its run settles on eager bf16, and still answers a text query
if one comes after all."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.photos import package_photos
from engine.composition import Lookalike
from engine.search_request import SearchRequest
from engine.settings import Settings

pytestmark = pytest.mark.slow


def _settings(tmp: Path) -> Settings:
    return Settings(
        data_dir=tmp / "data", library_dir=tmp / "library", clip_weights="random", cnn="off"
    )


def test_an_index_only_engine_drops_the_text_tower_and_text_search_still_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    library = tmp_path / "library"
    library.mkdir()
    for photo in package_photos(debian=False)[:3]:
        photo.load().convert("RGB").save(library / f"{photo.name}.jpg")
    lean = Lookalike(_settings(tmp_path), index_only=True)
    try:
        assert lean.indexing.index().embedded == 3
        embedder = lean.resources.loaded_embedder()
        assert embedder is not None
        clip = next(m for m in embedder.models if m.role == "clip")
        assert clip._module is not None
        assert clip._module.clip.transformer is None  # type: ignore[attr-defined]
        # Three files: too few to compile, so the run settled on eager from its start.
        weights = {p.dtype for p in clip._module.parameters()}
        assert weights == ({torch.bfloat16} if clip.precision == "bf16" else {torch.float32})
        with caplog.at_level("INFO", logger="embedder.clip"):
            lean_hits = lean.search.run(SearchRequest(text="a cup of coffee", k=3)).hits
        assert "Loading CLIP's text tower" in caplog.text
    finally:
        lean.close()
    full = Lookalike(_settings(tmp_path))
    try:
        hits = full.search.run(SearchRequest(text="a cup of coffee", k=3)).hits
    finally:
        full.close()
    assert [h.id for h in lean_hits] == [h.id for h in hits]
    assert [h.score for h in lean_hits] == pytest.approx([h.score for h in hits], abs=1e-5)
