"""The data of bench/quality.py, built from installed packages only and the same everywhere.

Copy detection: the database holds the source photos and the distractors; the queries are
edited copies of the sources (bench/quality_edits.py) and each query's one relevant item is
its source. Real photos are scarce (65 in the packages of bench/DATA.md), so the distractors
are (a) a few whole photos held out of the sources, (b) non-overlapping tiles of those
held-out photos at several grid sizes, and (c) Fashion-MNIST product images, upscaled. (a) and
(b) are the hard, photographic negatives; (c) is the bulk and is easy. bench/QUALITY.md says
so next to the figures.

Category retrieval: Fashion-MNIST test images as queries against a slice of its train set.

Images are made on demand (``iter_images``), never all held in memory: the queries alone
would take gigabytes decoded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from bench.photos import Photo, build_corpus, ensure_debian_photos, package_photos
from bench.quality_edits import EDITS, edit_rng

log = logging.getLogger(__name__)

FMNIST_PACKAGE = "dataset-fashion-mnist"
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_SIDE = 224  # upscaled so every method sees an image of ordinary size
FMNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
TILE_GRIDS = (2, 3, 4, 5)  # non-overlapping within a grid; grids overlap one another
TILE_MIN_SIDE = 224
# One held-out photo per this many, spread over the corpus order (so over the packages).
HOLD_OUT_EVERY = 13
SOURCE_MAX_SIDE = 1024  # the size bench.photos writes: an ordinary library file
DATA_VERSION = 1  # bump when an edit or the composition changes: it keys the caches


@dataclass(frozen=True)
class Item:
    """One image of the benchmark, made on demand by ``iter_images``."""

    key: str  # unique, stable: it names the image in caches and reports
    kind: str  # 'source' | 'photo' | 'tile' | 'fmnist' | 'query'
    path: Path | None = None  # source / photo / tile: the file or the full-size original
    box: tuple[int, int, int, int] | None = None  # tile: the crop box in the original
    fm: tuple[str, int] | None = None  # fmnist: (split, index)
    source: int = -1  # query: index of its source (= its relevant db row)
    edit: str = ""  # query: the edit's name


@dataclass
class Dataset:
    db: list[Item]  # sources first (row i is source i), then distractors
    queries: list[Item]
    source_split: list[str]  # 'train' | 'test' per source
    fm_db: list[Item] = field(default_factory=list)
    fm_queries: list[Item] = field(default_factory=list)
    fm_db_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fm_query_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    composition: dict[str, object] = field(default_factory=dict)

    @property
    def n_sources(self) -> int:
        return len(self.source_split)

    def query_sources(self) -> np.ndarray:
        return np.asarray([q.source for q in self.queries], dtype=np.int64)

    def query_split(self) -> np.ndarray:
        return np.asarray([self.source_split[q.source] for q in self.queries])

    def table(self) -> list[Item]:
        """Every distinct image once, in a fixed order (the row order of cached vectors)."""
        seen: dict[str, Item] = {}
        for item in [*self.db, *self.queries, *self.fm_db, *self.fm_queries]:
            seen.setdefault(item.key, item)
        return list(seen.values())

    def fingerprint(self) -> str:
        text = json.dumps([DATA_VERSION, [i.key for i in self.table()]])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def split_of(stem: str) -> str:
    """A source's split from its name alone, so adding a photo never moves another."""
    return "train" if hashlib.sha256(stem.encode()).digest()[0] % 2 == 0 else "test"


