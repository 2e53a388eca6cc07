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

from engine.results import Evidence, SearchHit
from store.keypoints import KeypointStore

if TYPE_CHECKING:
    from PIL import Image

    from embedder.keypoints import Features

log = logging.getLogger(__name__)

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
    ) -> tuple[list[SearchHit], float]:
        """The best ``k`` of ``hits`` once the first ``candidates`` are verified, and the
        milliseconds it took. ``offset``: where the query's pixels start in the picture
        the user gave (a crop's corner), so the query polygon lands on that picture."""
        from embedder.verify import verify_many

        t0 = time.perf_counter()
        checked = hits[: self.candidates]
        records = [self.records.get(h.id) for h in checked]
        self._rebuild([h.id for h, r in zip(checked, records, strict=True) if r is None])
        found = verify_many(tuple(views), records)
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
        # Stable: unverified hits keep the vector search's order among themselves.
        ranked = sorted(hits, key=lambda h: (h.verified is None, -h.score if h.verified else 0))
        return ranked[:k], (time.perf_counter() - t0) * 1e3

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
