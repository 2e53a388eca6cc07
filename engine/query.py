"""A query's vectors: from an uploaded picture (or a region of it), or from a sentence.

Query images of concurrent searches are embedded together (``engine.batching``): a search
announces its query before decoding it, so a batch about to leave waits for it, and the
preprocessing runs in parallel per request. Text goes through CLIP's text encoder, the only
model that puts text and images in one space, so a text query weighs the clip block alone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import BadInput, ModelUnavailable, UndecodableImage

if TYPE_CHECKING:
    from embedder.pipeline import Embedder
    from engine.batching import Batcher

# Query images are refused above this many pixels (indexing allows Pillow's 89.5 MP): a
# query is one person's picture, often a screenshot or a crop, and every concurrent search
# decodes one; 40 MP is any camera's frame but keeps a burst of searches in memory.
QUERY_MAX_PIXELS = 40_000_000
MAX_TEXT = 1000  # CLIP reads 77 tokens anyway; longer input is a mistake, not a query
TEXT_WEIGHTS = {"clip": 1.0}
NO_CLIP = (
    "Text search needs the CLIP model, which is off{why}. Set LOOKALIKE_CLIP_WEIGHTS to "
    "'openai' (or a ViT-B-32 checkpoint file) and restart to search by text."
)

Box = tuple[int, int, int, int]  # x, y, width, height in the original image's pixels


@dataclass(frozen=True)
class QueryPicture:
    """The picture a query's vectors came from, for copy verification: ``image`` as decoded
    (maybe smaller than the upload), ``size`` its size in the upload's pixels, ``offset``
    where it starts in the upload (a crop's corner)."""

    image: Any
    size: tuple[int, int]
    offset: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class BatchSettings:
    max_batch: int = 8
    wait_ms: float = 2.0
    gather_ms: float = 60.0


class QueryEncoder:
    def __init__(
        self,
        embedder: Callable[[], Embedder],
        clip_status: Callable[[], tuple[str | None, str]],
        batching: BatchSettings,
    ) -> None:
        self._embedder = embedder
        self._clip_status = clip_status
        self._batching = batching
        self._batcher: Batcher[dict[str, Any], dict[str, np.ndarray]] | None = None
        self._lock = threading.Lock()

    def image(
        self, data: bytes, *, name: str = "query", box: Box | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, float], QueryPicture]:
        """({model name: vector}, {decode_ms, embed_ms}, the picture) of a picture, or of a
        region of it."""
        from embedder.decode import decode_image
        from embedder.errors import DecodeError

        t0 = time.perf_counter()
        batcher = self._batcher_for_queries()
        with batcher.coming() as submit:
            try:
                # A region is cut from the full-resolution image: draft decoding could leave
                # a small box only a few dozen pixels to look at.
                decoded = decode_image(data, name, draft=box is None, max_pixels=QUERY_MAX_PIXELS)
            except DecodeError as exc:
                raise UndecodableImage(str(exc)) from exc
            image = decoded.image
            picture = QueryPicture(image, (decoded.width, decoded.height))
            if box is not None:
                image = crop(image, box, (decoded.width, decoded.height))
                x, y, w, h = box
                size = (min(w, decoded.width - x), min(h, decoded.height - y))
                picture = QueryPicture(image, size, (x, y))
            t1 = time.perf_counter()
            vectors = submit(self._embedder().prepare(image))
        t2 = time.perf_counter()
        timings = {"decode_ms": (t1 - t0) * 1e3, "embed_ms": (t2 - t1) * 1e3}
        return vectors, timings, picture

    def regions(
        self, picture: QueryPicture, boxes: list[Box], *, candidates: bool = False
    ) -> list[dict[str, np.ndarray]]:
        """The vectors of these regions of a query picture (boxes in ``picture.size``
        pixels), embedded as one batch. Windows look for copies, which the CNN (shape and
        texture) and the colour histogram find: CLIP is left out when a CNN is loaded,
        which halves the cost of looking inside with the seed models. ``candidates``: the
        vectors only bring candidates to verification (``Embedder.embed_inputs``)."""
        embedder = self._embedder()
        loaded = {m.role for m in embedder.models}
        roles = loaded - {"clip"} if "cnn" in loaded else None
        crops = [crop(picture.image, b, picture.size) for b in boxes]
        items = [embedder.prepare(c, roles) for c in crops]
        return embedder.embed_inputs(items, candidates=candidates)

    def text(self, text: str) -> dict[str, np.ndarray]:
        """{clip model name: (512,)} for a sentence; ``ModelUnavailable`` without CLIP."""
        from embedder.errors import ModelLoadError

        text = (text or "").strip()
        if not text:
            raise BadInput("The text to search for is empty: describe the image you look for.")
        if len(text) > MAX_TEXT:
            raise BadInput(f"The text is {len(text)} characters long; at most {MAX_TEXT} are read.")
        name, why = self._clip_status()
        if name is None:
            raise ModelUnavailable(NO_CLIP.format(why=why))
        try:
            vector = self._embedder().embed_text([text])[0]
        except ModelLoadError as exc:
            raise ModelUnavailable(NO_CLIP.format(why=f" ({exc})")) from exc
        return {name: np.asarray(vector, dtype=np.float32)}

    def _batcher_for_queries(self) -> Batcher[dict[str, Any], dict[str, np.ndarray]]:
        with self._lock:
            if self._batcher is None:
                from engine.batching import Batcher

                b = self._batching
                self._batcher = Batcher(
                    self._embedder().embed_inputs,
                    max_batch=b.max_batch,
                    max_wait_s=b.wait_ms / 1e3,
                    max_gather_s=b.gather_ms / 1e3,
                    name="query-batcher",
                )
            return self._batcher

    def close(self) -> None:
        with self._lock:
            if self._batcher is not None:
                self._batcher.close()
                self._batcher = None


def crop(image: Any, box: Box, size: tuple[int, int]) -> Any:
    """Crop by a box given in the original image's pixels, scaled to the decoded image in
    case it was decoded at a reduced size. A box running past the image's edge is cut at
    it; one starting outside the image has nothing to crop."""
    x, y, w, h = box
    width, height = size
    if w <= 0 or h <= 0 or not 0 <= x < width or not 0 <= y < height:
        raise BadInput(
            f"The box {list(box)} (x, y, width, height) must start inside the "
            f"{width}x{height} image, with a width and height above 0."
        )
    w, h = min(w, width - x), min(h, height - y)
    sx, sy = image.width / width, image.height / height
    left, top = round(x * sx), round(y * sy)
    right = max(left + 1, round((x + w) * sx))
    bottom = max(top + 1, round((y + h) * sy))
    return image.crop((left, top, right, bottom))
