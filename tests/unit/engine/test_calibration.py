"""engine.calibration: the shipped file and the lookup rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.calibration import CALIBRATION_FILE, defaults_for, load_calibration, set_key


def _write(tmp_path: Path, sets: dict[str, object]) -> Path:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"version": 1, "sets": sets}))
    return path


def test_shipped_file_calibrates_the_offline_models() -> None:
    weights, threshold = defaults_for({"cnn": "effnet-lite0", "hsv": "hsv-8x8x8"})
    assert set(weights) == {"cnn", "hsv"} and weights["cnn"] > 0
    assert threshold is not None and 0.0 < threshold < 1.0
    # Every entry states what it was measured with.
    for key, entry in load_calibration(CALIBRATION_FILE)["sets"].items():
        assert key == set_key(entry["roles"])
        threshold = entry["near_duplicate_threshold"]
        assert threshold is None or 0.0 < threshold <= 1.0


def test_lookup_by_names_and_by_roles(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "effnet-lite0+hsv-8x8x8": {
                "roles": {"cnn": "effnet-lite0", "hsv": "hsv-8x8x8"},
                "weights": {"cnn": 1.0, "hsv": 0.25},
                "near_duplicate_threshold": 0.8,
            },
            "resnet50+hsv-8x8x8": {
                "roles": {"cnn": "resnet50", "hsv": "hsv-8x8x8"},
                "weights": {"cnn": 1.0, "hsv": 0.5},
                "near_duplicate_threshold": 0.7,
            },
            "hsv-8x8x8": {"roles": {"hsv": "hsv-8x8x8"}, "weights": {"hsv": 1.0}},
        },
    )
    assert defaults_for({"hsv": "hsv-8x8x8", "cnn": "resnet50"}, path=path) == (
        {"hsv": 0.5, "cnn": 1.0},
        0.7,
    )
    # Roles alone: unique match -> used; two CNNs calibrated -> ambiguous -> uncalibrated.
    assert defaults_for(["hsv"], path=path) == ({"hsv": 1.0}, None)
    assert defaults_for(["cnn", "hsv"], path=path) == ({"cnn": 1.0, "hsv": 1.0}, None)


def test_unknown_set_gets_equal_weights_and_no_threshold(tmp_path: Path) -> None:
    path = _write(tmp_path, {})
    active = {"clip": "clip-vit-b-32", "cnn": "resnet50", "hsv": "hsv-8x8x8"}
    assert defaults_for(active, path=path) == ({"clip": 1.0, "cnn": 1.0, "hsv": 1.0}, None)


@pytest.mark.parametrize("content", ["not json", "[]", '{"sets": 3}'])
def test_broken_file_degrades_to_equal_weights(tmp_path: Path, content: str) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(content)
    assert defaults_for({"hsv": "hsv-8x8x8"}, path=path) == ({"hsv": 1.0}, None)


def test_all_zero_weights_are_ignored(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {"hsv-8x8x8": {"roles": {"hsv": "hsv-8x8x8"}, "weights": {"hsv": 0}}},
    )
    assert defaults_for({"hsv": "hsv-8x8x8"}, path=path) == ({"hsv": 1.0}, None)
