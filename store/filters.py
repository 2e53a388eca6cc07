"""What a ``Filter`` means, stated once.

``conditions`` lowers a ``Filter`` to a flat list of conditions that must all hold; each
backend maps those few shapes onto its own library's classes, so the two backends cannot
drift apart on semantics. ``matches`` evaluates the same conditions in plain Python: it is
the reference the congruence tests hold both backends to, and lets a cache (the FAISS
mirror) filter its own copy of the payloads the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store.base import Filter


@dataclass(frozen=True)
class AnyOf:
    """The payload value at ``key`` (a scalar, or any element of a list) is one of ``values``."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Between:
    """The numeric payload value at ``key`` lies in the range (bounds left None are open)."""

    key: str
    gte: int | None = None
    lte: int | None = None
    gt: int | None = None


@dataclass(frozen=True)
class HasId:
    """The point id is one of ``ids``; an empty tuple matches nothing."""

    ids: tuple[str, ...]


@dataclass(frozen=True)
class LacksVector:
    """The point has no vector named ``name``."""

    name: str


Condition = AnyOf | Between | HasId | LacksVector


def conditions(flt: Filter | None) -> list[Condition]:
    """Conditions that must all hold; an empty list means no constraint."""
    if flt is None:
        return []
    out: list[Condition] = []
    if flt.folders:
        out.append(AnyOf("folder", tuple(flt.folders)))
    if flt.tags_any:
        out.append(AnyOf("tags", tuple(flt.tags_any)))
    # "every tag present" is one single-value match per tag, all of them required.
    out.extend(AnyOf("tags", (tag,)) for tag in dict.fromkeys(flt.tags_all))
    if flt.formats:
        out.append(AnyOf("format", tuple(flt.formats)))
    if flt.min_width is not None or flt.max_width is not None:
        out.append(Between("width", gte=flt.min_width, lte=flt.max_width))
    if flt.min_height is not None or flt.max_height is not None:
        out.append(Between("height", gte=flt.min_height, lte=flt.max_height))
    if flt.rev_gt is not None:
        out.append(Between("rev", gt=flt.rev_gt))
    if flt.ids is not None:
        out.append(HasId(tuple(dict.fromkeys(str(i) for i in flt.ids))))
    if flt.paths:
        out.append(AnyOf("paths", tuple(dict.fromkeys(flt.paths))))
    if flt.lacks_vector is not None:
        out.append(LacksVector(flt.lacks_vector))
    return out


def matches(flt: Filter | None, point_id: str, payload: Mapping[str, Any]) -> bool:
    """True when a point with this id and payload satisfies the filter."""
    return all(_holds(c, point_id, payload) for c in conditions(flt))


def _holds(cond: Condition, point_id: str, payload: Mapping[str, Any]) -> bool:
    if isinstance(cond, HasId):
        return point_id in cond.ids
    if isinstance(cond, LacksVector):
        raise ValueError("a payload cache cannot tell which vectors a point has")
    value = payload.get(cond.key)
    if isinstance(cond, AnyOf):
        present = value if isinstance(value, list) else [value]
        return any(v in cond.values for v in present if isinstance(v, str))
    # Qdrant compares every number in a list field; the same here keeps the two congruent.
    numbers = value if isinstance(value, list) else [value]
    return any(_in_range(cond, v) for v in numbers)


def _in_range(cond: Between, value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if cond.gte is not None and value < cond.gte:
        return False
    if cond.lte is not None and value > cond.lte:
        return False
    return cond.gt is None or value > cond.gt