def held_out_indices(n: int) -> list[int]:
    n_hold = max(1, n // HOLD_OUT_EVERY) if n > 1 else 0
    return sorted({min(n - 1, round((k + 0.5) * n / n_hold)) for k in range(n_hold)})


def build_dataset(
    out_dir: Path,
    *,
    n_sources: int | None = None,
    n_distractors: int = 5000,
    fm_db: int = 6000,
    fm_queries: int = 2000,
    install: bool = True,
    photos: Sequence[Photo] | None = None,
) -> Dataset:
    """Write the photo corpus under ``out_dir`` (bench.photos) and describe every image."""
    if install:
        ensure_debian_photos()
        ensure_debian_photos([FMNIST_PACKAGE])
    all_photos = list(photos) if photos is not None else package_photos()
    by_stem = {p.stem: p for p in all_photos}
    # The originals as a library would hold them (JPEG 92, <= 1024 px); near-duplicate
    # packages are dropped here, so no two sources are one picture.
    files = build_corpus(out_dir / "photos", n_min=0, max_side=SOURCE_MAX_SIDE, photos=all_photos)
    hold = set(held_out_indices(len(files)))
    sources = [f for i, f in enumerate(files) if i not in hold]
    held_files = [f for i, f in enumerate(files) if i in hold]
    held = [by_stem[f.stem] for f in held_files]
    if n_sources is not None:
        sources = sources[:n_sources]
    if len(sources) < 60:
        log.warning("only %d source photos (the benchmark wants >= 60)", len(sources))

    db = [Item(f"source/{f.stem}", "source", path=f) for f in sources]
    queries = [
        Item(f"query/{f.stem}/{name}", "query", path=f, source=i, edit=name)
        for i, f in enumerate(sources)
        for name in EDITS
    ]
    # Whole held-out photos as the library holds them; their tiles from the full-size original,
    # which gives more tiles of a usable size.
    photo_items = [Item(f"photo/{f.stem}", "photo", path=f) for f in held_files]
    tiles = [t for p in held for t in _tiles(p)][: max(0, n_distractors - len(photo_items))]
    n_fm = max(0, n_distractors - len(photo_items) - len(tiles))
    fm = load_fmnist()
    if fm is None and (n_fm or fm_db):
        log.warning("Fashion-MNIST is not installed (apt-get install %s)", FMNIST_PACKAGE)
    fm_train = fm["train"][1] if fm else np.zeros(0, np.int64)
    fm_test = fm["test"][1] if fm else np.zeros(0, np.int64)
    n_fm = min(n_fm, len(fm_train))
    distractors = photo_items + tiles + [_fm_item("train", i) for i in range(n_fm)]
    n_db, n_q = min(fm_db, len(fm_train)), min(fm_queries, len(fm_test))
    composition = {
        "sources": len(sources),
        "edits_per_source": len(EDITS),
        "queries": len(queries),
        "distractors": len(distractors),
        "distractor_photos": len(photo_items),
        "distractor_tiles": len(tiles),
        "distractor_fmnist": n_fm,
        "held_out_photos": [p.stem for p in held],
        "train_sources": sum(split_of(f.stem) == "train" for f in sources),
        "test_sources": sum(split_of(f.stem) == "test" for f in sources),
        "fmnist_db": n_db,
        "fmnist_queries": n_q,
    }
    return Dataset(
        db=db + distractors,
        queries=queries,
        source_split=[split_of(f.stem) for f in sources],
        fm_db=[_fm_item("train", i) for i in range(n_db)],
        fm_queries=[_fm_item("test", i) for i in range(n_q)],
        fm_db_labels=fm_train[:n_db],
        fm_query_labels=fm_test[:n_q],
        composition=composition,
    )


def _fm_item(split: str, index: int) -> Item:
    return Item(f"fmnist/{split}/{index}", "fmnist", fm=(split, index))


def _tiles(photo: Photo) -> list[Item]:
    assert photo.path is not None
    with Image.open(photo.path) as im:  # header only
        w, h = im.size
    out = []
    for g in TILE_GRIDS:
        tw, th = w // g, h // g
        if min(tw, th) < TILE_MIN_SIDE:
            continue
        for r in range(g):
            for c in range(g):
                box = (c * tw, r * th, (c + 1) * tw, (r + 1) * th)
                out.append(
                    Item(f"tile/{photo.stem}/g{g}r{r}c{c}", "tile", path=photo.path, box=box)
                )
    return out


@lru_cache(maxsize=1)
def load_fmnist(root: Path = FMNIST_DIR) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """{'train'|'test': (images (n, 28, 28) uint8, labels (n,) int64)}, or None if absent."""
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = (
            root / f"{prefix}-images-idx3-ubyte.gz",
            root / f"{prefix}-labels-idx1-ubyte.gz",
        )
        if not images.is_file() or not labels.is_file():
            return None
        # IDX format: a 16-byte header for images, 8 bytes for labels, then raw uint8.
        with gzip.open(images) as f:
            x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(labels) as f:
            y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
        out[split] = (x, y)
    return out


def fmnist_image(split: str, index: int) -> Image.Image:
    fm = load_fmnist()
    if fm is None:
        raise FileNotFoundError(f"Fashion-MNIST is not installed ({FMNIST_PACKAGE})")
    small = Image.fromarray(fm[split][0][index], "L")
    return small.resize((FMNIST_SIDE, FMNIST_SIDE), Image.Resampling.BICUBIC).convert("RGB")


def iter_images(items: Sequence[Item]) -> Iterator[tuple[Item, Image.Image]]:
    """Make each item's image, in order. Decodes each file once per run of equal paths
    (queries come grouped by source, tiles by photo)."""
    last: tuple[Path | None, Image.Image | None] = (None, None)
    for item in items:
        if item.kind == "fmnist":
            assert item.fm is not None
            yield item, fmnist_image(*item.fm)
            continue
        if last[0] != item.path or last[1] is None:
            with Image.open(item.path) as im:  # type: ignore[arg-type]
                last = (item.path, im.convert("RGB"))
        base = last[1]
        assert base is not None
        if item.kind == "query":
            yield item, EDITS[item.edit](base, edit_rng(item.key)).convert("RGB")
        elif item.kind == "tile":
            yield item, base.crop(item.box)
        else:
            yield item, base
