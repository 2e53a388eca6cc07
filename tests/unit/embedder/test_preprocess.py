"""Model input preparation: the centre crop, normalisation, and extreme shapes."""

from __future__ import annotations

import numpy as np
from embedder_test_helpers import solid
from PIL import Image

from embedder.preprocess import IMAGENET_MEAN, IMAGENET_STD, InputSpec, resize_center_crop, to_input

SPEC = InputSpec(resize=232, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def test_input_shape_dtype_and_normalisation() -> None:
    x = to_input(solid((255, 0, 0), (300, 200)), SPEC)
    assert x.shape == (3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    expected = [(1 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], -IMAGENET_MEAN[1] / IMAGENET_STD[1]]
    np.testing.assert_allclose(x[:2, 100, 100], expected, rtol=1e-5)


def test_centre_crop_keeps_the_middle_of_a_wide_image() -> None:
    img = solid((0, 0, 255), (900, 300))  # blue sides...
    img.paste((0, 255, 0), (300, 0, 600, 300))  # ...and a green middle square
    out = resize_center_crop(img, 232, 224, Image.Resampling.BILINEAR)
    assert out.size == (224, 224)
    assert np.asarray(out)[..., 1].min() > 200  # all green: the blue sides are cropped away


def test_extreme_shapes_stay_cheap() -> None:
    for size in ((1, 10_000), (10_000, 1), (1, 1), (3, 5)):
        x = to_input(solid((10, 20, 30), size), SPEC)
        assert x.shape == (3, 224, 224)
