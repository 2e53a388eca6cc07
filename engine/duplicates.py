"""The near-duplicate report: groups of images that look the same, across the library.

A batched self-join on the FAISS mirror: the mirror is read a page at a time
(``Mirror.page``), each page is compared with itself and every later page by one matrix
product, and only pairs at or above the threshold are kept, straight into a union-find.
Memory is two pages and one page x page block of scores (``PAGE`` = 2048 rows: 16 MB),
plus O(n) for the union-find, never O(n^2): no pair list is kept.

Scores are the fused score a search reports, ``sum(w_i * cos_i) / sum(w_i)``. The same bytes
at two paths are one point (one content), reported as a group of one image with its paths.

Bounded, whoever asks: the threshold has a floor (``DUPLICATES_MIN_THRESHOLD``), at most
``DUPLICATES_MAX_PAIRS`` pairs are grouped (the report then says ``truncated``), and the
caller's ``cancelled()`` is asked between blocks, so a report nobody waits for stops.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from engine.defaults import DUPLICATES_MAX_PAIRS, DUPLICATES_MIN_THRESHOLD
from engine.duplicates_store import store_pairs
from engine.errors import BadInput, Cancelled
from engine.search import check_weights

if TYPE_CHECKING:
    from engine.catalog import ModelCatalog
    from engine.store_search import StoreFusedSearch
    from store.base import Store
    from store.mirror import Mirror, PayloadCache

PAGE = 2048


@dataclass
class Member:
    id: str
    paths: list[str]
    score: float  # best score with another member of the group (1.0: exact copies)
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Group:
    score: float  # the best pair's score
    members: list[Member]

    @property
    def size(self) -> int:
        """Files in the group (an image stored at two paths counts twice)."""
        return sum(max(1, len(m.paths)) for m in self.members)


@dataclass
class Report:
    threshold: float
    weights: dict[str, float]  # role -> weight
    groups: list[Group]
    truncated: bool = False  # more than DUPLICATES_MAX_PAIRS pairs: the groups are partial


def _never() -> bool:
    return False


class Duplicates:
    def __init__(
        self,
        mirror: Callable[[], Mirror],
        payloads: Callable[[], PayloadCache],
        catalog: ModelCatalog,
        *,
        page_size: int = PAGE,
        max_pairs: int = DUPLICATES_MAX_PAIRS,
        by_store: Callable[[], tuple[Store, StoreFusedSearch] | None] = lambda: None,
    ) -> None:
        self._mirror = mirror
        self._payloads = payloads
        self._catalog = catalog
        # When Qdrant serves searches: the store and its fused search (no mirror here).
        self._by_store = by_store
        self.page_size = max(1, page_size)
        self.max_pairs = max_pairs

    def report(
        self,
        threshold: float | None = None,
        weights: Mapping[str, float] | None = None,
        *,
        cancelled: Callable[[], bool] = _never,
    ) -> Report:
        """Groups of at least two files whose images score ``>= threshold`` with another
        member (transitively), best first. Left out, weights and threshold are the
        calibrated defaults (``engine.defaults``). Raises ``Cancelled`` once ``cancelled()``
        turns true."""
        defaults = self._catalog.defaults()
        used = check_weights(defaults.weights if weights is None else weights)
        t = defaults.duplicates_threshold if threshold is None else float(threshold)
        if not np.isfinite(t) or not DUPLICATES_MIN_THRESHOLD <= t <= 1:
            raise BadInput(
                f"The threshold must be between {DUPLICATES_MIN_THRESHOLD} and 1; got {t}. "
                "Lower ones match unrelated images by the thousand."
            )
        served = self._by_store()
        payloads: dict[str, dict[str, Any]] = {}
        if served is None:
            mirror = self._mirror()
            scale = _block_scale(mirror, self._catalog.names(), used)
            found = _pairs(mirror, scale, t, self.page_size, cancelled)
        else:
            store, fused = served
            name_of = self._catalog.names()
            weights_by_name = {name_of[r]: w for r, w in used.items() if r in name_of and w > 0}
            if not weights_by_name:
                _block_scale_check(name_of)
            found = store_pairs(store, fused, weights_by_name, t, payloads, cancelled)
        parent: dict[str, str] = {}
        best: dict[str, float] = {}
        pairs = 0
        for pair_a, pair_b, score in found:
            if pairs == self.max_pairs:
                break
            pairs += 1
            _union(parent, pair_a, pair_b)
            best[pair_a] = max(best.get(pair_a, 0.0), score)
            best[pair_b] = max(best.get(pair_b, 0.0), score)
        if served is None:
            payloads = self._payloads().get(mirror.ids())
        else:  # the groups' members in full (the scroll read only paths)
            grouped = [r for r in served[0].retrieve(sorted(best))]
            payloads.update({r.id: r.payload for r in grouped})
        groups = _groups(payloads, parent, best)
        return Report(threshold=t, weights=used, groups=groups, truncated=pairs == self.max_pairs)


def _block_scale(mirror: Mirror, name_of: dict[str, str], weights: dict[str, float]) -> np.ndarray:
    """Per-column factor of the fused row: w_i / sum(w) on model i's block."""
    used = {name_of[r]: w for r, w in weights.items() if r in name_of and w > 0}
    total = sum(used.values())
    if total <= 0:
        _block_scale_check(name_of)
    scale = np.zeros(mirror.dim, dtype=np.float32)
    start = 0
    for name, dim in mirror.blocks:
        scale[start : start + dim] = used.get(name, 0.0) / total
        start += dim
    return scale


