"""The shape every image collection has, shared by both backends."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np

from store.base import Record, StoreError

# Payload indexes every collection carries. Keyword for the string filters; integer (with
# range lookups) for the numeric ones, and 'rev' needs its range index for order_by.
INDEXED_FIELDS: dict[str, str] = {
    "tags": "keyword",
    "folder": "keyword",
    "format": "keyword",
    "width": "integer",
    "height": "integer",
    "rev": "integer",
    "paths": "keyword",  # since migration 0002: uploads look up their keys' points
}


def vectors_to_add(existing: dict[str, int], wanted: dict[str, int]) -> dict[str, int]:
    """Named vectors to add; a name that exists with another size is refused, never altered."""
    for name, dim in wanted.items():
        if name in existing and existing[name] != dim:
            raise StoreError(
                f"named vector {name!r} exists with dimension {existing[name]}, not {dim}; "
                "a model whose output size changed needs a new name"
            )
    return {name: dim for name, dim in wanted.items() if name not in existing}


def rev_of(payload: dict[str, Any] | None) -> int:
    rev = (payload or {}).get("rev")
    return rev if isinstance(rev, int) and not isinstance(rev, bool) else 0


def check_records(records: Sequence[Record], dims: dict[str, int]) -> None:
    """Refuse, before any of it reaches the backend, a write Qdrant would reject.

    Edge logs an update to its WAL before validating it: a batch with one bad vector fails
    after some of its points were applied, and after a crash the log replays the bad point
    as a point without vectors. Checking here keeps both backends all-or-nothing and alike.
    """
    for record in records:
        check_id(record.id)
        for name, vector in record.vectors.items():
            check_vector(name, vector, dims, what=f"point {record.id}")


def check_vector(name: str, vector: np.ndarray, dims: dict[str, int], *, what: str) -> None:
    if name not in dims:
        known = ", ".join(sorted(dims)) or "none"
        raise StoreError(
            f"{what}: the collection has no named vector {name!r} (it has: {known}); "
            "apply the migrations that add it"
        )
    array = np.asarray(vector)
    if array.shape != (dims[name],):
        raise StoreError(
            f"{what}: vector {name!r} has shape {array.shape}, the collection expects "
            f"({dims[name]},)"
        )
    if not np.all(np.isfinite(array)) or not np.any(array):
        raise ValueError(f"{what}: vector {name!r} is zero or not finite; cosine is undefined")


def check_id(point_id: str) -> None:
    try:
        uuid.UUID(point_id)
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"point id {point_id!r} is not a UUID string") from None
