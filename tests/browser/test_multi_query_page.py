"""The Search page with several query images, Like / Dislike and "Search again" (issue 17).

A real server (CLIP off) per module, Debian's Chromium; this module uploads five photos of
its own. One test: a two-image query, its matched labels, a Like, a refined search whose URL
reloads the same ranking, the contact sheet, and axe at 390 and 1280 px.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser.test_first_hour import AXE, AXE_RUN, DESKTOP, PHONE, log_in, new_page

pytestmark = pytest.mark.browser

ORDER = "[...document.querySelectorAll('.hit')].map((li) => li.dataset.id).join()"
NAMES = ("astronaut", "rocket", "coffee", "chelsea", "hubble_deep_field")


@pytest.fixture(scope="module")
def photos_here(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import skimage.data
    from PIL import Image

    folder = tmp_path_factory.mktemp("multi-photos")
    out = {}
    for name in NAMES:
        out[name] = folder / f"{name}.jpg"
        pixels = np.asarray(getattr(skimage.data, name)())
        Image.fromarray(pixels).convert("RGB").save(out[name], "JPEG", quality=90)
    return out


def _order(page: Any) -> list[str]:
    return [li.get_attribute("data-id") for li in page.get_by_test_id("hit").all()]


def test_two_images_a_like_and_search_again(
    server: Any, browser: Any, photos_here: dict[str, Path]
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = new_page(browser, errors, DESKTOP)
    log_in(page, server)
    page.goto(f"{server.url}/library")
    page.get_by_test_id("upload-files").set_input_files([str(p) for p in photos_here.values()])
    page.get_by_test_id("upload").click()
    expect(page.get_by_test_id("upload-results").locator("li.file--ok")).to_have_count(5)

    # Two files from this computer, any of them: each finds itself, labelled by its image.
    page.goto(f"{server.url}/")
    page.get_by_test_id("query-file").set_input_files(str(photos_here["astronaut"]))
    expect(page.get_by_test_id("hit")).to_have_count(5)
    page.get_by_test_id("extra-file").set_input_files(str(photos_here["rocket"]))
    matched = page.get_by_test_id("matched")
    expect(matched.filter(has_text="Matched image 2: rocket.jpg")).to_have_count(1)
    expect(matched.filter(has_text="Matched image 1")).not_to_have_count(0)

    # Library images in the URL: Like the last hit, search again, and the URL holds the refinement.
    ids = {
        i["filename"]: i["id"]
        for i in page.request.get(f"{server.url}/api/v1/images").json()["items"]
    }
    page.goto(f"{server.url}/?image={ids['astronaut.jpg']}&images={ids['rocket.jpg']}&combine=all")
    expect(page.get_by_test_id("matched")).to_have_count(5)
    before = _order(page)
    last = page.get_by_test_id("hit").last
    last.get_by_role("button", name="Like", exact=True).click()
    expect(last.get_by_role("button", name="Like", exact=True)).to_have_attribute(
        "aria-pressed", "true"
    )
    page.get_by_test_id("search-again").click()
    page.wait_for_url(f"**like={before[-1]}**")
    expect(page.locator(".hit").first).to_be_visible()
    page.wait_for_function(
        f"(before) => {ORDER} !== before",
        arg=",".join(before),
    )
    refined = _order(page)
    assert refined.index(before[-1]) < before.index(before[-1])
    assert "combine=all" in page.url and ids["rocket.jpg"] in page.url

    page.reload()  # the shared URL gives the same answer
    expect(page.get_by_test_id("hit")).to_have_count(5)
    page.wait_for_function(
        f"(want) => {ORDER} === want",
        arg=",".join(refined),
    )
    with page.expect_download() as download:
        page.get_by_test_id("sheet-pdf").click()
    assert download.value.suggested_filename == "lookalike-results.pdf"

    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        assert page.evaluate("document.scrollingElement.scrollWidth") <= viewport["width"]
        page.evaluate(AXE.read_text())
        found = page.evaluate(AXE_RUN)
        serious = [v for v in found if v["impact"] in ("serious", "critical")]
        assert not serious, f"{viewport['width']} px: {serious}"
    page.context.close()
    assert not errors, errors
