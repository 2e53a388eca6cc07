"""More of the web UI: the duplicates page, the colour filter and the text box without CLIP.

Same server, browser and rules as test_ui.py: a real server with CLIP off, Debian's Chromium,
screenshots under artifacts/browser/ (prefixed ``more_``), and any console error fails a test.
The server is shared by the whole session, so this module uploads images of its own and
asserts only on them, whatever else the library holds. It logs in once (see ``session``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser.test_first_hour import RECORD_SEARCHES, is_search, search_answer

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000  # the first upload or search embeds on a 2-core CPU
RED, BLUE = "#c81e1e", "#1e3cc8"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A photo, a near-identical copy (smaller, re-encoded), an unrelated photo, and two
    drawn images: one mostly red, one mostly blue."""
    import skimage.data
    from PIL import Image, ImageDraw

    folder = tmp_path_factory.mktemp("more-photos")
    paths = {name: folder / name for name in ("astronaut.jpg", "astronaut-copy.jpg", "rocket.jpg")}
    astronaut = Image.fromarray(skimage.data.astronaut()).convert("RGB")
    astronaut.save(paths["astronaut.jpg"], "JPEG", quality=92)
    # The copy a designer finds in another folder: resized and saved again at a lower quality.
    copy = astronaut.resize((448, 448), Image.Resampling.LANCZOS)
    copy.save(paths["astronaut-copy.jpg"], "JPEG", quality=70)
    Image.fromarray(skimage.data.rocket()).convert("RGB").save(paths["rocket.jpg"], quality=92)

    rng = np.random.default_rng(7)
    for name, base, accent in (
        ("red.png", (200, 30, 30), (240, 220, 200)),
        ("blue.png", (30, 60, 200), (230, 230, 240)),
    ):
        pixels = np.clip(np.full((240, 320, 3), base) + rng.normal(0, 6, (240, 320, 3)), 0, 255)
        img = Image.fromarray(pixels.astype(np.uint8))
        draw = ImageDraw.Draw(img)
        draw.ellipse((40, 40, 140, 140), fill=accent)
        draw.rectangle((200, 120, 290, 210), fill=tuple(int(c * 0.6) for c in base))
        paths[name] = folder / name
        img.save(paths[name])
    return paths


@pytest.fixture(scope="module")
def session(server: Any, browser: Any) -> dict[str, Any]:
    """A logged-in session's cookies, shared by the module's pages: the login form allows
    five attempts a minute (api/routes/login.py), and test_ui.py spends three of them."""
    errors: list[str] = []
    page = _page(browser, errors)
    page.goto(f"{server.url}/login")
    page.get_by_test_id("password").fill(server.password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}/")
    state: dict[str, Any] = page.context.storage_state()
    page.context.close()
    assert not errors, errors
    return state


@pytest.fixture(scope="module")
def uploaded(server: Any, browser: Any, session: dict[str, Any], images: dict[str, Path]) -> None:
    """Every image of this module in the library, uploaded through the Library page."""
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/library")
    page.get_by_test_id("upload-files").set_input_files([str(p) for p in images.values()])
    page.get_by_test_id("upload-tags").fill("more-tests")
    page.get_by_test_id("upload").click()
    results = page.get_by_test_id("upload-results")
    expect(results.locator("li.file--ok")).to_have_count(len(images))
    expect(results.locator("li.file--bad")).to_have_count(0)
    page.context.close()
    assert not errors, errors


def _page(browser: Any, errors: list[str], **options: Any) -> Any:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, **options)
    context.add_init_script(RECORD_SEARCHES)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _group_names(page: Any) -> list[list[str]]:
    return [
        sorted(group.locator(".hit__name").all_inner_texts())
        for group in page.get_by_test_id("dup-group").all()
    ]


def test_duplicates_page_groups_a_photo_with_its_copy(
    server: Any, browser: Any, session: dict[str, Any], uploaded: None, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)

    # The page runs the report as soon as it opens, at the server's calibrated threshold:
    # the same one the search page's near-duplicate badge uses.
    status = page.request.get(f"{server.url}/api/v1/status").json()
    calibrated = round(100 * status["near_duplicate_threshold"])
    page.goto(f"{server.url}/duplicates")
    stats = page.get_by_test_id("dup-stats")
    done = re.compile(r"^\d+ groups?, \d+ files?, at \d+% \(\d+ ms\)$")
    expect(stats).to_have_text(done)
    expect(stats).to_contain_text(f"at {calibrated}%")
    expect(page.locator("#dup-threshold-value")).to_have_text(f"{calibrated}%")

    # At 90 %, chosen on the slider: the photo and its copy are one group of exactly two.
    page.get_by_test_id("dup-threshold").fill("0.9")
    expect(page.locator("#dup-threshold-value")).to_have_text("90%")
    with page.expect_response(lambda r: "/api/v1/duplicates?threshold=0.9" in r.url) as report:
        page.get_by_test_id("dup-run").click()
    assert report.value.ok
    expect(stats).to_have_text(done)
    expect(stats).to_contain_text("at 90%")
    groups = _group_names(page)
    assert ["astronaut-copy.jpg", "astronaut.jpg"] in groups, groups
    assert not any("rocket.jpg" in g for g in groups), groups
    # The drawn red and blue images share a layout but not a colour: no group either.
    assert not any("red.png" in g and "blue.png" in g for g in groups), groups

    group = page.get_by_test_id("dup-group").filter(has_text="astronaut-copy.jpg")
    expect(group.locator(".results__title")).to_contain_text("2 files")
    for score in group.get_by_test_id("dup-score").all_inner_texts():
        assert 90 <= int(score.rstrip("%")) < 100, score  # near, not byte-identical
    page.wait_for_load_state("networkidle")
    page.screenshot(path=artifacts / "more_01_duplicates.png", full_page=True)

    # A member opens in the inspector.
    group.get_by_role("button", name="astronaut-copy.jpg").click()
    dialog = page.get_by_test_id("inspect")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#inspect-title")).to_have_text("astronaut-copy.jpg")
    expect(dialog.locator("#inspect-meta")).to_contain_text("448 × 448 px")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # At 100 % (a link can set it) only byte-identical files group: the copy drops out.
    with page.expect_response(lambda r: "/api/v1/duplicates?threshold=1" in r.url) as report:
        page.goto(f"{server.url}/duplicates?threshold=1")
    assert report.value.ok
    expect(stats).to_contain_text("at 100%")
    expect(page.locator("#dup-threshold-value")).to_have_text("100%")
    assert not any("astronaut.jpg" in g for g in _group_names(page))
    page.context.close()
    assert not errors, errors


