"""engine.duplicate_export: the reviewed report as CSV, escaped against CSV injection."""

from __future__ import annotations

import csv
import io

from engine.duplicate_export import COLUMNS, safe_cell, to_csv
from engine.duplicate_review import reviewed, signature
from engine.duplicates import Group, Member


def test_formula_cells_are_escaped() -> None:
    for text in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\t=x", "\r=x"):
        assert safe_cell(text) == "'" + text
    assert safe_cell("plain.png") == "plain.png" and safe_cell(None) == ""


def test_one_row_per_image_with_group_kind_score_paths_and_decision() -> None:
    a = Member(id="a", paths=["=HYPERLINK(evil).png", "x/a.png"], score=1.0)
    b = Member(id="b", paths=["@b.png"], score=1.0)
    mark = {"decision": "keep_one", "signature": signature(["a", "b"]), "kept": "b"}
    b.payload["dup_review"] = a.payload["dup_review"] = mark
    group = reviewed(Group(score=1.0, members=[a, b]))
    table = list(csv.reader(io.StringIO(to_csv([group]))))
    assert tuple(table[0]) == COLUMNS
    assert [r[1] for r in table[1:]] == ["exact", "exact"]
    assert table[1][0] == group.signature and table[1][2] == "1.000000"
    assert table[1][3] == "'=HYPERLINK(evil).png; x/a.png" and table[2][3] == "'@b.png"
    assert [(r[4], r[5], r[6]) for r in table[1:]] == [
        ("keep_one", "", "a"),
        ("keep_one", "yes", "b"),
    ]
