"""The fused index's life: declared and filled when the settings want it, then kept.

``store.fused`` says what the index is and the stores keep it on every write. What is left
is the start, for a collection that has points already: ``ensure`` declares the vector and
``build`` fills it for every point (the vector of each point is computed from its stored
model vectors under the store's write lock, so a write racing the build is never undone),
then records the vector's name under ``FUSED_META``. Searches use the index only once that
record names it (``ready``). A collection whose model vectors change (a model added) gets a
new fused vector and a new build; the old one is dropped.

``LOOKALIKE_FUSED_INDEX``: 'auto' keeps one when ``LOOKALIKE_SEARCH=qdrant`` (Qdrant serves
every search, and multi-model searches need it to be fast at scale); 'on' and 'off' force
it. Turning it off leaves an existing index as it is, still kept by writes: it is dropped
only with the data directory or the collection.
"""

from __future__ import annotations

import logging
import time

from store.base import Filter, Record, Store
from store.fused import FUSED_META

log = logging.getLogger(__name__)
PAGE = 256


def ready(store: Store) -> tuple[str, list[tuple[str, int]]] | None:
    """The fused index, when it holds every point; None otherwise."""
    index = store.fused_index()
    if index is None or store.get_meta(FUSED_META) != index[0]:
        return None
    return index


def state(store: Store) -> str:
    """'ready' (searches use it), 'not built' (declared, not yet filled for every point:
    searches do without) or 'none'."""
    if store.fused_index() is None:
        return "none"
    return "ready" if ready(store) is not None else "not built"


def ensure(store: Store, wanted: bool) -> bool:
    """Declare and fill the fused index if ``wanted`` and not already done; True if built."""
    if not wanted or not store.exists() or not store.vector_dims():
        return False
    if ready(store) is not None:
        repair(store)  # cheap when nothing is missing: one filtered scroll
        return False
    name = store.create_fused()
    build(store, name)
    return True


def build(store: Store, name: str) -> int:
    """Give every point its fused vector, then record the index as ready; returns the
    points written."""
    total = store.count()
    log.info("building the fused index for %d images (LOOKALIKE_FUSED_INDEX)", total)
    store.set_meta(FUSED_META, None)
    done, started, told = 0, time.monotonic(), time.monotonic()
    page: list[Record] = []
    for record in store.scroll(with_payload=False, batch=PAGE):
        page.append(Record(record.id))
        if len(page) == PAGE:
            done += _write(store, page)
            page = []
            if time.monotonic() - told > 10:
                told = time.monotonic()
                log.info("fused index: %d of %d images", done, total)
    done += _write(store, page)
    store.flush()
    store.set_meta(FUSED_META, name)
    log.info("fused index built: %d images in %.0f s", done, time.monotonic() - started)
    return done


def repair(store: Store) -> int:
    """Give the fused vector to points that lack it (written by a process that did not
    know the index yet, or made before a crash mid-build), so searches through it miss no
    one; returns how many were written. A point with none of the models' vectors has no
    fused vector to get and stays as it is."""
    index = ready(store)
    if index is None:
        return 0
    lacking = [r.id for r in store.scroll(Filter(lacks_vector=index[0]), with_payload=False)]
    for start in range(0, len(lacking), PAGE):
        _write(store, [Record(i) for i in lacking[start : start + PAGE]])
    left = store.count(Filter(lacks_vector=index[0]))
    if lacking:
        log.warning(
            "fused index: %d images lacked it; %d written, %d without model vectors left",
            len(lacking),
            len(lacking) - left,
            left,
        )
    return len(lacking) - left


def _write(store: Store, page: list[Record]) -> int:
    # No model vectors in the records: each point's fused vector is computed from the ones
    # it has now, at the moment of writing.
    if page:
        store.update_vectors(page)
    return len(page)
