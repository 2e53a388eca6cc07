"""engine.feedback: a search refined by liked and disliked hits, ranked as Qdrant's
recommendation API (average_vector) ranks the same examples."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from qdrant_client import QdrantClient, models

from engine.composition import Lookalike
from engine.errors import BadInput, NotFound
from engine.feedback import refine
from engine.search_request import SearchRequest
from tests.unit.engine.conftest import picture, save

HSV = "hsv-8x8x8"


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    picture(seed).save(buf, "PNG")
    return buf.getvalue()


def _mixed(seed: int) -> Image.Image:
    """Random blocks from one shared palette: colour histograms overlap, so no two scores
    tie at zero and rankings are comparable."""
    rng = np.random.default_rng(seed)
    palette = np.array(
        [[200, 30, 40], [30, 120, 200], [240, 200, 40], [40, 160, 60], [120, 60, 160]], np.uint8
    )
    weights = rng.dirichlet(np.ones(len(palette)) * 0.7)
    blocks = palette[rng.choice(len(palette), size=(12, 16), p=weights)]
    return Image.fromarray(blocks).resize((160, 120), Image.Resampling.NEAREST)


@pytest.fixture
def lk(make_lookalike: Callable[..., Lookalike]) -> Lookalike:
    lk = make_lookalike()
    for seed in range(20):
        save(picture(seed), lk.settings.library_dir / f"p{seed:02d}.png")
    for seed in range(40):
        save(_mixed(seed), lk.settings.library_dir / "mixed" / f"m{seed:02d}.png")
    lk.indexing.index()
    return lk


def test_the_rule_is_qdrants_average_vector() -> None:
    rng = np.random.default_rng(1)
    q, a, b, c = (rng.random(8) for _ in range(4))
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    out = refine({"m": q}, [{"m": a}, {"m": b}], [{"m": c}])["m"]
    want = 2 * np.mean([unit(q), unit(a), unit(b)], axis=0) - unit(c)
    assert np.allclose(out, want, atol=1e-6)
    assert np.allclose(refine({"m": q}, [{"m": a}], [])["m"], (unit(q) + unit(a)) / 2)


def test_liked_moves_up_and_disliked_moves_down(lk: Lookalike) -> None:
    plain = lk.search.run(SearchRequest(image=_png(3), k=60))
    ids = [h.id for h in plain.hits]
    liked, disliked = ids[-1], ids[1]
    refined = lk.search.run(
        SearchRequest(image=_png(3), k=60, liked=(liked,), disliked=(disliked,))
    )
    after = [h.id for h in refined.hits]
    assert after.index(liked) < ids.index(liked)
    assert after.index(disliked) > ids.index(disliked)


def test_the_mirror_ranks_as_qdrant_recommend(lk: Lookalike) -> None:
    """The same examples through Qdrant's own recommendation API, on a copy of the points."""
    records = list(lk.store.scroll(with_vectors=True))
    client = QdrantClient(":memory:")
    client.create_collection(
        "c", vectors_config={HSV: models.VectorParams(size=512, distance=models.Distance.COSINE)}
    )
    client.upsert(
        "c", [models.PointStruct(id=r.id, vector={HSV: r.vectors[HSV].tolist()}) for r in records]
    )
    buf = io.BytesIO()
    _mixed(100).save(buf, "PNG")
    query = lk.queries.image(buf.getvalue())[0][HSV]
    mixed = [r for r in records if r.payload["paths"][0].startswith("mixed/")]
    liked, disliked = mixed[11].id, mixed[4].id
    theirs = client.query_points(
        "c",
        query=models.RecommendQuery(
            recommend=models.RecommendInput(
                positive=[query.tolist(), liked],
                negative=[disliked],
                strategy=models.RecommendStrategy.AVERAGE_VECTOR,
            )
        ),
        using=HSV,
        limit=20,
    ).points
    ours = lk.search.run(
        SearchRequest(image=buf.getvalue(), k=22, liked=(liked,), disliked=(disliked,))
    ).hits
    # Qdrant leaves the examples themselves out of a recommendation.
    ours = [h for h in ours if h.id not in (liked, disliked)][:20]
    assert [h.id for h in ours] == [str(p.id) for p in theirs]
    assert np.allclose([h.score for h in ours], [p.score for p in theirs], atol=1e-4)
    assert len({round(p.score, 4) for p in theirs}) == 20  # no ties: the order is meaningful


def test_bad_marks(lk: Lookalike) -> None:
    some = lk.search.run(SearchRequest(image=_png(1), k=1)).hits[0].id
    with pytest.raises(NotFound):
        lk.search.run(SearchRequest(image=_png(1), liked=(str(uuid.uuid4()),)))
    with pytest.raises(BadInput, match="both liked and disliked"):
        lk.search.run(SearchRequest(image=_png(1), liked=(some,), disliked=(some,)))
    with pytest.raises(BadInput, match="not an image id"):
        lk.search.run(SearchRequest(image=_png(1), disliked=("nope",)))
