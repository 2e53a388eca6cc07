"""The reviewed duplicates report as CSV: one row per image, with its group, the group's
kind and decision, the image's best score in the group and its paths.

Cells are escaped against CSV injection: a spreadsheet runs a cell that begins with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return ahead of one) as a formula, and file
names are chosen by whoever uploads them. Such a cell is prefixed with ``'``, as OWASP
advises, so the spreadsheet shows the text instead of running it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.duplicate_review import ReviewedGroup

COLUMNS = ("group", "kind", "score", "paths", "decision", "kept", "id")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def rows(groups: Iterable[ReviewedGroup]) -> Iterable[list[str]]:
    for g in groups:
        for m in g.group.members:
            yield [
                safe_cell(v)
                for v in (
                    g.signature,
                    g.kind,
                    f"{min(1.0, m.score):.6f}",
                    "; ".join(m.paths),
                    g.decision or "",
                    "yes" if g.kept == m.id else "",
                    m.id,
                )
            ]


def to_csv(groups: Iterable[ReviewedGroup]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(groups))
    return buffer.getvalue()
