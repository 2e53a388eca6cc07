"""Filter by colour: images whose dominant palette holds a colour near the one asked for.

Qdrant cannot filter on a colour distance, so the palettes (5 '#rrggbb' per image, k-means
in Lab, see ``embedder.palette``) are read once per mirror revision into one Lab array; a
query measures delta E (CIE76) against all of them in one numpy expression and hands the
matching ids on as an id filter (``ColourFilter``). 100k images are 500k colours: 12 MB, a
few ms per query.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from embedder.palette import delta_e, rgb_to_lab
from engine.errors import BadInput
from store.base import Filter

if TYPE_CHECKING:
    from engine.read_policy import ReadPolicy

# Delta E (CIE76, in Lab): about 2 is barely visible, 10 "similar", 20 and more "the same
# family of colour". The UI says the same.
DEFAULT_TOLERANCE = 20.0
_HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def colour_names() -> list[str]:
    """The CSS colour names (CSS Color Module Level 3, from ``webcolors``), as the UI
    offers them."""
    import webcolors

    return list(webcolors.names(webcolors.CSS3))


def colour_hex(text: str) -> str:
    """'#aabbcc', 'abc', '#ABC' or a CSS name ('teal', 'Dark Slate Grey') -> '#aabbcc'."""
    import webcolors

    raw = text.strip() if isinstance(text, str) else ""
    match = _HEX.fullmatch(raw)
    if match is not None:
        digits = match.group(1).lower()
        return "#" + ("".join(c * 2 for c in digits) if len(digits) == 3 else digits)
    name = raw.lower().replace(" ", "").replace("-", "")
    try:
        return str(webcolors.name_to_hex(name, spec=webcolors.CSS3))
    except ValueError:
        shown = repr(raw[:40]) if raw else "nothing"
        raise BadInput(
            "Colour must look like #a1b2c3 or a colour name such as 'teal' or 'salmon'; "
            f"got {shown}."
        ) from None


def parse_colour(text: str) -> np.ndarray:
    """A colour as written by a person (hex or a CSS name) -> its Lab coordinates."""
    digits = colour_hex(text)[1:]
    return rgb_to_lab(np.array([int(digits[i : i + 2], 16) for i in (0, 2, 4)]))


@dataclass
class PaletteIndex:
    """Every palette colour in Lab, with the image it belongs to."""

    key: tuple[int, int]  # (mirror watermark, mirror size) it was read at
    ids: list[str]
    lab: np.ndarray  # (colours, 3)
    owner: np.ndarray  # (colours,) index into ids

    @classmethod
    def build(cls, key: tuple[int, int], items: Iterable[tuple[str, Any]]) -> PaletteIndex:
        ids: list[str] = []
        rgb: list[tuple[int, int, int]] = []
        owner: list[int] = []
        for point_id, palette in items:
            colours = [c for c in palette or [] if isinstance(c, str) and _HEX.fullmatch(c)]
            if not colours:
                continue
            for c in colours:
                h = c.lstrip("#")
                rgb.append((int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)))
                owner.append(len(ids))
            ids.append(point_id)
        lab = rgb_to_lab(np.array(rgb, dtype=np.float64).reshape(-1, 3))
        return cls(key, ids, lab, np.array(owner, dtype=np.int64))

    def near(self, target: np.ndarray, tolerance: float) -> list[str]:
        if not len(self.lab):
            return []
        hit = np.unique(self.owner[delta_e(self.lab, target) <= tolerance])
        return [self.ids[i] for i in hit.tolist()]


class ColourFilter:
    """Narrows a filter to the images with a palette colour near a given one. Keeps one
    ``PaletteIndex``, read again whenever the images change."""

    def __init__(self, reader: ReadPolicy) -> None:
        self._reader = reader
        self._index: PaletteIndex | None = None
        self._lock = threading.Lock()

    def index(self) -> PaletteIndex:
        """The palettes as of the images' current revision (read again after any write)."""
        key = self._reader.revision()
        with self._lock:
            if self._index is not None and self._index.key == key:
                return self._index
            items, complete = self._reader.payload_field("palette")
            index = PaletteIndex.build(key, items)
            if complete:  # from the cache while the store is down: not kept, it may lack some
                self._index = index
            return index

    def narrow(self, flt: Filter | None, colour: str, tolerance: float | None = None) -> Filter:
        """``flt`` narrowed to the images with a palette colour within ``tolerance`` (delta
        E) of ``colour``."""
        target = parse_colour(colour)
        tol = DEFAULT_TOLERANCE if tolerance is None else float(tolerance)
        if not np.isfinite(tol) or tol < 0:
            raise BadInput(
                f"The colour tolerance (ΔE) must be a number of 0 or more; got {tolerance!r}."
            )
        near = self.index().near(target, tol)
        base = flt or Filter()
        if base.ids is not None:
            keep = set(base.ids)
            near = [i for i in near if i in keep]
        return replace(base, ids=near)
