"""The UI review's defects, each held fixed in Chromium against a real `lookalike serve`.

One server for the module (conftest.py), one login shared by the tests (the password test,
which ends every other session, runs last). The library is filled through the library
folder and one re-index: an image stored at two paths (the same bytes twice) is only made
that way. Screenshots go to artifacts/browser/review_*.png. Any console error fails a test.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_first_hour import (
    DESKTOP,
    PHONE,
    RECORD_SEARCHES,
    TIMEOUT_MS,
    is_search,
    log_in,
    search_answer,
)

pytestmark = pytest.mark.browser

WIDE = {"width": 1280, "height": 800}  # the height at which the preview was clipped
STALE = "That image is no longer in the library (the link may be old). Drop an image to search."


@pytest.fixture(scope="module")
def session(server: Any, browser: Any) -> dict[str, Any]:
    page = _page(browser, [])
    log_in(page, server)
    state: dict[str, Any] = page.context.storage_state()
    page.context.close()
    return state


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A square photo (for the preview), two unrelated photos, and a drawn image."""
    import numpy as np
    import skimage.data
    from PIL import Image, ImageDraw

    folder = tmp_path_factory.mktemp("review")
    paths = {name: folder / name for name in ("square.jpg", "rocket.jpg", "coffee.png")}
    Image.fromarray(skimage.data.astronaut()).convert("RGB").resize((400, 400)).save(
        paths["square.jpg"], quality=90
    )
    Image.fromarray(skimage.data.rocket()).convert("RGB").save(paths["rocket.jpg"], quality=90)
    coffee = Image.fromarray(skimage.data.coffee()).convert("RGB")
    coffee.thumbnail((300, 300))
    coffee.save(paths["coffee.png"])
    pixels = np.zeros((240, 320, 3), np.uint8) + np.array([200, 40, 40], np.uint8)
    drawn = Image.fromarray(pixels)
    ImageDraw.Draw(drawn).ellipse((60, 40, 200, 180), fill=(240, 220, 200))
    paths["red.png"] = folder / "red.png"
    drawn.save(paths["red.png"])
    return paths


@pytest.fixture(scope="module")
def library(server: Any, pictures: dict[str, Path], tmp_path_factory: Any) -> dict[str, str]:
    """The module's library, by re-index: the pictures, a cat photo stored twice (cat.jpg
    and cat-copy.jpg, the same bytes: one image at two paths) with a smaller re-encoded copy
    (cat-small.jpg, a near duplicate), and coffee.png again as coffee-again.png (one image at
    two paths, alone in its duplicate group). Returns filename -> image id."""
    import skimage.data
    from PIL import Image

    root = server.library
    for path in pictures.values():
        shutil.copy(path, root / path.name)
    cat = Image.fromarray(skimage.data.chelsea()).convert("RGB")
    cat.save(root / "cat.jpg", quality=92)
    shutil.copy(root / "cat.jpg", root / "cat-copy.jpg")
    cat.resize((300, 200), Image.Resampling.LANCZOS).save(root / "cat-small.jpg", quality=75)
    shutil.copy(root / "coffee.png", root / "coffee-again.png")
    with server.client() as http:
        job = http.post("/api/v1/reindex", headers=server.key("write"), json={}).json()
        assert server.wait_job(job["id"], timeout=300)["state"] == "done"
        items = http.get("/api/v1/images?limit=50", headers=server.key("read")).json()["items"]
    return {i["filename"]: i["id"] for i in items}


