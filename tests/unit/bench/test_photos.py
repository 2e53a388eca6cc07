"""The photo corpus builder, on the pip-installed sources only (no apt, runs in seconds)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from PIL import Image

from bench.photos import Photo, build_corpus, package_photos

# The curated pip sources (bench/DATA.md): 15 scikit-image photographs, 2 scikit-learn.
SKIMAGE = [
    "astronaut",
    "camera",
    "coffee",
    "chelsea",
    "rocket",
    "hubble-deep-field",
    "retina",
    "motorcycle-left",
    "coins",
    "moon",
    "grass",
    "gravel",
    "brick",
    "clock-motion",
    "ihc",
]
ORIGINALS = {f"scikit-image-{n}.jpg" for n in SKIMAGE} | {
    "scikit-learn-china.jpg",
    "scikit-learn-flower.jpg",
}
N = len(ORIGINALS) + 7  # forces a few tiles


def _build(out: Path) -> list[Path]:
    photos = package_photos(debian=False)
    # A second copy of a photo under another name must be caught as a near-duplicate.
    astronaut = next(p for p in photos if p.name == "astronaut")
    copy = Photo("astronaut-copy", astronaut.source, astronaut.licence, astronaut.path)
    return build_corpus(out, n_min=N, max_side=512, photos=[*photos, copy])


def test_pip_sources_build_distinct_rgb_photos_deterministically(tmp_path: Path) -> None:
    paths = _build(tmp_path / "a")
    names = [p.name for p in paths]

    assert len(names) == N == len(set(names))
    originals = {n for n in names if "-tile" not in n}
    assert originals == ORIGINALS  # the copy was dropped, every curated photo is present
    tiles = [n for n in names if "-tile" in n]
    assert len(tiles) == N - len(ORIGINALS)
    assert all(
        re.fullmatch(r"scikit-(image|learn)-[a-z0-9-]+-tile[0-2][0-2]\.jpg", n) for n in tiles
    )
    # Every tile names an original it was cut from.
    assert all(re.sub(r"-tile\d\d", "", n) in originals for n in tiles)

    digests = set()
    for path in paths:
        with Image.open(path) as im:
            im.load()  # full decode, not just the header
            assert im.format == "JPEG" and im.mode == "RGB"
            assert min(im.size) >= 256 and max(im.size) <= 512
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    assert len(digests) == len(paths)  # no two files are byte-identical

    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert [r["file"] for r in manifest] == names
    assert all(r["licence"] for r in manifest)

    # Same inputs, same files, byte for byte.
    again = _build(tmp_path / "b")
    assert [p.name for p in again] == names
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(paths, again, strict=True))
