"""The duplicates report's pairs when Qdrant serves searches (no mirror in this process).

Each image is a query of the same exact two-round fused search (``engine.store_search``):
its ``NEIGHBOURS`` best matches at or above the threshold become pairs. That bounds each
image's edges, not its group: the union-find joins a larger group through its members'
own neighbours. Cost: one search per image, so a report over a million images is a long
job; it stops as soon as nobody waits for it (``cancelled``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import Cancelled

if TYPE_CHECKING:
    from engine.store_search import StoreFusedSearch
    from store.base import Store

NEIGHBOURS = 32
PAGE = 256


def store_pairs(
    store: Store,
    fused: StoreFusedSearch,
    weights: Mapping[str, float],
    threshold: float,
    payloads: dict[str, dict[str, Any]],
    cancelled: Callable[[], bool],
) -> Iterator[tuple[str, str, float]]:
    """(id, id, score) for every pair at or above the threshold among each image's
    ``NEIGHBOURS`` best, each pair once, smaller id first. Fills ``payloads`` with every
    image's paths on the way (exact copies: one image at several paths)."""
    names = list(store.vector_dims())
    seen: set[tuple[str, str]] = set()  # neighbourhoods are not symmetric: ask both sides
    for record in store.scroll(with_payload=["paths"], with_vectors=names, batch=PAGE):
        if cancelled():
            raise Cancelled("The duplicates report was stopped: nobody waits for it.")
        payloads[record.id] = record.payload
        if not record.vectors:
            continue
        for hit in fused.search(record.vectors, weights, NEIGHBOURS + 1):
            if hit.score < threshold:
                break
            if hit.id == record.id:
                continue
            pair = (min(hit.id, record.id), max(hit.id, record.id))
            if pair not in seen:
                seen.add(pair)
                yield pair[0], pair[1], round(float(hit.score), 6)
