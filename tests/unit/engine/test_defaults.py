"""engine.defaults: the one source of search defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.defaults import (
    DEFAULT_K,
    K_CHOICES,
    MAX_K,
    UNCALIBRATED_DUPLICATES_THRESHOLD,
    search_defaults,
)


def test_the_offline_models_are_calibrated_and_not_equal_weights() -> None:
    d = search_defaults({"cnn": "effnet-lite0", "hsv": "hsv-8x8x8"})
    assert d.calibrated and d.weights == {"cnn": 1.0, "hsv": 0.1}
    assert d.near_duplicate_threshold == pytest.approx(0.7072)
    assert d.duplicates_threshold == d.near_duplicate_threshold
    assert d.source == "calibration.json [effnet-lite0+hsv-8x8x8]"
    assert (d.k, d.max_k) == (DEFAULT_K, MAX_K) and DEFAULT_K in K_CHOICES


def test_an_unknown_model_set_weighs_every_model_one_and_never_badges(tmp_path: Path) -> None:
    d = search_defaults({"clip": "clip-vit-b-32", "cnn": "resnet50"})
    assert d.weights == {"clip": 1.0, "cnn": 1.0}
    assert not d.calibrated and d.near_duplicate_threshold is None
    assert d.duplicates_threshold == UNCALIBRATED_DUPLICATES_THRESHOLD
    assert d.source == "uncalibrated [clip-vit-b-32+resnet50]"
    assert not d.is_near_duplicate({"clip": 1.0, "cnn": 1.0})  # no measurement, no badge


def test_roles_are_read_in_role_order_whatever_the_mapping_order(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    entry = {"weights": {"cnn": 1.0, "hsv": 0.5}, "near_duplicate_threshold": 0.8}
    path.write_text(json.dumps({"sets": {"a+b": entry}}))
    d = search_defaults({"hsv": "b", "cnn": "a"}, path=path)
    assert list(d.models) == ["cnn", "hsv"] and d.weights == {"cnn": 1.0, "hsv": 0.5}


def test_the_badge_follows_the_calibrated_fusion_not_the_ranking_weights() -> None:
    d = search_defaults({"cnn": "effnet-lite0", "hsv": "hsv-8x8x8"})
    # Same colours, different shape: what colour-only ranking weights would put first.
    colour_twin = {"cnn": 0.30, "hsv": 0.99}
    assert d.fused(colour_twin) == pytest.approx((0.30 + 0.1 * 0.99) / 1.1)
    assert not d.is_near_duplicate(colour_twin)
    assert d.is_near_duplicate({"cnn": 0.95, "hsv": 0.6})
    assert not d.is_near_duplicate({"hsv": 1.0})  # a missing cosine counts as 0
