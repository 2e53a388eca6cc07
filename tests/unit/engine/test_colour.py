"""The Lab k-means palette and the colour filter's matching."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from embedder.palette import delta_e, dominant_colours, lab_to_rgb, rgb_to_lab
from engine.colour import PaletteIndex, colour_hex, colour_names, parse_colour
from engine.errors import BadInput


def test_lab_round_trips_and_matches_reference_values() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (500, 3))
    assert np.abs(lab_to_rgb(rgb_to_lab(rgb)) - rgb).max() < 1e-6
    # CIE Lab of sRGB red and white (D65), as published.
    assert np.allclose(rgb_to_lab(np.array([255, 0, 0])), [53.24, 80.09, 67.20], atol=0.01)
    assert np.allclose(rgb_to_lab(np.array([255, 255, 255])), [100, 0, 0], atol=1e-3)


def test_palette_gives_flat_colours_back_largest_first() -> None:
    img = Image.new("RGB", (100, 100), (20, 40, 210))
    img.paste((220, 20, 20), (0, 0, 100, 30))  # 30 % red, 70 % blue
    assert dominant_colours(img) == ["#1428d2", "#dc1414"]
    assert dominant_colours(Image.new("L", (10, 10), 128)) == ["#808080"]


def test_palette_is_deterministic_with_at_most_five_colours() -> None:
    pixels = np.random.default_rng(3).integers(0, 256, (80, 120, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    first = dominant_colours(img)
    assert first == dominant_colours(img)
    assert len(first) == 5 and all(c.startswith("#") and len(c) == 7 for c in first)


def test_parse_colour_accepts_hex_and_css_names() -> None:
    assert np.allclose(parse_colour("#ff0000"), parse_colour("f00"))
    assert np.allclose(parse_colour("red"), parse_colour("#FF0000"))
    assert colour_hex("Dark Slate Gray") == "#2f4f4f"
    assert colour_hex(" teal ") == "#008080"
    for bad in ("reddish", "#12345", "", "#gg0000"):
        with pytest.raises(BadInput) as caught:
            parse_colour(bad)
        # A sentence for a designer, not a validator's output.
        assert caught.value.detail.startswith("Colour must look like #a1b2c3 or a colour name")


def test_colour_names_come_from_css() -> None:
    names = colour_names()
    assert len(names) == 147 and {"teal", "salmon", "darkslategray"} <= set(names)


def test_palette_index_finds_images_with_a_near_colour() -> None:
    index = PaletteIndex.build(
        (0, 3),
        [
            ("red", ["#dc1414", "#ffffff"]),
            ("blue", ["#1428d2"]),
            ("none", []),
            ("junk", ["not a colour"]),
        ],
    )
    assert index.ids == ["red", "blue"]
    assert index.near(parse_colour("#e01010"), 10) == ["red"]
    assert index.near(parse_colour("#fafafa"), 5) == ["red"]
    assert index.near(parse_colour("#00ff00"), 20) == []
    assert float(delta_e(parse_colour("#000000"), parse_colour("#ffffff"))) == pytest.approx(100)
