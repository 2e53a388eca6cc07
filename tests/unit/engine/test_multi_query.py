"""engine.multi_query: several query images in one search, combined by any or all."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest

from engine.composition import Lookalike
from engine.errors import BadInput
from engine.search_request import QueryImage, SearchRequest
from tests.unit.engine.conftest import picture, save

N = 12


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    picture(seed).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def lk(make_lookalike: Callable[..., Lookalike]) -> Lookalike:
    lk = make_lookalike()
    for seed in range(N):
        save(picture(seed), lk.settings.library_dir / f"p{seed:02d}.png")
    lk.indexing.index()
    return lk


def _stored(lk: Lookalike) -> dict[str, np.ndarray]:
    return {r.id: r.vectors["hsv-8x8x8"] for r in lk.store.scroll(with_vectors=True)}


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, np.float64) / np.linalg.norm(v)


def _query_vectors(lk: Lookalike, seeds: list[int]) -> list[np.ndarray]:
    return [_unit(lk.queries.image(_png(s))[0]["hsv-8x8x8"]) for s in seeds]


def _assert_exact(hits: list, brute: dict[str, float], k: int) -> None:
    """The hits are the brute-force top k: the same scores in order, each hit's score its own
    brute-force score. Equal scores (each query image matches its own copy at 1.0) may come
    in either order."""
    assert np.allclose([h.score for h in hits], sorted(brute.values(), reverse=True)[:k], atol=1e-5)
    assert np.allclose([h.score for h in hits], [brute[h.id] for h in hits], atol=1e-5)
    assert len({h.id for h in hits}) == len(hits) == k


def test_any_ranks_by_the_best_query_image_exactly(lk: Lookalike) -> None:
    request = SearchRequest(queries=(QueryImage(_png(2)), QueryImage(_png(7))), k=5)
    result = lk.search.run(request)
    stored = _stored(lk)
    queries = _query_vectors(lk, [2, 7])
    brute = {i: max(float(q @ _unit(v)) for q in queries) for i, v in stored.items()}
    _assert_exact(result.hits, brute, 5)
    by_path = {h.path: h for h in result.hits}
    assert by_path["p02.png"].query_index == 0 and by_path["p07.png"].query_index == 1
    assert by_path["p02.png"].near_duplicate and by_path["p07.png"].near_duplicate


def test_all_scores_the_mean_fused_vector_exactly(lk: Lookalike) -> None:
    request = SearchRequest(queries=(QueryImage(_png(2)), QueryImage(_png(7))), combine="all", k=N)
    result = lk.search.run(request)
    mean = np.mean(_query_vectors(lk, [2, 7]), axis=0)
    brute = {i: float(mean @ _unit(v)) for i, v in _stored(lk).items()}
    _assert_exact(result.hits, brute, N)
    assert result.weights == {"hsv": 1.0}
    by_path = {h.path: h for h in result.hits}
    assert by_path["p02.png"].query_index == 0 and by_path["p07.png"].query_index == 1
    # Its cosine is to the query image it matched best, so it is still a near duplicate.
    assert by_path["p07.png"].scores["hsv"] == pytest.approx(1.0, abs=1e-5)
    assert by_path["p07.png"].near_duplicate


def test_stored_images_and_crops_mix_with_uploads(lk: Lookalike) -> None:
    stored_id = lk.search.run(SearchRequest(image=_png(4), k=1)).hits[0].id
    request = SearchRequest(
        queries=(
            QueryImage(image_id=stored_id),
            QueryImage(_png(9), box=(0, 0, 80, 60)),
            QueryImage(image_id=stored_id, box=(40, 30, 80, 60)),
        ),
        k=3,
    )
    result = lk.search.run(request)
    assert result.hits[0].id == stored_id and result.hits[0].query_index == 0
    assert "decode_ms" in result.timings  # two of the three were decoded


def test_one_image_the_several_way_is_a_plain_search(lk: Lookalike) -> None:
    plain = lk.search.run(SearchRequest(image=_png(3), k=4))
    several = lk.search.run(SearchRequest(queries=(QueryImage(_png(3)),), k=4))
    assert [(h.id, h.score) for h in several.hits] == [(h.id, h.score) for h in plain.hits]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (SearchRequest(queries=tuple(QueryImage(_png(1)) for _ in range(9))), "At most 8"),
        (SearchRequest(queries=(QueryImage(_png(1)),) * 2, combine="some"), "'any' or 'all'"),
        (SearchRequest(queries=(QueryImage(_png(1)),), text="ring"), "exactly one"),
        (SearchRequest(queries=(QueryImage(),)), "an uploaded picture or an image id"),
    ],
)
def test_bad_queries_are_refused_with_a_sentence(
    lk: Lookalike, request_: SearchRequest, message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        lk.search.run(request_)