def test_colour_filter_keeps_only_images_with_a_near_colour(
    server: Any,
    browser: Any,
    session: dict[str, Any],
    images: dict[str, Path],
    uploaded: None,
    artifacts: Path,
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/")
    hits = page.get_by_test_id("hit")
    names = hits.locator(".hit__name")

    # No colour yet: the blue query finds itself first, and the red image too.
    with page.expect_response(is_search) as searched:
        page.get_by_test_id("query-file").set_input_files(str(images["blue.png"]))
    unfiltered = _shown(searched.value, names)
    assert unfiltered[0] == "blue.png"
    assert "red.png" in unfiltered
    # Go on from a library image ("search with this image"): the searches are then JSON, so
    # the filters the page sends can be read (Chromium hides a multipart body with a file).
    # The rocket: neither colour's image is then the one left out of its own results.
    hits.filter(has_text="rocket.jpg").first.locator("button.hit__button").click()
    # The button only works once the image's metadata is in (inspect.js sets its handler
    # after GET /api/v1/images/{id}): wait for the format, which only that answer carries.
    expect(page.locator("#inspect-meta")).to_contain_text("JPEG")
    with page.expect_response(is_search) as searched:
        page.get_by_test_id("search-with-this").click()
    sent = json.loads(searched.value.request.post_data or "{}")
    assert sent["exclude"] == [sent["image_id"]]  # Find similar leaves its own image out
    shown = _shown(searched.value, names)
    assert "rocket.jpg" not in shown and {"red.png", "blue.png"} <= set(shown), shown

    # The colour as a designer types it (no '#') with a tight tolerance, then Search.
    for colour, tolerance, wanted, unwanted, shot in (
        (RED[1:], 15, "red.png", "blue.png", "more_02_colour_red.png"),
        (BLUE, 10, "blue.png", "red.png", "more_03_colour_blue.png"),
    ):
        page.get_by_test_id("colour").fill(colour)
        page.get_by_test_id("colour-tolerance").fill(str(tolerance))
        with page.expect_response(is_search) as searched:
            page.get_by_test_id("search").click()
        sent = json.loads(searched.value.request.post_data or "{}")
        hex_colour = "#" + colour.lstrip("#")  # the page adds the '#' a designer leaves out
        assert sent.get("image_id") and sent.get("filters") == {
            "colour": hex_colour,
            "colour_tolerance": tolerance,
        }, sent
        shown = _shown(searched.value, names)
        assert wanted in shown and unwanted not in shown, shown
        for hit in search_answer(searched.value)["hits"]:  # the server kept only near palettes
            assert _nearest(hit["palette"], hex_colour) <= tolerance, hit
        expect(hits.first.locator(".hit__name")).to_have_text(shown[0])
        page.wait_for_load_state("networkidle")
        page.screenshot(path=artifacts / shot)

    # Clearing the colour lifts the filter.
    page.get_by_test_id("colour").fill("")
    with page.expect_response(is_search) as searched:
        page.get_by_test_id("search").click()
    shown = _shown(searched.value, names)
    assert {"red.png", "blue.png"} <= set(shown), shown
    page.context.close()
    assert not errors, errors


def _shown(response: Any, names: Any) -> list[str]:
    """The hits' names as the page shows them, once it shows exactly what the server sent."""
    from playwright.sync_api import expect

    assert response.ok, response.text()
    sent = [hit["filename"] for hit in search_answer(response)["hits"]]
    expect(names).to_have_text(sent)
    return sent


def _nearest(palette: list[str], colour: str) -> float:
    """The smallest delta E (CIE76) between ``colour`` and a palette colour."""
    from embedder.palette import delta_e, rgb_to_lab

    def lab(c: str) -> np.ndarray:
        return rgb_to_lab(np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)]))

    return min((float(delta_e(lab(c), lab(colour))) for c in palette), default=np.inf)


def test_text_box_is_off_and_says_why_without_clip(
    server: Any, browser: Any, session: dict[str, Any], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/")

    # /api/v1/status names the active models; without CLIP the page turns text search off.
    reason = page.get_by_test_id("text-off")
    expect(reason).to_be_visible()
    expect(reason).to_contain_text("CLIP")
    expect(reason).to_contain_text("LOOKALIKE_CLIP_WEIGHTS")
    expect(page.get_by_test_id("query-text")).to_be_disabled()
    # The Meaning (CLIP) weight is off too, and says so; the others stay usable.
    clip = page.locator('.slider[data-role="clip"]')
    expect(clip.locator("input")).to_be_disabled()
    expect(clip.locator("output")).to_have_text("off")
    expect(page.locator("#w-cnn")).to_be_enabled()
    expect(page.locator("#w-hsv")).to_be_enabled()
    page.screenshot(path=artifacts / "more_04_text_off.png")
    page.context.close()
    assert not errors, errors