def _block_scale_check(name_of: dict[str, str]) -> NoReturn:
    raise BadInput(
        "Every weight is zero for the models in use "
        f"({', '.join(name_of) or 'none'}): give at least one a positive weight."
    )


def _pairs(
    mirror: Mirror,
    scale: np.ndarray,
    threshold: float,
    page: int,
    cancelled: Callable[[], bool] = _never,
) -> Iterator[tuple[str, str, float]]:
    """(id, id, score) for every pair at or above the threshold, each pair once."""
    n = len(mirror)
    for a0 in range(0, n, page):
        ids_a, rows_a = mirror.page(a0, page)
        if not ids_a:
            break
        weighted = rows_a * scale
        for b0 in range(a0, n, page):
            if cancelled():
                raise Cancelled("The duplicates report was stopped: nobody waits for it.")
            ids_b, rows_b = (ids_a, rows_a) if b0 == a0 else mirror.page(b0, page)
            if not ids_b:
                break
            scores = weighted @ rows_b.T
            if b0 == a0:  # within one page: each pair once, never a point with itself
                scores[np.tril_indices(len(ids_a), m=len(ids_b))] = -np.inf
            for r, c in zip(*np.nonzero(scores >= threshold), strict=True):
                if ids_a[r] != ids_b[c]:  # a point seen twice while the mirror shifted
                    yield ids_a[r], ids_b[c], round(float(scores[r, c]), 6)


def _find(parent: dict[str, str], x: str) -> str:
    root = x
    while parent.get(root, root) != root:
        root = parent[root]
    while x != root:  # path compression keeps later finds O(1)-ish
        parent[x], x = root, parent[x]
    return root


def _union(parent: dict[str, str], a: str, b: str) -> None:
    ra, rb = _find(parent, a), _find(parent, b)
    parent.setdefault(ra, ra)
    if ra != rb:
        parent[max(ra, rb)] = min(ra, rb)


def _groups(
    payloads: dict[str, dict[str, Any]], parent: dict[str, str], best: dict[str, float]
) -> list[Group]:
    members: dict[str, list[str]] = {}
    for point_id in best:
        members.setdefault(_find(parent, point_id), []).append(point_id)
    in_groups = set(best)
    # The same content at two or more paths: exact copies, one point.
    for point_id, payload in payloads.items():
        if point_id not in in_groups and len(payload.get("paths") or []) > 1:
            members[point_id] = [point_id]
            best[point_id] = 1.0
    groups = []
    for ids in members.values():
        group = [
            Member(
                id=i,
                paths=list(payloads.get(i, {}).get("paths") or []),
                score=best[i],
                payload=payloads.get(i, {}),
            )
            for i in ids
        ]
        group.sort(key=lambda m: (-m.score, m.paths[:1]))
        groups.append(Group(score=max(m.score for m in group), members=group))
    groups.sort(key=lambda g: (-g.score, -g.size, g.members[0].paths[:1]))
    return groups
