"""embedder.layout: the layout evidence for a thumbnail query (issue 18)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from skimage import data

from embedder import layout


def _thumbnail(img: Image.Image, side: int = 64, blur: float = 1.0) -> Image.Image:
    small = img.copy()
    small.thumbnail((side, side), Image.Resampling.BICUBIC)
    return small.filter(ImageFilter.GaussianBlur(blur))


def test_a_blurred_thumbnail_correlates_with_its_source_and_not_with_others() -> None:
    photos = [Image.fromarray(f()) for f in (data.astronaut, data.coffee, data.chelsea)]
    stored = [layout.thumb(p) for p in photos]
    assert all(t.dtype == np.uint8 and t.shape == (layout.THUMB_BYTES,) for t in stored)
    for i, photo in enumerate(photos):
        ncc = layout.correlations(layout.thumb(_thumbnail(photo)), [*stored, None])
        assert ncc[i] > 0.95 and np.isnan(ncc[-1])
        assert np.delete(ncc[:-1], i).max() < 0.6
        assert layout.distinct_match(ncc) == i


def test_look_alikes_that_sit_together_give_no_match() -> None:
    """A catalogue of near-identical silhouettes: the right one correlates best, but not
    clearly above the others, so no candidate gets layout evidence."""
    shapes = []
    for r in (20, 21, 22, 23):
        img = np.zeros((128, 128), np.uint8)
        yy, xx = np.mgrid[:128, :128]
        img[(yy - 64) ** 2 + (xx - 64) ** 2 < (r * 2) ** 2] = 230
        shapes.append(Image.fromarray(img))
    ncc = layout.correlations(
        layout.thumb(_thumbnail(shapes[1])), [layout.thumb(s) for s in shapes]
    )
    assert np.nanmin(ncc) > layout.MIN_NCC  # all look alike
    assert layout.distinct_match(ncc) is None


def test_flat_pictures_and_weak_correlations_are_no_evidence() -> None:
    flat = np.full(layout.THUMB_BYTES, 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, layout.THUMB_BYTES).astype(np.uint8)
    assert np.isnan(layout.correlations(flat, [noise])).all()
    assert np.isnan(layout.correlations(noise, [flat])).all()
    assert layout.distinct_match(np.asarray([0.8, 0.1], np.float32)) is None  # under MIN_NCC
    assert layout.distinct_match(np.asarray([0.95, np.nan], np.float32)) == 0
    assert layout.distinct_match(np.asarray([], np.float32)) is None


def test_shape_and_confidence() -> None:
    assert layout.same_shape((64, 48), (1024, 768)) and layout.same_shape((64, 21), (1000, 333))
    assert not layout.same_shape((64, 64), (1024, 768)) and not layout.same_shape((0, 5), (5, 5))
    assert layout.is_small(64, 48) and not layout.is_small(300, 100)
    assert layout.confidence(layout.MIN_NCC) == 0.0
    assert 0 < layout.confidence(0.95) < layout.confidence(1.0) == layout.MAX_CONFIDENCE < 0.5


def test_the_same_picture_and_a_picture_with_something_pasted_on_it() -> None:
    import io

    photo = Image.fromarray(data.astronaut())
    buf = io.BytesIO()
    photo.save(buf, "JPEG", quality=25)
    recoded = Image.open(io.BytesIO(buf.getvalue()))
    page = photo.copy()
    page.paste(Image.fromarray(data.coffee()).resize((200, 140)), (280, 340))  # 11 % of it
    stored = layout.thumb(photo)
    assert layout.same_picture(layout.thumb(recoded), stored)
    assert layout.same_picture(layout.thumb(photo.convert("L")), stored)  # greyscale
    # The pasted design leaves the photo's layout correlated, but one part of it differs.
    assert float(layout.correlations(layout.thumb(page), [stored])[0]) > 0.8
    assert not layout.same_picture(layout.thumb(page), stored)
    assert not layout.same_picture(layout.thumb(page), None)
