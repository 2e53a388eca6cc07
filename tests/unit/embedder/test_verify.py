"""embedder.verify: copies verify with their region located, different photos do not."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data

from embedder.keypoints import Features, extract, extract_query
from embedder.verify import confidence, verify, verify_best, verify_many

BOX = (120, 60, 120 + 324, 60 + 324)  # 40 % of the 512 x 512 astronaut


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def stored(photo: Image.Image) -> Features:
    return extract(photo)


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _bounds(poly: list[tuple[float, float]]) -> np.ndarray:
    a = np.asarray(poly)
    return np.r_[a.min(axis=0), a.max(axis=0)]


def test_a_40_percent_crop_verifies_and_shows_where_it_came_from(photo, stored) -> None:
    v = verify_best(extract_query(photo.crop(BOX)), stored)
    assert v is not None and v.inliers >= 20 and v.confidence > 0.8 and not v.mirrored
    assert np.allclose(_bounds(v.hit_polygon), BOX, atol=12)  # in the stored photo
    assert np.allclose(_bounds(v.query_polygon), (0, 0, 324, 324), atol=12)  # all of it


@pytest.mark.parametrize(
    "edit",
    [lambda im: im.rotate(15, fillcolor=(0, 0, 0)), lambda im: _jpeg(im, 25)],
    ids=["rotated", "jpeg25"],
)
def test_edited_copies_verify_with_high_confidence(photo, stored, edit) -> None:
    v = verify_best(extract_query(edit(photo)), stored)
    assert v is not None and v.confidence > 0.9


def test_a_copy_pasted_into_a_bigger_picture_is_located_there(photo, stored) -> None:
    host = Image.fromarray(data.coffee()).resize((800, 600))
    host.paste(photo.resize((300, 300)), (420, 200))
    v = verify_best(extract_query(host), stored)
    assert v is not None and v.confidence > 0.5
    assert np.allclose(_bounds(v.query_polygon), (420, 200, 720, 500), atol=15)


def test_a_mirrored_copy_verifies_through_the_mirrored_view(photo, stored) -> None:
    crop = ImageOps.mirror(photo.crop(BOX))
    assert verify(extract(crop, limit=1500), stored) is None  # not mirror-invariant
    v = verify_best(extract_query(crop), stored)
    assert v is not None and v.mirrored and v.confidence > 0.8
    assert np.allclose(_bounds(v.hit_polygon), BOX, atol=12)
    assert np.allclose(_bounds(v.query_polygon), (0, 0, 324, 324), atol=12)


def test_different_photos_do_not_verify(stored) -> None:
    for other in (data.chelsea(), data.coffee(), data.rocket()):
        assert verify_best(extract_query(Image.fromarray(other)), stored) is None


def test_featureless_images_never_verify_and_never_fail(stored) -> None:
    flat = extract_query(Image.new("RGB", (200, 200), (90, 90, 90)))
    assert len(flat[0]) == 0 and verify_best(flat, stored) is None
    empty_stored = extract(Image.new("RGB", (64, 64), "white"))
    assert verify_best(extract_query(Image.fromarray(data.astronaut())), empty_stored) is None


def test_a_candidate_of_another_kind_is_skipped_not_an_error(photo, stored) -> None:
    assert verify(extract(photo, kind="orb"), stored) is None


def test_confidence_is_monotone_and_bounded() -> None:
    grid = [[confidence(n, r) for r in (0.1, 0.3, 0.6, 1.0)] for n in range(0, 400, 7)]
    a = np.asarray(grid)
    assert a.min() == 0 and a.max() <= 1
    assert np.all(np.diff(a, axis=0) >= 0) and np.all(np.diff(a, axis=1) >= 0)


def test_features_read_back_from_the_store_verify_alike(photo, stored, tmp_path) -> None:
    from store.keypoints import KeypointStore

    store = KeypointStore.under(tmp_path)
    pid = "6f1c2d8e-1b2a-5c3d-9e4f-0a1b2c3d4e5f"
    store.put(pid, stored.kind, stored.width, stored.height, stored.xy, stored.descriptors)
    record = store.get(pid)
    assert record is not None
    query = extract_query(photo.crop(BOX))
    direct, mapped = verify_best(query, stored), verify_best(query, record)
    assert direct is not None and mapped is not None
    assert abs(direct.inliers - mapped.inliers) <= 2  # float16 positions
    assert np.allclose(_bounds(mapped.hit_polygon), BOX, atol=12)


def test_verify_many_finds_the_copy_among_candidates(photo, stored) -> None:
    others = [extract(Image.fromarray(x)) for x in (data.chelsea(), data.coffee())]
    flat = extract(Image.new("RGB", (64, 64), "white"))
    candidates = [others[0], None, flat, stored, others[1]]
    found = verify_many(extract_query(_jpeg(photo.crop(BOX), 40)), candidates)
    assert [v is not None for v in found] == [False, False, False, True, False]
    single = verify_best(extract_query(_jpeg(photo.crop(BOX), 40)), stored)
    assert single is not None and found[3] is not None
    assert found[3].inliers == single.inliers  # batching changes nothing


def test_orb_features_verify_too(photo) -> None:
    query = extract_query(photo.rotate(10, fillcolor=(0, 0, 0)), kind="orb")
    v = verify_best(query, extract(photo, kind="orb"))
    assert v is not None and v.confidence > 0.9
    assert verify_best(query, extract(Image.fromarray(data.coffee()), kind="orb")) is None
