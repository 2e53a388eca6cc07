"""0001: the image collection, one cosine named vector per model identity, payload indexes.

``Store.create`` does the work and is a no-op when the collection already has these
vectors, which is what makes this migration safe to repeat.
"""

from __future__ import annotations

from store.base import Store


def apply(store: Store, vectors: dict[str, int]) -> None:
    if not vectors:
        raise ValueError("the image collection needs at least one named vector")
    store.create(vectors)
