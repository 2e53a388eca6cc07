"""Filter semantics, written out case by case (the backends are held to these)."""

from __future__ import annotations

import pytest

from store.base import Filter
from store.filters import AnyOf, Between, HasId, conditions, matches

PAYLOAD = {
    "folder": ["art/2021", "art"],
    "tags": ["logo", "blue"],
    "format": "PNG",
    "width": 800,
    "height": 600,
    "rev": 10,
}
PID = "2f1c0d1e-0000-4000-8000-000000000001"


def test_empty_filters_lower_to_no_conditions() -> None:
    assert conditions(None) == []
    assert conditions(Filter()) == []
    assert conditions(Filter(folders=[], tags_any=[], tags_all=[], formats=[])) == []


def test_lowering_is_one_condition_per_constraint() -> None:
    flt = Filter(
        folders=["a"],
        tags_any=["x", "y"],
        tags_all=["x", "z", "x"],
        formats=["PNG"],
        min_width=1,
        max_height=9,
        rev_gt=5,
        ids=[PID, PID],
    )
    assert conditions(flt) == [
        AnyOf("folder", ("a",)),
        AnyOf("tags", ("x", "y")),
        AnyOf("tags", ("x",)),
        AnyOf("tags", ("z",)),
        AnyOf("format", ("PNG",)),
        Between("width", gte=1),
        Between("height", lte=9),
        Between("rev", gt=5),
        HasId((PID,)),
    ]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filter(), True),
        (Filter(folders=["art"]), True),
        (Filter(folders=["photos", "art/2021"]), True),  # any of the point's folders
        (Filter(folders=["art/20"]), False),  # exact, not prefix
        (Filter(tags_any=["red", "blue"]), True),
        (Filter(tags_any=["red"]), False),
        (Filter(tags_all=["logo", "blue"]), True),
        (Filter(tags_all=["logo", "red"]), False),  # every tag must be present
        (Filter(formats=["JPEG", "PNG"]), True),
        (Filter(formats=["png"]), False),  # format names are upper case, compared exactly
        (Filter(min_width=800, max_width=800), True),  # bounds are inclusive
        (Filter(min_width=801), False),
        (Filter(max_height=599), False),
        (Filter(min_height=600, max_height=600), True),
        (Filter(rev_gt=9), True),
        (Filter(rev_gt=10), False),  # strictly greater
        (Filter(ids=[PID]), True),
        (Filter(ids=[]), False),  # an empty id list matches nothing
        (Filter(folders=["art"], tags_all=["logo"], formats=["GIF"]), False),
    ],
)
def test_matches(flt: Filter, expected: bool) -> None:
    assert matches(flt, PID, PAYLOAD) is expected


def test_missing_or_mistyped_fields_never_match() -> None:
    assert not matches(Filter(folders=["art"]), PID, {})
    assert not matches(Filter(min_width=1), PID, {"width": "800"})
    assert not matches(Filter(min_width=0), PID, {"width": True})
    assert not matches(Filter(tags_any=["1"]), PID, {"tags": [1]})
    assert matches(Filter(formats=["PNG"]), PID, {"format": ["PNG", "APNG"]})
