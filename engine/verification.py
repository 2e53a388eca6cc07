"""Copy verification: the proof that a hit is a copy of (part of) the query.

After the vector search, the best ``candidates`` hits are checked by local-feature matching
with a geometric test (``embedder.verify``: SIFT features, Lowe's ratio test, a RANSAC
homography with sanity checks; bench/RESULTS_verify.md measured why SIFT at 4 bits and why
RANSAC). A hit that passes carries its evidence (``engine.results.Evidence``): the matching
points that fit, a 0..1 confidence, and the matched region in both images' pixels.

**Ranking.** A verified hit ranks above every unverified one: among 4,590 pairs of
different photos on that bench none verified, so the evidence outweighs any embedding
score. Verified hits are ordered by ``fused + (1 - fused) * confidence``, which stays in
0..1 and is that hit's reported score; unverified hits keep their fused score and order.

**Thumbnails.** A query too small for local features (at most ``embedder.layout.SMALL``
pixels on its longer side: a blurred 64 px thumbnail keeps a few dozen keypoints) is also
compared by layout with the best ``LAYOUT_CANDIDATES``: the one candidate whose 32 x 32
thumbnail correlates with the query's, clearly above every other candidate and with the same
shape, ranks right after the verified hits, its evidence saying "likely a copy" (never a
proof: ``embedder.layout`` says why). The vector search for such a query is exact (the
mirror's compact first stage loses true hits of tiny, blurred queries: measured on the copy
detection bench).

**Features** are extracted at index time from the image the embedder decodes anyway
(``embedder.pipeline``) and kept by ``store.keypoints``: one small file per image under the
data directory (at most 16 KB), memory-mapped when read, never in RAM or the Qdrant
payload. A record missing or damaged when a search needs it is no evidence for that search
and is rebuilt in the background from the image file; reconcile rebuilds every missing one
and drops those of deleted images.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.results import THUMBNAIL, Evidence, SearchHit
from store.keypoints import KeypointStore

if TYPE_CHECKING:
    from PIL import Image

    from embedder.keypoints import Features

log = logging.getLogger(__name__)

LAYOUT_CANDIDATES = 100  # candidates a thumbnail query is compared with by layout

Views = tuple[Any, ...]  # a query's features, as seen and mirrored (embedder.keypoints)


def combine(fused: float, confidence: float) -> float:
    """The score of a verified hit: moves the fused score toward 1 by the confidence."""
    return fused + (1.0 - fused) * confidence


class Verification:
    def __init__(
        self,
        data_dir: Path,
        file_of: Callable[[str], Path],
        *,
        candidates: int,
        enabled: bool = True,
    ) -> None:
        self.records = KeypointStore.under(data_dir)
        self._file_of = file_of  # an image's file, to rebuild its features
        self.candidates = candidates if enabled else 0
        self._rebuilding: set[str] = set()
        self._lock = threading.Lock()
        self._rebuilder: ThreadPoolExecutor | None = None

    @property
    def enabled(self) -> bool:
        return self.candidates > 0

    def warm(self) -> None:
        """Load what verification needs (OpenCV) before the first request does."""
        if self.enabled:
            from embedder.keypoints import warm

            warm()

    # -- searching ------------------------------------------------------------------------
    def query_views(self, image: Image.Image, size: tuple[int, int]) -> Views:
        """The query's features (as seen, and mirrored), positions in ``size`` pixels."""
        from embedder.keypoints import extract_query

        return extract_query(image, size=size)

    def rerank(
        self,
        views: Views,
        hits: list[SearchHit],
        k: int,
        offset: tuple[float, float] = (0.0, 0.0),
        *,
        check: int | None = None,
        layout: tuple[np.ndarray, tuple[int, int]] | None = None,
    ) -> tuple[list[SearchHit], float]:
        """The best ``k`` of ``hits`` once the first ``check`` (default ``candidates``) are
        verified, and the milliseconds it took. ``offset``: where the query's pixels start
        in the picture the user gave (a crop's corner), so the query polygon lands on that
        picture. ``layout``: a thumbnail query's layout thumbnail and size (see above)."""
        from embedder.verify import verify_many

        t0 = time.perf_counter()
        depth = self.candidates if check is None else check
        if layout is not None:
            depth = max(depth, LAYOUT_CANDIDATES)
        pool = hits[:depth]
        records = [self.records.get(h.id) for h in pool]
        self._rebuild([h.id for h, r in zip(pool, records, strict=True) if r is None])
        checked = pool if check is not None else pool[: self.candidates]
        found = verify_many(tuple(views), records[: len(checked)])
        dx, dy = offset
        for hit, proof in zip(checked, found, strict=True):
            if proof is None:
                continue
            hit.fused = hit.score
            hit.score = round(combine(hit.score, proof.confidence), 6)
            hit.verified = Evidence(
                inliers=proof.inliers,
                confidence=proof.confidence,
                query_polygon=[
                    (round(x + dx, 1), round(y + dy, 1)) for x, y in proof.query_polygon
                ],
                hit_polygon=[(round(x, 1), round(y, 1)) for x, y in proof.hit_polygon],
                mirrored=proof.mirrored,
            )
        if layout is not None:  # after the proofs: a proven copy needs no layout hint
            self._compare_layout(pool, records, layout, offset)
        # Stable: unverified hits keep the vector search's order among themselves; a layout
        # match (a thumbnail's) comes after the proven copies.
        ranked = sorted(hits, key=rank_key)
        return ranked[:k], (time.perf_counter() - t0) * 1e3

    @staticmethod
    def _compare_layout(
        pool: list[SearchHit],
        records: list[Any],
        layout: tuple[np.ndarray, tuple[int, int]],
        offset: tuple[float, float],
    ) -> None:
        """Give the one candidate whose layout matches the thumbnail query's its evidence."""
        from embedder import layout as lay

        query, (qw, qh) = layout
        ncc = lay.correlations(query, [None if r is None else r.thumb for r in records])
        best = lay.distinct_match(ncc)
        if best is None or records[best] is None:
            return
        hit, record = pool[best], records[best]
        if hit.verified is not None or not lay.same_shape((qw, qh), (record.width, record.height)):
            return
        dx, dy = offset
        hit.fused = hit.score
        confidence = lay.confidence(float(ncc[best]))
        hit.score = round(combine(hit.score, confidence), 6)
        hit.verified = Evidence(
            inliers=0,
            confidence=confidence,
            query_polygon=_frame(qw, qh, dx, dy),
            hit_polygon=_frame(record.width, record.height),
            method=THUMBNAIL,
        )

    def is_whole_copy(self, hits: Sequence[SearchHit], query_thumb: np.ndarray) -> bool:
        """Whether a proven copy among ``hits`` is the whole query picture (its layout
        thumbnail matches the query's everywhere, ``embedder.layout.same_picture``): then
        nothing else is hidden inside it. A copy that covers only part of the picture (a
        crop, a design on a page, the page's own background) leaves the rest to look
        inside."""
        from embedder.layout import same_picture

        for hit in hits:
            if proven(hit):
                record = self.records.get(hit.id)
                if record is not None and same_picture(query_thumb, record.thumb):
                    return True
        return False

    def all_copies(self, ids: Sequence[str]) -> bool:
        """Whether every image of ``ids`` is a verified copy of the first (their stored
        features only: a duplicates group, told true copies from look-alikes). False when
        verification is off or a record is missing."""
        if not self.enabled or len(ids) < 2:
            return False
        from embedder.keypoints import Features, mirror
        from embedder.verify import verify_many

        first = self.records.get(ids[0])
        others = [self.records.get(i) for i in ids[1:]]
        if first is None or len(first) < 2 or any(r is None for r in others):
            return False
        kind: Any = first.kind  # one of the kinds Features knows: the store wrote it
        view = Features(
            kind, first.width, first.height, first.xy.astype("float32"), first.descriptors
        )
        return all(v is not None for v in verify_many((view, mirror(view)), others))

    # -- keeping the records ----------------------------------------------------------------
    def save(self, point_id: str, features: Features | None) -> None:
        """Keep an image's features (from indexing); None: nothing to keep."""
        if features is None or not self.enabled:
            return
        try:
            self.records.put(
                point_id,
                features.kind,
                features.width,
                features.height,
                features.xy,
                features.descriptors,
                features.thumb,
            )
        except (OSError, ValueError) as exc:  # search then treats it as no evidence
            log.warning("could not keep the keypoints of %s: %s", point_id, exc)

    def forget(self, ids: Iterable[str]) -> None:
        for point_id in ids:
            self.records.delete(point_id)

    def repair(self, ids: Iterable[str], cancelled: Callable[[], bool] = lambda: False) -> int:
        """Rebuild the records missing (or damaged) among ``ids``; returns how many."""
        if not self.enabled:
            return 0
        rebuilt = 0
        for point_id in ids:
            if cancelled():
                break
            if self.records.get(point_id) is None and self._rebuild_one(point_id):
                rebuilt += 1
        return rebuilt

    def prune(self, keep: set[str]) -> int:
        """Drop the records of images no longer in the store; returns how many."""
        gone = [i for i in self.records.ids() if i not in keep]
        self.forget(gone)
        return len(gone)

    def close(self) -> None:
        with self._lock:
            if self._rebuilder is not None:
                self._rebuilder.shutdown(wait=True, cancel_futures=True)
                self._rebuilder = None

    def _rebuild(self, ids: Sequence[str]) -> None:
        """Rebuild these records in the background, one at a time, each once."""
        with self._lock:
            todo = [i for i in ids if i not in self._rebuilding]
            if not todo:
                return
            self._rebuilding.update(todo)
            if self._rebuilder is None:
                self._rebuilder = ThreadPoolExecutor(1, thread_name_prefix="keypoints")
            for point_id in todo:
                self._rebuilder.submit(self._rebuild_one, point_id)

    def _rebuild_one(self, point_id: str) -> bool:
        from embedder.errors import DecodeError
        from embedder.keypoints import extract_bytes

        try:
            features = extract_bytes(self._file_of(point_id))
        except (OSError, DecodeError, LookupError) as exc:
            log.warning("keypoints of %s cannot be rebuilt: %s", point_id, exc)
            return False
        except Exception as exc:  # never let a background rebuild die silently
            log.warning("keypoints of %s cannot be rebuilt: %s", point_id, exc)
            return False
        finally:
            with self._lock:
                self._rebuilding.discard(point_id)
        self.save(point_id, features)
        log.info("rebuilt the keypoints of %s", point_id)
        return True


def proven(hit: SearchHit) -> bool:
    """Whether local features proved the hit a copy (a thumbnail's layout match is not)."""
    return hit.verified is not None and hit.verified.method != THUMBNAIL


def rank_key(hit: SearchHit) -> tuple[int, float]:
    """Proven copies first (best score first), then a thumbnail's layout match, then the
    rest in the vector search's order (a stable sort keeps it)."""
    if hit.verified is None:
        return (2, 0.0)
    return (1 if hit.verified.method == THUMBNAIL else 0, -hit.score)


def _frame(
    width: float, height: float, dx: float = 0.0, dy: float = 0.0
) -> list[tuple[float, float]]:
    """A whole picture's outline: what a layout match covers."""
    return [(dx, dy), (dx + width, dy), (dx + width, dy + height), (dx, dy + height)]
