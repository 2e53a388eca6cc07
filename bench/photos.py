"""A reproducible corpus of real photographs, built only from installed packages.

Tests and benchmarks need real photographic content (not synthetic noise, not drawings) that
any machine can rebuild without network access beyond its package manager and without
licence doubts. Every photo here ships inside a package: scikit-image and scikit-learn
(already dev dependencies) and a few Debian wallpaper packages, each selected by hand and
recorded with its licence. See bench/DATA.md for the sources, licences and counts.

Usage: ``python -m bench.photos OUT_DIR [--n 150]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

JPEG_QUALITY = 92
MANIFEST = "manifest.json"
# A tile must stay a usable search image on its own, the same floor as package_photos().
TILE_MIN_SIDE = 256
# |Normalised cross-correlation| of 32x32 grey thumbnails at or above which two images are
# one picture. Measured on these packages: resolution variants of a wallpaper score 1.00,
# recoloured variants 0.99 (mate's Ubuntu-Mate-Cold/-Warm), inverted dark variants -0.99;
# the closest two distinct photos of the corpus score 0.87 (lxqt fog, plasma DarkestHour).
# Dark variants that restyle an abstract render are not caught, but none is a photograph.
NEAR_DUPLICATE_CORR = 0.9
# Mean absolute difference between neighbouring pixels of a 64x64 grey thumbnail (0-255
# scale). Tiles below it are clear sky, fog, night or bokeh: smooth gradients that a search
# cannot tell apart from one another, so they are not worth a corpus slot. Judged by eye on
# the candidate tiles: under ~3.5 almost all are blank, above 4 almost all show a subject.
MIN_TILE_DETAIL = 4.0
SIGNATURE_SIDE = 32
DETAIL_SIDE = 64
# Tile positions in the order they are taken: centre first, because the subject of a
# photograph is usually there and the edges are more often sky or blur.
TILE_ORDER = {
    2: [(0, 0), (1, 1), (0, 1), (1, 0)],
    3: [(1, 1), (0, 0), (2, 2), (0, 2), (2, 0), (0, 1), (1, 0), (1, 2), (2, 1)],
}


@dataclass(frozen=True)
class Photo:
    """One real photograph shipped by a package."""

    name: str  # stable slug, unique within its source
    source: str  # the package that ships it (PyPI or Debian name)
    licence: str  # as stated by the package's copyright file or docs
    path: Path | None
    credit: str = ""  # photographer or holder, needed for CC BY attribution

    def load(self) -> Image.Image:
        """Decode the photo as an RGB image (greyscale photos get three equal channels)."""
        if self.path is None:
            raise FileNotFoundError(f"{self.source}:{self.name} has no file")
        with Image.open(self.path) as im:
            # Every selected file is opaque; dropping a constant alpha channel is lossless.
            return im.convert("RGB")

    @property
    def stem(self) -> str:
        return f"{self.source}-{self.name}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@dataclass(frozen=True)
class _Entry:
    file: str  # relative to the source's root
    licence: str
    credit: str = ""
    name: str = ""  # defaults to the slug of the file name


@dataclass(frozen=True)
class _Source:
    package: str
    root: Path | None  # None when the package is not installed
    entries: tuple[_Entry, ...]


# --- scikit-image: files bundled in the wheel's skimage/data (never the pooch fetchers) ----
# Kept: photographs taken with a camera, including through a telescope (Hubble), a fundus
# camera (retina) or a brightfield microscope (ihc), and the CC0 texture photographs
# (grass, gravel, brick). Left out: cell (a phase image computed from a hologram, not a
# photograph), motorcycle_right (the stereo partner of motorcycle_left, a near-duplicate),
# page and microaneurysms (under 256 px), text, horse, logo, color, phantom and the
# chessboards (drawings or synthetic), lfw_subset (25 px faces).
_SKIMAGE_BSD = "no per-image statement; ships in the scikit-image wheel (BSD-3-Clause)"
SKIMAGE_ENTRIES = (
    _Entry("astronaut.png", "public domain (NASA)", "NASA"),
    _Entry("camera.png", "CC0-1.0", "Lav Varshney"),
    _Entry("coffee.png", "CC0-1.0", "Rachel Michetti"),
    _Entry("chelsea.png", "CC0-1.0", "Stefan van der Walt"),
    _Entry("rocket.jpg", "public domain (SpaceX)", "SpaceX"),
    _Entry("hubble_deep_field.jpg", "public domain (NASA)", "NASA/ESA Hubble"),
    _Entry("retina.jpg", "CC0-1.0", "Mikael Häggström"),
    _Entry("motorcycle_left.png", _SKIMAGE_BSD, "Middlebury 2014 stereo dataset"),
    _Entry("coins.png", "no known copyright restrictions", "Brooklyn Museum"),
    _Entry("moon.png", _SKIMAGE_BSD),
    _Entry("grass.png", "CC0-1.0", "linolafett"),
    _Entry("gravel.png", "CC0-1.0", "CC0Textures"),
    _Entry("brick.png", "CC0-1.0", "CC0Textures"),
    _Entry("clock_motion.png", "public domain", "Stefan van der Walt"),
    _Entry("ihc.png", "no known copyright restrictions", "CMMI"),
)

# --- scikit-learn: sklearn/datasets/images (README.txt there gives the licence) ----------
SKLEARN_ENTRIES = (
    _Entry("china.jpg", "CC-BY-2.0", "danielbuechele (Flickr)"),
    _Entry("flower.jpg", "CC-BY-2.0", "vultilion (Flickr)"),
)

# --- Debian bookworm wallpaper packages ---------------------------------------------------
# Each list names the photographs only, judged by eye; abstract renders, illustrations and
# logos in the same packages are left out (DATA.md lists them). One file per picture: where a
# package ships several resolutions, the 2560x1600 one.
_PLASMA_LICENCE = "GPL-2+ (debian/copyright); LGPL-3 (wallpaper metadata.json)"
PLASMA_ENTRIES = tuple(
    # Named after the wallpaper's folder: every file in it is called <width>x<height>.
    _Entry(f"{d}/contents/images/2560x1600.jpg", _PLASMA_LICENCE, who, name=_slug(d))
    for d, who in (
        ("BytheWater", "Maciej Wiklo"),
        ("ColdRipple", "Risto Saukonpää"),
        ("ColorfulCups", "Dmitri Popov"),
        ("DarkestHour", "Risto Saukonpää"),
        ("EveningGlow", "Ian Hex"),
        ("FallenLeaf", "Martin Klapetek"),
        ("Grey", "Sigi Sagi"),
        ("Kite", "Risto Saukonpää"),
        ("OneStandsOut", "Risto Saukonpää"),
        ("Path", "Risto Saukonpää"),
        ("summer_1am", "Risto Saukonpää"),
    )
)
MATE_ENTRIES = (
    _Entry("Aqua.jpg", "GPL-2+", "Charles Barbin"),
    _Entry("Blinds.jpg", "GPL-2+", "Lennart Poettering, Andrea Cimitan"),
    _Entry("Dune.jpg", "GPL-2+", "Marco Cogoni, Hylke Bons"),
    _Entry("FreshFlower.jpg", "GPL-2+", "Jens Ansorg"),
    _Entry("Garden.jpg", "GPL-2+", "Charles Barbin"),
    _Entry("GreenMeadow.jpg", "GPL-2+", "Timothy Schellhase, Lapo Calamandrei"),
    _Entry("LadyBird.jpg", "GPL-2+", "Charles Barbin"),
    _Entry("RainDrops.jpg", "GPL-2+", "blackcombwhistler07"),
    _Entry("Storm.jpg", "GPL-2+", "Sergey Nazarov"),
    _Entry("TwoWings.jpg", "GPL-2+", "Charles Barbin, Hylke Bons"),
    _Entry("Wood.jpg", "GPL-2+", "Jean-François Fortin Tam"),
    _Entry("YellowFlower.jpg", "GPL-2+", "Charles Barbin"),
)
LOMIRI_1604_ENTRIES = (
    _Entry("Bridge_by_Sander_Klootwijk.jpg", "CC-BY-SA-4.0", "Sander Klootwijk"),
    _Entry("Dragonfly_by_Bolly.jpg", "CC-BY-SA-4.0", "Bolly"),
    _Entry("Picture_0B_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace"'),
    _Entry("Picture_1A_by_freespace.jpg", "CC-BY-4.0", 'Trevor "Freespace"'),
    _Entry("Wine_by_Jakkub_Mede.jpg", "CC-BY-4.0", "Jakub Mede"),
    _Entry("aitzgorri_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    _Entry("free_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich"),
    _Entry("friends_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    _Entry("greentock_by_Peter_Nerlich.jpg", "CC-BY-SA-4.0", "Peter Nerlich"),
    _Entry("life_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    _Entry("picosdeeuropa_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
    _Entry("seeding_by_Clements_Engelhardt.jpg", "CC0-1.0", "Clemens Engelhardt"),
    _Entry("sunset_by_Aitzol_Berasategi.jpg", "CC-BY-4.0", "Aitzol Berasategi"),
)
LOMIRI_2004_ENTRIES = (_Entry("Kleiber_by_Lukas_Baubkus.jpg", "CC-BY-SA-3.0", "Lukas Baubkus"),)
# debian/copyright covers these with "Files: *" (LGPL-2.1+); the upstream wallpapers/License
# file next to them says CC BY-SA 3.0. Both are recorded, the upstream one is the specific one.
_LXQT_LICENCE = "CC-BY-SA-3.0 (upstream wallpapers/License); LGPL-2.1+ (debian/copyright)"
LXQT_ENTRIES = (
    _Entry("Butterfly-Kenneth-Wimer.jpg", _LXQT_LICENCE, "Kenneth Wimer"),
    _Entry("Valendas.png", _LXQT_LICENCE, "LXQt Project Team"),
    _Entry("after-the-rain.jpg", _LXQT_LICENCE, "stefonarch"),
    _Entry("appleflower.png", _LXQT_LICENCE, "stefonarch"),
    _Entry("beam.png", _LXQT_LICENCE, "stefonarch"),
    _Entry("butterfly.png", _LXQT_LICENCE, "stefonarch"),
    _Entry("cloud.png", _LXQT_LICENCE, "LXQt Project Team"),
    _Entry("drop.png", _LXQT_LICENCE, "stefonarch"),
    _Entry("flowers.png", _LXQT_LICENCE, "stefonarch"),
    _Entry("fog.jpg", _LXQT_LICENCE, "stefonarch"),
    _Entry("this-is-not-windows.jpg", _LXQT_LICENCE, "stefonarch"),
)

# package -> (install root, entries). Order here is corpus order.
DEBIAN_SOURCES: dict[str, tuple[Path, tuple[_Entry, ...]]] = {
    "plasma-workspace-wallpapers": (Path("/usr/share/wallpapers"), PLASMA_ENTRIES),
    "mate-backgrounds": (Path("/usr/share/backgrounds/mate/nature"), MATE_ENTRIES),
    "lomiri-wallpapers-16.04": (Path("/usr/share/backgrounds"), LOMIRI_1604_ENTRIES),
    "lomiri-wallpapers-20.04": (Path("/usr/share/backgrounds"), LOMIRI_2004_ENTRIES),
    "lxqt-themes": (Path("/usr/share/lxqt/wallpapers"), LXQT_ENTRIES),
}
DEBIAN_PACKAGES = tuple(DEBIAN_SOURCES)


def _package_dir(module: str) -> Path | None:
    # find_spec locates the package without importing it: importing skimage costs seconds.
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _sources(debian: bool) -> list[_Source]:
    skimage_dir = _package_dir("skimage")
    sklearn_dir = _package_dir("sklearn")
    sources = [
        _Source("scikit-image", skimage_dir and skimage_dir / "data", SKIMAGE_ENTRIES),
        _Source(
            "scikit-learn", sklearn_dir and sklearn_dir / "datasets" / "images", SKLEARN_ENTRIES
        ),
    ]
    if debian:
        sources += [_Source(pkg, root, entries) for pkg, (root, entries) in DEBIAN_SOURCES.items()]
    return sources


def package_photos(min_side: int = 256, *, debian: bool = True) -> list[Photo]:
    """The selected photographs that are installed here, in a fixed order.

    Nothing is installed or downloaded: call ensure_debian_photos() first for the Debian
    sources. Photos whose shorter side is under ``min_side`` are left out.
    """
    photos: list[Photo] = []
    missing: Counter[str] = Counter()
    for src in _sources(debian):
        for entry in src.entries:
            path = src.root / entry.file if src.root is not None else None
            if path is None or not path.is_file():
                missing[src.package] += 1
                continue
            with Image.open(path) as im:  # reads the header only
                if min(im.size) < min_side:
                    log.debug("%s: %s is under %d px", src.package, entry.file, min_side)
                    continue
            name = entry.name or _slug(Path(entry.file).stem)
            photos.append(Photo(name, src.package, entry.licence, path, entry.credit))
    for package, count in missing.items():
        log.info("%s: %d selected photos not installed", package, count)
    return photos


def _dpkg_installed(package: str) -> bool:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return False
    return out.returncode == 0 and out.stdout.strip().endswith(" installed")


def ensure_debian_photos(packages: Sequence[str] = DEBIAN_PACKAGES) -> list[str]:
    """Install the Debian wallpaper packages that are missing; return those installed.

    Idempotent and quiet: does nothing when all are present. Installs only as root or
    through passwordless sudo; otherwise, or on a system without apt, it logs a warning
    and returns what is already there, so callers build a smaller corpus instead of failing.
    """
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return list(packages)
    apt = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    update = ["apt-get", "update", "-q"]
    if shutil.which("apt-get") is None:
        log.warning("no apt-get: cannot install %s", " ".join(missing))
        return [p for p in packages if p not in missing]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            log.warning("not root and no sudo: cannot install %s", " ".join(missing))
            return [p for p in packages if p not in missing]
        # -n: fail at once rather than wait for a password nobody will type.
        apt, update = ["sudo", "-n", *apt], ["sudo", "-n", *update]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(apt, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        # Fresh containers often have no package lists yet: refresh once and retry.
        subprocess.run(update, capture_output=True, text=True, env=env, check=False)
        result = subprocess.run(apt, capture_output=True, text=True, env=env, check=False)
    present = [p for p in packages if _dpkg_installed(p)]
    if len(present) < len(packages):
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        log.warning(
            "could not install %s: %s",
            " ".join(p for p in packages if p not in present),
            " / ".join(tail) or f"exit {result.returncode}",
        )
    return present


def _signature(img: Image.Image) -> tuple[np.ndarray, float]:
    """Unit-norm, zero-mean 32x32 grey thumbnail, and the image's detail (MIN_TILE_DETAIL).

    The dot product of two signatures is their normalised cross-correlation: insensitive to
    resolution, brightness and contrast, so one picture's variants match each other.
    """
    grey = img.convert("L").resize((DETAIL_SIDE, DETAIL_SIDE), Image.Resampling.BOX)
    g = np.asarray(grey, dtype=np.float64)
    detail = float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())
    k = DETAIL_SIDE // SIGNATURE_SIDE
    a = g.reshape(SIGNATURE_SIDE, k, SIGNATURE_SIDE, k).mean(axis=(1, 3)).ravel()
    a = a - a.mean()
    norm = float(np.linalg.norm(a))
    return (a / norm if norm > 1e-9 else a), detail


def _near_duplicate(sig: np.ndarray, kept: list[np.ndarray]) -> float | None:
    if not kept:
        return None
    corr = np.stack(kept) @ sig
    # abs(): a wallpaper's dark variant can be the negative of its light one (lxqt-themes'
    # origami-dark and origami-light correlate at -0.99).
    best = float(np.abs(corr).max())
    return best if best >= NEAR_DUPLICATE_CORR else None


def _fit(img: Image.Image, max_side: int) -> Image.Image:
    w, h = img.size
    scale = max_side / max(w, h)
    if scale >= 1:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.Resampling.LANCZOS)


def _tile_boxes(size: tuple[int, int]) -> list[tuple[int, int, tuple[int, int, int, int]]]:
    """(row, col, box) of a non-overlapping grid: 3x3 where tiles stay >= 256 px, else 2x2."""
    w, h = size
    for grid in (3, 2):
        if min(w, h) // grid >= TILE_MIN_SIDE:
            return [
                (r, c, (c * w // grid, r * h // grid, (c + 1) * w // grid, (r + 1) * h // grid))
                for r, c in TILE_ORDER[grid]
            ]
    return []


def _save(img: Image.Image, path: Path, max_side: int) -> None:
    # No EXIF, fixed quality and no optimisation pass: identical bytes on every run.
    _fit(img, max_side).save(path, "JPEG", quality=JPEG_QUALITY)


def build_corpus(
    out_dir: Path,
    n_min: int = 150,
    max_side: int = 1024,
    *,
    photos: Sequence[Photo] | None = None,
) -> list[Path]:
    """Write JPEG copies of the distinct installed photos to ``out_dir``; return their paths.

    Files are ``<source>-<name>.jpg`` (quality 92, longer side at most ``max_side``). A photo
    that is a near-duplicate of one already written is skipped. If fewer than ``n_min``
    remain, non-overlapping tiles of the larger photos (``<source>-<name>-tile<r><c>.jpg``,
    each >= 256 px) are added, round-robin over photos so no single picture dominates,
    until ``n_min`` is reached or tiles run out. ``manifest.json`` records every file with
    its source, licence and credit; files a previous run listed there and this one did not
    write are removed, so the directory always holds exactly one build.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if photos is None:
        photos = package_photos()
    kept: list[np.ndarray] = []
    records: list[dict[str, object]] = []
    written: list[Path] = []
    # (photo, row, col, box, signature, detail) for every tile candidate, per photo.
    tile_pool: list[list[tuple[Photo, int, int, tuple[int, int, int, int], np.ndarray, float]]]
    tile_pool = []

    for photo in photos:
        img = photo.load()
        sig, _ = _signature(img)
        dup = _near_duplicate(sig, kept)
        if dup is not None:
            log.info("skip %s: near-duplicate (corr %.3f)", photo.stem, dup)
            continue
        kept.append(sig)
        path = out_dir / f"{photo.stem}.jpg"
        _save(img, path, max_side)
        written.append(path)
        records.append(_record(path, photo, None))
        # Tile signatures now, while the image is decoded: tiles are only written when
        # needed, and deciding which ones needs only these 32x32 thumbnails.
        candidates = []
        for r, c, box in _tile_boxes(img.size):
            tsig, tdetail = _signature(img.crop(box))
            candidates.append((photo, r, c, box, tsig, tdetail))
        tile_pool.append(candidates)
        del img

    n_originals = len(written)
    chosen: dict[Photo, list[tuple[int, int, tuple[int, int, int, int]]]] = {}
    if n_originals < n_min:
        rounds = max((len(t) for t in tile_pool), default=0)
        # Round-robin: every photo's first tile, then every photo's second, and so on.
        queue = [t[k] for k in range(rounds) for t in tile_pool if k < len(t)]
        n_tiles = 0
        for photo, r, c, box, tsig, tdetail in queue:
            if n_originals + n_tiles >= n_min:
                break
            if tdetail < MIN_TILE_DETAIL or _near_duplicate(tsig, kept) is not None:
                continue
            kept.append(tsig)
            chosen.setdefault(photo, []).append((r, c, box))
            n_tiles += 1
        if n_originals + n_tiles < n_min:
            log.warning(
                "only %d images (%d tiles); wanted %d", n_originals + n_tiles, n_tiles, n_min
            )

    for photo in photos:  # photo order, so each source image is decoded once more at most
        if photo not in chosen:
            continue
        img = photo.load()
        for r, c, box in sorted(chosen[photo]):
            path = out_dir / f"{photo.stem}-tile{r}{c}.jpg"
            _save(img.crop(box), path, max_side)
            written.append(path)
            records.append(_record(path, photo, box))
        del img

    _write_manifest(out_dir, records)
    return written


