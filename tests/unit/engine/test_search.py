"""engine.search: the one dispatch every way in uses, with the calibrated defaults."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from engine.composition import Lookalike
from engine.errors import BadInput, ModelUnavailable, NotFound
from engine.search import check_k, parse_weights
from engine.search_request import Filters, SearchRequest
from tests.unit.engine.conftest import picture, save


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    picture(seed).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def indexed(make_lookalike: Callable[..., Lookalike]) -> Lookalike:
    lk = make_lookalike()
    library = lk.settings.library_dir
    for seed in range(6):
        save(picture(seed), library / ("red" if seed < 3 else "blue") / f"p{seed}.png")
    lk.indexing.index()
    return lk


def test_exactly_one_query_kind(indexed: Lookalike) -> None:
    for request in (SearchRequest(), SearchRequest(image=_png(1), text="a ring")):
        with pytest.raises(BadInput, match="exactly one of an image, an image id and a text"):
            indexed.search.run(request)


def test_no_weights_means_the_calibrated_defaults(indexed: Lookalike) -> None:
    result = indexed.search.run(SearchRequest(image=_png(1)))
    defaults = indexed.search.defaults()
    assert result.weights == defaults.weights == {"hsv": 1.0}
    assert len(result.hits) == 6 and result.hits[0].path == "red/p1.png"
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.near_duplicate for h in result.hits] == [True] + [False] * 5
    assert set(result.timings) == {
        "decode_ms",
        "embed_ms",
        "search_ms",
        "keypoints_ms",
        "verify_ms",
    }


def test_filters_threshold_and_k(indexed: Lookalike) -> None:
    blue = indexed.search.run(SearchRequest(image=_png(1), filters=Filters(folders=("blue",))))
    assert sorted(h.path for h in blue.hits) == ["blue/p3.png", "blue/p4.png", "blue/p5.png"]
    top = indexed.search.run(SearchRequest(image=_png(1), k=2))
    assert len(top.hits) == 2
    close = indexed.search.run(SearchRequest(image=_png(1), threshold=0.999))
    assert [h.path for h in close.hits] == ["red/p1.png"]


def test_by_stored_id_and_its_crop(indexed: Lookalike) -> None:
    first = indexed.search.run(SearchRequest(image=_png(2))).hits[0]
    again = indexed.search.run(SearchRequest(image_id=first.id))
    assert again.hits[0].id == first.id
    cropped = indexed.search.run(SearchRequest(image_id=first.id, box=(0, 0, 80, 60)))
    assert cropped.hits and "decode_ms" in cropped.timings  # the pixels were searched
    with pytest.raises(NotFound):
        indexed.search.run(SearchRequest(image_id=str(uuid.uuid4())))
    with pytest.raises(BadInput, match="not an image id"):
        indexed.search.run(SearchRequest(image_id="../etc/passwd"))


def test_text_needs_clip(indexed: Lookalike) -> None:
    with pytest.raises(ModelUnavailable, match="LOOKALIKE_CLIP_WEIGHTS"):
        indexed.search.run(SearchRequest(text="a gold ring"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("", None), ("  ", None), ("hsv=1,cnn=0.5", {"hsv": 1.0, "cnn": 0.5})],
)
def test_parse_weights(text: str | None, expected: dict[str, float] | None) -> None:
    assert parse_weights(text) == expected


@pytest.mark.parametrize("bad", ["hsv", "shape=1", "hsv=-1", "hsv=nan", "hsv=x"])
def test_parse_weights_refuses_with_a_sentence(bad: str) -> None:
    with pytest.raises(BadInput) as raised:
        parse_weights(bad)
    assert raised.value.detail.endswith(".")


@pytest.mark.parametrize("k", [0, 1001, True, 2.5])
def test_k_limits(k: Any) -> None:
    with pytest.raises(BadInput, match="between 1 and 1000"):
        check_k(k, 1000)


def test_zero_weights_for_the_models_in_use(indexed: Lookalike) -> None:
    with pytest.raises(BadInput, match="Every weight is zero"):
        indexed.search.run(SearchRequest(image=_png(1), weights={"cnn": 1.0, "hsv": 0.0}))


def test_excluded_images_are_never_shown_and_k_hits_still_come(indexed: Lookalike) -> None:
    everything = indexed.search.run(SearchRequest(image=_png(1)))
    ids = [h.id for h in everything.hits]
    first, second = ids[0], ids[1]
    by_id = indexed.search.run(SearchRequest(image_id=first, k=3, exclude=(first,)))
    assert [h.id for h in by_id.hits] == [i for i in ids if i != first][:3]
    # Any kind of query, its first look (the ranking told before verification) included.
    told: list[list[str]] = []
    request = SearchRequest(image=_png(1), k=2, exclude=(first, second))
    result = indexed.search.run(request, first_look=lambda r: told.append([h.id for h in r.hits]))
    assert [h.id for h in result.hits] == ids[2:4]
    assert told and all(first not in look and second not in look for look in told)
    assert all(len(look) <= 2 for look in told)
    all_others = indexed.search.run(SearchRequest(image=_png(1), k=6, exclude=(first,)))
    assert len(all_others.hits) == 5  # the library has 6: all the others
    with pytest.raises(BadInput, match="not an image id"):
        indexed.search.run(SearchRequest(image=_png(1), exclude=("nope",)))
    with pytest.raises(BadInput, match="At most 100 images can be left out"):
        indexed.search.run(SearchRequest(image=_png(1), exclude=(first,) * 101))
