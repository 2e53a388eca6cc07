"""The HSV histogram model."""

from __future__ import annotations

import numpy as np
from embedder_test_helpers import cosine, recompressed, solid
from PIL import Image

from embedder.hsv import HsvHistogram, downscale, hsv_histogram


def test_identity_and_shape() -> None:
    model = HsvHistogram()
    model.load()
    assert (model.role, model.name, model.dim) == ("hsv", "hsv-8x8x8", 512)
    assert model.weights.source == "none" and not model.weights.fallback
    v = model.embed([model.preprocess(solid((10, 20, 30))), model.preprocess(solid((0, 0, 0)))])
    assert v.shape == (2, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    assert (v >= 0).all()
    assert model.embed([]).shape == (0, 512)


def test_colour_sensitivity() -> None:
    red, blue = hsv_histogram(solid((220, 20, 20))), hsv_histogram(solid((20, 20, 220)))
    assert cosine(red, blue) < 0.05
    same_red_bigger = hsv_histogram(solid((220, 20, 20), (1000, 700)))
    assert cosine(red, same_red_bigger) > 0.999


def test_half_red_half_blue_sits_between() -> None:
    img = solid((220, 20, 20), (100, 100))
    img.paste((20, 20, 220), (50, 0, 100, 100))
    mixed = hsv_histogram(img)
    red, blue = hsv_histogram(solid((220, 20, 20))), hsv_histogram(solid((20, 20, 220)))
    assert 0.6 < cosine(mixed, red) < 0.8 and 0.6 < cosine(mixed, blue) < 0.8  # sqrt(1/2)


def test_a_photo_and_its_recompressed_copy(photos: dict[str, Image.Image]) -> None:
    cat = hsv_histogram(photos["chelsea"])
    assert cosine(cat, hsv_histogram(recompressed(photos["chelsea"]))) > 0.95
    assert cosine(cat, hsv_histogram(photos["astronaut"])) < 0.8


def test_tiny_and_grey_images() -> None:
    for img in (solid((7, 7, 7), (1, 1)), Image.new("L", (5, 3), 128).convert("RGB")):
        v = hsv_histogram(img)
        assert v.shape == (512,) and abs(np.linalg.norm(v) - 1) < 1e-6


def test_downscale_keeps_aspect_and_small_images() -> None:
    small = solid((1, 2, 3), (50, 20))
    assert downscale(small, 128) is small
    assert downscale(solid((1, 2, 3), (1000, 250)), 128).size == (128, 32)
    assert downscale(solid((1, 2, 3), (1, 5000)), 128).size == (1, 128)