def _record(path: Path, photo: Photo, box: tuple[int, int, int, int] | None) -> dict[str, object]:
    return {
        "file": path.name,
        "source": photo.source,
        "name": photo.name,
        "licence": photo.licence,
        "credit": photo.credit,
        "original": _portable(photo.path),
        "tile_box": list(box) if box else None,
    }


def _portable(path: Path | None) -> str | None:
    # A venv's location differs between machines; the path inside site-packages does not,
    # and keeping it out of the manifest keeps the manifest identical everywhere.
    if path is None:
        return None
    parts = path.parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    return str(path)


def _write_manifest(out_dir: Path, records: list[dict[str, object]]) -> None:
    manifest = out_dir / MANIFEST
    now = {str(r["file"]) for r in records}
    if manifest.is_file():
        try:
            previous = json.loads(manifest.read_text())
        except (OSError, ValueError):
            previous = []
        # Only files this builder wrote before (listed in its manifest) are ever deleted.
        for rec in previous if isinstance(previous, list) else []:
            name = str(rec.get("file", "")) if isinstance(rec, dict) else ""
            if name and name not in now and "/" not in name:
                (out_dir / name).unlink(missing_ok=True)
    manifest.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")


def summarise(paths: Iterable[Path]) -> dict[str, object]:
    """The CLI's JSON: counts of files, originals, tiles and files per source package."""
    paths = list(paths)
    out_dir = paths[0].parent if paths else None
    by_source: Counter[str] = Counter()
    originals: Counter[str] = Counter()
    if out_dir is not None:
        for rec in json.loads((out_dir / MANIFEST).read_text()):
            by_source[rec["source"]] += 1
            originals[rec["source"]] += rec["tile_box"] is None
    n_orig = sum(originals.values())
    return {
        "n": len(paths),
        "originals": n_orig,
        "tiles": len(paths) - n_orig,
        "sources": dict(by_source),
        "originals_by_source": dict(originals),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.photos", description=__doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--n", type=int, default=150, help="minimum number of images")
    parser.add_argument("--max-side", type=int, default=1024)
    parser.add_argument(
        "--no-install", action="store_true", help="use only what is installed; run no apt"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    if not args.no_install:
        ensure_debian_photos()
    paths = build_corpus(args.out_dir, n_min=args.n, max_side=args.max_side)
    print(json.dumps(summarise(paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
