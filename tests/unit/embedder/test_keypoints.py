"""embedder.keypoints: compact local features, decoded safely, empty for featureless images."""

from __future__ import annotations

import numpy as np
import pytest
from embedder_test_helpers import encode
from PIL import Image
from skimage import data

from embedder.errors import DecodeError
from embedder.keypoints import RECORD_BUDGET, extract, extract_bytes, max_keypoints
from store.keypoints import encode as encode_record


@pytest.mark.parametrize("kind", ["sift", "orb"])
def test_a_busy_photo_fits_the_record_budget(kind) -> None:
    busy = Image.fromarray(data.gravel()).convert("RGB")  # texture: thousands of keypoints
    f = extract(busy, kind=kind)
    assert len(f) == max_keypoints(kind) > 100
    record = encode_record(f.kind, f.width, f.height, f.xy, f.descriptors)
    assert len(record) <= RECORD_BUDGET
    assert f.descriptors.dtype == np.uint8 and f.xy.shape == (len(f), 2)


def test_positions_are_in_the_original_pixel_space() -> None:
    big = Image.fromarray(data.astronaut()).resize((1600, 1600))
    f = extract(big)  # detected at 640 px, reported at 1600
    assert (f.width, f.height) == (1600, 1600)
    assert f.xy.max() > 1000 and f.xy.min() >= 0 and f.xy.max() <= 1600
    # spread over the picture: every quadrant holds some of the kept keypoints
    quadrant = (f.xy[:, 0] > 800).astype(int) * 2 + (f.xy[:, 1] > 800)
    assert set(quadrant.tolist()) == {0, 1, 2, 3}


@pytest.mark.parametrize("size", [(300, 200), (5, 5), (1, 1)])
def test_flat_or_tiny_images_give_empty_features(size) -> None:
    for kind in ("sift", "orb"):
        f = extract(Image.new("RGB", size, (200, 30, 30)), kind=kind)
        assert len(f) == 0 and f.descriptors.shape[1] in (128, 32)
        assert (f.width, f.height) == size


def test_bytes_are_decoded_upright_and_bad_bytes_raise_decode_error() -> None:
    photo = Image.fromarray(data.chelsea())  # 451 x 300
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees
    f = extract_bytes(encode(photo, "JPEG", quality=90, exif=exif.tobytes()))
    assert (f.width, f.height) == (300, 451) and len(f) > 50
    assert f.xy[:, 0].max() <= 300 and f.xy[:, 1].max() <= 451
    with pytest.raises(DecodeError):
        extract_bytes(b"not an image")


def test_cv2_is_imported_lazily_and_only_in_embedder() -> None:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    for package in ("api", "cli", "engine", "store", "migrations", "common", "embedder"):
        for path in (root / package).rglob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.lstrip().startswith(("import cv2", "from cv2")):
                    assert package == "embedder", f"{path}: cv2 outside embedder"
                    assert line.startswith(" "), f"{path}: cv2 imported at module level"
    code = (
        "import sys, embedder.keypoints, embedder.verify, store.keypoints;"
        "assert 'cv2' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