def _page(browser: Any, errors: list[str], viewport: dict[str, int] = WIDE, **kw: Any) -> Any:
    context = browser.new_context(viewport=viewport, **kw)
    context.add_init_script(RECORD_SEARCHES)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _shot(page: Any, artifacts: Path, name: str, full: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    width = page.viewport_size["width"]
    page.screenshot(path=artifacts / f"review_{name}_{width}.png", full_page=full)


# ---------- Search ----------


def test_an_empty_library_says_so_not_that_filters_match_nothing(
    server: Any, browser: Any, session: dict[str, Any], pictures: dict[str, Path]
) -> None:
    """First in the module: the library is still empty (``library`` fills it later)."""
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    assert page.request.get(f"{server.url}/api/v1/status").json()["points"] == 0
    page.goto(f"{server.url}/")
    empty = page.locator("#results-empty")
    expect(empty).not_to_contain_text("on the left")  # wrong on a phone, where it is above
    page.get_by_test_id("query-file").set_input_files(str(pictures["rocket.jpg"]))
    expect(page.locator("#results-title")).to_have_text("0 lookalikes")
    expect(empty.locator(".empty__text")).to_contain_text("The library is empty")
    expect(empty).not_to_contain_text("filters")
    page.context.close()
    assert not errors, errors


def test_the_preview_is_whole_and_its_crop_hint_reads_as_a_line(
    server: Any,
    browser: Any,
    session: dict[str, Any],
    library: dict[str, str],
    pictures: dict[str, Path],
    artifacts: Path,
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/")
    page.get_by_test_id("query-file").set_input_files(str(pictures["square.jpg"]))
    expect(page.get_by_test_id("hit").first).to_be_visible()
    canvas = page.locator("#stage-canvas").bounding_box()
    zone = page.get_by_test_id("dropzone").bounding_box()
    stage = page.locator("#stage").bounding_box()
    assert canvas and zone and stage
    assert canvas["width"] > 200 and abs(canvas["height"] - canvas["width"]) <= 1, canvas
    # Seen whole: neither the stage (overflow hidden) nor the drop zone cuts it off.
    assert stage["height"] >= canvas["height"] - 1, (stage, canvas)
    assert zone["y"] + zone["height"] >= canvas["y"] + canvas["height"], (zone, canvas)

    hint = page.locator("#query-crop")
    expect(hint).to_contain_text("drag on the image to crop")
    box = hint.bounding_box()
    assert box and box["width"] >= 200, box  # not squeezed beside the actions
    assert box["height"] <= 40, box  # one line, two at most: not a word a line
    _shot(page, artifacts, "search_query", full=False)
    page.set_viewport_size(PHONE)
    box = hint.bounding_box()
    assert box and box["width"] >= 200 and box["height"] <= 40, box
    _shot(page, artifacts, "search_query")
    page.context.close()
    assert not errors, errors


def test_clear_empties_the_results(
    server: Any,
    browser: Any,
    session: dict[str, Any],
    library: dict[str, str],
    pictures: dict[str, Path],
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/")
    page.get_by_test_id("query-file").set_input_files(str(pictures["rocket.jpg"]))
    hits = page.get_by_test_id("hit")
    expect(hits.first).to_be_visible()
    expect(page.locator("#sheet-actions")).to_be_visible()
    page.locator("#query-clear").click()
    expect(hits).to_have_count(0)
    expect(page.locator("#results-empty")).to_be_visible()
    expect(page.locator("#results-empty .empty__title")).to_have_text("Nothing searched yet")
    expect(page.locator("#results-title")).to_have_text("Results")
    expect(page.locator("#results-stats")).to_have_text("")
    expect(page.locator("#sheet-actions")).to_be_hidden()
    expect(page.get_by_test_id("search")).to_be_disabled()
    page.context.close()
    assert not errors, errors


@pytest.mark.parametrize("image", ["not-an-id", "00000000-0000-4000-8000-000000000000"])
def test_a_stale_image_link_says_so_in_plain_words(
    image: str, server: Any, browser: Any, session: dict[str, Any], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/?image={image}")
    expect(page.locator("#dropzone-error")).to_have_text(STALE)
    if image == "not-an-id":
        _shot(page, artifacts, "stale_link", full=False)
    page.context.close()
    # The browser logs the failed GET itself (400 or 404): that is the link, not the page.
    assert all("Failed to load resource" in e for e in errors), errors


def test_find_similar_leaves_the_query_image_out_and_names_only_models_in_use(
    server: Any, browser: Any, session: dict[str, Any], library: dict[str, str], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    with page.expect_response(is_search) as searched:
        page.goto(f"{server.url}/?image={library['rocket.jpg']}")
    request = json.loads(searched.value.request.post_data or "{}")
    assert request["exclude"] == [library["rocket.jpg"]]  # the page asks to leave it out ...
    sent = [h["filename"] for h in search_answer(searched.value)["hits"]]
    assert "rocket.jpg" not in sent and len(sent) >= 5  # ... the server does
    expect(page.get_by_test_id("hit").locator(".hit__name")).to_have_text(sent)

    # "More like this colour" with CLIP off: the notice names colour and shape only.
    page.get_by_test_id("hit").first.get_by_test_id("more-like-colour").click()
    notice = page.get_by_test_id("colour-notice")
    expect(notice).to_contain_text("with colour weighed 1 and shape 0.2.")
    expect(notice).not_to_contain_text("meaning")
    _shot(page, artifacts, "find_similar", full=False)
    page.context.close()
    assert not errors, errors


def test_file_buttons_show_a_focus_ring_from_the_keyboard(
    server: Any, browser: Any, session: dict[str, Any], artifacts: Path
) -> None:
    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    ring = """(id) => {
      const label = document.querySelector(`label[for="${id}"]`);
      const s = getComputedStyle(label);
      return {active: document.activeElement.id, style: s.outlineStyle, width: s.outlineWidth};
    }"""
    # The file input comes right after Log out in the tab order, on both pages.
    for path, target in (("/", "query-file"), ("/library", "upload-files")):
        page.goto(f"{server.url}{path}")
        page.wait_for_load_state("networkidle")
        page.get_by_test_id("logout").focus()
        unfocused = page.evaluate(ring, target)
        page.keyboard.press("Tab")
        focused = page.evaluate(ring, target)
        assert focused["active"] == target, focused
        assert unfocused["style"] == "none", unfocused
        assert focused["style"] == "solid" and focused["width"] == "2px", focused
        _shot(page, artifacts, f"focus_{target}", full=False)
    page.context.close()
    assert not errors, errors


# ---------- Library ----------


def test_library_filters_fit_a_phone_and_say_when_nothing_matches(
    server: Any, browser: Any, session: dict[str, Any], library: dict[str, str], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, PHONE, storage_state=session)
    page.goto(f"{server.url}/library?tag=no-such-tag")
    empty = page.get_by_test_id("browse-empty")
    expect(empty).to_contain_text("No image matches these filters")
    expect(empty).not_to_contain_text("Add some")
    # Where the library lives, not a claim that it is being indexed right now.
    expect(page.locator("#library-dirs")).to_have_text(f"Library folder: {server.library}")
    for field in ("browse-folder", "browse-tag", "browse-format"):
        box = page.get_by_test_id(field).bounding_box()
        assert box and box["width"] >= 140, (field, box)
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    _shot(page, artifacts, "library_filters")
    page.get_by_test_id("browse-empty-clear").click()
    expect(page.get_by_test_id("library-item")).to_have_count(len(library))
    expect(empty).to_be_hidden()
    expect(page.get_by_test_id("browse-tag")).to_have_value("")
    assert "tag=" not in page.url

    # The inspector's palette: swatches fill their 28 px strip.
    page.set_viewport_size(DESKTOP)
    page.get_by_test_id("library-item").first.locator("button").click()
    swatch = page.locator("#inspect-palette .swatch").first
    palette = page.locator("#inspect-palette").bounding_box()
    box = swatch.bounding_box()
    assert palette and box, (palette, box)
    assert box["height"] >= 27 and box["width"] > 20, box
    _shot(page, artifacts, "inspector", full=False)
    page.context.close()
    assert not errors, errors


# ---------- Duplicates ----------


def test_deleting_an_image_stored_twice_counts_its_files(
    server: Any, browser: Any, session: dict[str, Any], library: dict[str, str], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/duplicates?threshold=0.9")
    stats = page.get_by_test_id("dup-stats")
    expect(stats).to_contain_text("2 groups, 5 files")
    groups = page.get_by_test_id("dup-group")
    cats = groups.filter(has_text="cat-small.jpg")
    expect(cats.get_by_text("2 identical files")).to_be_visible()

    # The exact copy alone in its group: no other image to keep or delete, only its files.
    alone = groups.filter(has_text="coffee")
    expect(alone.get_by_text("2 identical files")).to_be_visible()
    expect(alone.get_by_test_id("dup-keep")).to_have_count(0)
    expect(alone.get_by_test_id("dup-keep-file")).to_have_count(1)

    cats.locator("li.hit").filter(has_text="cat-small.jpg").get_by_test_id("dup-keep").click()
    bulk = page.get_by_role("button", name="Delete the others in 1 group")
    expect(bulk).to_be_visible()
    _shot(page, artifacts, "dup_marked")
    bulk.click()
    dialog = page.get_by_test_id("dup-confirm")
    expect(dialog).to_contain_text("2 files (1 image) will leave the library")
    dialog.get_by_role("button", name="Delete them").click()
    expect(page.get_by_text("2 files (1 image) deleted.")).to_be_visible()
    assert not (server.library / "cat.jpg").exists()
    assert not (server.library / "cat-copy.jpg").exists()
    expect(stats).to_contain_text("1 group, 2 files")  # not "1 groups"

    # Keep one of its files: the other goes to the trash, the image stays.
    alone.get_by_test_id("dup-keep-file").click()
    files = page.get_by_test_id("dup-files")
    expect(files.get_by_role("radio")).to_have_count(2)
    files.get_by_label("coffee.png").check()
    _shot(page, artifacts, "dup_keep_file")
    files.get_by_role("button", name="Move the others to the trash").click()
    toast = page.locator(".toast").filter(has_text="Kept coffee.png; 1 file moved to the trash.")
    expect(toast).to_be_visible()
    expect(stats).to_contain_text("0 groups, 0 files")
    assert (server.library / "coffee.png").exists()
    assert not (server.library / "coffee-again.png").exists()
    with server.client() as http:
        image = http.get(
            f"/api/v1/images/{library['coffee-again.png']}", headers=server.key("read")
        ).json()
    assert image["paths"] == ["coffee.png"]
    page.set_viewport_size(PHONE)
    _shot(page, artifacts, "dup_kept")
    page.context.close()
    assert not errors, errors


# ---------- Navigation and the password page (last: it ends every other session) ----------


def test_change_password_from_the_nav_says_it_is_done(
    server: Any, browser: Any, session: dict[str, Any], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, PHONE, storage_state=session)
    page.goto(f"{server.url}/library")
    docs = page.get_by_role("link", name=re.compile("^API docs"))
    expect(docs).to_have_attribute("target", "_blank")
    expect(docs).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
    link = page.get_by_test_id("change-password")
    box = link.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    link.click()
    page.wait_for_url("**/password")
    expect(page.locator(".nav").get_by_role("link", name="Search")).to_be_visible()
    expect(page.get_by_test_id("password-cancel")).to_have_attribute("href", "/")
    _shot(page, artifacts, "password")
    page.get_by_test_id("new-password").fill("a new review password")
    page.get_by_test_id("confirm-password").fill("a new review password")
    page.get_by_test_id("password-submit").click()
    page.wait_for_url(re.compile(r"/password\?changed=1"))
    expect(page.get_by_test_id("password-changed")).to_contain_text("password has been changed")
    _shot(page, artifacts, "password_changed")
    page.get_by_test_id("password-back").click()
    page.wait_for_url(f"{server.url}/")
    expect(page.get_by_test_id("dropzone")).to_be_visible()  # still logged in
    page.context.close()
    assert not errors, errors
