"""engine.catalog: the models in use, known without loading them a second time."""

from __future__ import annotations

from collections.abc import Callable

from engine.composition import Lookalike


def test_a_second_process_knows_the_models_without_loading_them(
    make_lookalike: Callable[..., Lookalike],
) -> None:
    first = make_lookalike()
    assert first.catalog.names() == {"hsv": "hsv-8x8x8"}  # loads the models once
    assert first.resources.embedder_loaded()
    settings = first.settings
    first.close()
    second = Lookalike(settings)
    try:
        assert second.catalog.names() == {"hsv": "hsv-8x8x8"}
        assert second.catalog.blocks() == [("hsv-8x8x8", 512)]
        assert second.catalog.vector_tags() == ["hsv-8x8x8@none"]
        assert not second.resources.embedder_loaded()
        roles = {r["role"]: r for r in second.catalog.roles()}
        assert roles["clip"]["name"] is None and "LOOKALIKE_CLIP_WEIGHTS" in roles["clip"]["reason"]
    finally:
        second.close()
