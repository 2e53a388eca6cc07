"""0002: a keyword index on ``paths``, the library keys of the files holding each image.

Uploads look up only the points that list the uploaded keys (``Filter(paths=...)``) instead
of reading the whole store: at 100k points that read took 0.6-1.1 s per upload; filtered, it
takes 0.13 s without this index and under 1 ms with it (adding it to a 100k-point Edge
store took 0.5 s). ``Store.create`` adds the payload indexes that are missing
(``store.schema.INDEXED_FIELDS``) and leaves the rest alone, so this is safe to repeat; a
store created by 0001 since this version has the index already, and this is a no-op there.
"""

from __future__ import annotations

from store.base import Store


def apply(store: Store, vectors: dict[str, int]) -> None:
    store.create(vectors)
