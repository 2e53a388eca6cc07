"""engine.contact_sheet: a result page or a duplicate group as a PDF or a PNG."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from PIL import Image

from engine.composition import Lookalike
from engine.contact_sheet import group_sheet, render, render_pdf, search_sheet
from engine.errors import BadInput
from engine.search_request import QueryImage, SearchRequest
from tests.unit.engine.conftest import picture, save


@pytest.fixture
def lk(make_lookalike: Callable[..., Lookalike]) -> Lookalike:
    lk = make_lookalike()
    for seed in range(10):
        save(picture(seed), lk.settings.library_dir / "designs" / f"ring-{seed}.png")
    save(picture(3), lk.settings.library_dir / "copies" / "ring-3-copy.png")
    lk.indexing.index()
    return lk


def _sheet(lk: Lookalike):  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    picture(3).save(buf, "PNG")
    result = lk.search.run(SearchRequest(image=buf.getvalue(), k=9))
    calibration = lk.search.defaults().source
    return result, search_sheet(result, "query.png", lk.thumbnails.path, picture(3), calibration)


def test_a_pdf_carries_every_hit_its_scores_and_paths_as_text(lk: Lookalike) -> None:
    result, sheet = _sheet(lk)
    pdf = render_pdf(sheet, compress=False)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type /Page\b", pdf)) == 2  # query + 9 hits, 8 to a page
    assert b"designs/ring-3.png" in pdf and b"copies/ring-3-copy.png" in pdf
    assert b"100.0 %" in pdf and b"near duplicate" in pdf
    assert b"calibration.json [hsv-8x8x8]" in pdf
    assert len(sheet.items) == len(result.hits) == 9


def test_a_sheet_of_several_query_images_says_which_one_each_hit_matched(lk: Lookalike) -> None:
    queries = []
    for seed in (2, 7):
        buf = io.BytesIO()
        picture(seed).save(buf, "PNG")
        queries.append(QueryImage(buf.getvalue()))
    result = lk.search.run(SearchRequest(queries=tuple(queries), k=4))
    sheet = search_sheet(result, "2 images", lk.thumbnails.path)
    by_title = {item.title: item.lines for item in sheet.items}
    assert "matched query image 1" in by_title["ring-2.png"]
    assert "matched query image 2" in by_title["ring-7.png"]
    assert b"matched query image 2" in render_pdf(sheet, compress=False)


def test_a_png_is_one_picture_of_the_grid(lk: Lookalike) -> None:
    _, sheet = _sheet(lk)
    with Image.open(io.BytesIO(render(sheet, "png"))) as png:
        assert png.format == "PNG" and png.width > 4 * 256
        assert png.height > 3 * 256  # 10 cells: 3 rows
        colours = png.convert("RGB").getcolors(maxcolors=1 << 20) or []
        assert len(colours) > 100  # thumbnails, not a blank page


def test_a_duplicate_group(lk: Lookalike) -> None:
    group = lk.duplicates.report(0.999).groups[0]
    sheet = group_sheet(group, lk.thumbnails.path, 0.999)
    pdf = render_pdf(sheet, compress=False)
    assert b"designs/ring-3.png" in pdf and b"copies/ring-3-copy.png" in pdf


def test_an_unknown_format_is_refused(lk: Lookalike) -> None:
    _, sheet = _sheet(lk)
    with pytest.raises(BadInput, match="'pdf' or 'png'"):
        render(sheet, "docx")
