"""The web UI as a designer uses it: log in, upload, search, crop, inspect, log out.

Screenshots of each step go to artifacts/browser/ (kept by CI as test artefacts). Any console
error fails the test: that is how a Content-Security-Policy violation (an inline script, a
blocked image) shows up in a browser.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_first_hour import RECORD_SEARCHES, is_search, search_answer

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000  # the first search embeds on a 2-core CPU


def _page(browser: Any, errors: list[str], **options: Any) -> Any:
    context = browser.new_context(**options)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_SEARCHES)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def _log_in(page: Any, server: Any) -> None:
    page.goto(f"{server.url}/")
    assert "/login" in page.url  # anonymous: sent to the login page
    page.get_by_test_id("password").fill(server.password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}/")


def test_log_in_upload_search_inspect_log_out(
    server: Any, browser: Any, photos: dict[str, Path], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, viewport={"width": 1440, "height": 900})

    page.goto(f"{server.url}/")
    page.wait_for_url("**/login**")
    page.screenshot(path=artifacts / "01_login.png")
    _log_in(page, server)
    expect(page.get_by_test_id("dropzone")).to_be_visible()

    # Library: upload three photos with a tag.
    page.goto(f"{server.url}/library")
    page.get_by_test_id("upload-files").set_input_files([str(p) for p in photos.values()])
    page.get_by_test_id("upload-tags").fill("browser-test, photos")
    page.get_by_test_id("upload").click()
    expect(page.get_by_test_id("upload-results").locator("li.file--ok")).to_have_count(
        3, timeout=TIMEOUT_MS
    )
    expect(page.get_by_test_id("stat-points")).to_have_text("3")
    expect(page.get_by_test_id("browse-grid").locator("li")).to_have_count(3)
    expect(page.get_by_test_id("model-cnn")).to_contain_text("effnet-lite0")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=artifacts / "02_library.png", full_page=True)

    # Search with one of them: it comes back first, as a near-duplicate of itself.
    page.goto(f"{server.url}/")
    page.get_by_test_id("query-file").set_input_files(str(photos["chelsea.jpg"]))
    hits = page.get_by_test_id("hit")
    expect(hits).to_have_count(3)
    first = hits.first
    expect(first.locator(".hit__name")).to_have_text("chelsea.jpg")
    expect(first.get_by_test_id("near-duplicate")).to_be_visible()
    expect(first.get_by_test_id("score")).to_have_text("100%")
    page.wait_for_load_state("networkidle")
    page.screenshot(path=artifacts / "03_results.png")

    # Crop the query: the next search sends the box, in the photo's own pixels, and the
    # server embeds only that part (so the photo no longer matches itself at 100 %).
    canvas = page.locator("#stage-canvas").bounding_box()
    assert canvas is not None
    with page.expect_response(is_search) as cropped:
        page.mouse.move(canvas["x"] + canvas["width"] * 0.25, canvas["y"] + canvas["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(
            canvas["x"] + canvas["width"] * 0.7, canvas["y"] + canvas["height"] * 0.8, steps=6
        )
        page.mouse.up()
    crop_text = page.locator("#query-crop").inner_text()
    match = re.fullmatch(r"Crop (\d+) × (\d+) px at (\d+), (\d+)", crop_text)
    assert match, crop_text
    w, h, x, y = map(int, match.groups())
    assert 0 < x < 451 and 0 < y < 300 and 0 < w < 451 - x and 0 < h < 300 - y
    result = search_answer(cropped.value)
    assert result["hits"][0]["filename"] == "chelsea.jpg"
    assert result["hits"][0]["score"] < 0.999
    expect(page.locator("#crop-reset")).to_be_visible()
    page.screenshot(path=artifacts / "04_crop.png")

    # Inspect the best hit: full image, metadata, "search with this image".
    first.locator("button.hit__button").click()
    dialog = page.get_by_test_id("inspect")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#inspect-title")).to_have_text("chelsea.jpg")
    expect(dialog.locator("#inspect-meta")).to_contain_text("451 × 300 px")
    expect(dialog.locator("#inspect-meta")).to_contain_text("browser-test")
    expect(dialog.locator("#inspect-img")).to_have_attribute("src", _file_url_pattern())
    # Not wait_for_function: the page's CSP forbids the eval it needs (a flaky EvalError).
    expect(dialog.locator("#inspect-img")).to_have_js_property("naturalWidth", 451)
    page.screenshot(path=artifacts / "05_inspect.png")
    with page.expect_response(is_search) as by_id:
        dialog.get_by_test_id("search-with-this").click()
    assert json.loads(by_id.value.request.post_data or "{}").get("image_id")
    expect(dialog).to_be_hidden()
    # The other two photos: the query image itself is left out of its own results.
    expect(page.get_by_test_id("hit")).to_have_count(2)
    expect(page.locator(".hit__name", has_text="chelsea.jpg")).to_have_count(0)

    # Phone width: one column of controls, two of results.
    phone = _page(browser, errors, viewport={"width": 390, "height": 844}, device_scale_factor=2)
    phone.context.add_cookies(page.context.cookies())
    phone.goto(f"{server.url}/")
    phone.get_by_test_id("query-file").set_input_files(str(photos["coffee.jpg"]))
    expect(phone.get_by_test_id("hit").first.locator(".hit__name")).to_have_text("coffee.jpg")
    phone.wait_for_load_state("networkidle")
    phone.screenshot(path=artifacts / "06_phone.png", full_page=True)
    phone.context.close()

    # Log out: back to the login page, and the pages are closed again.
    page.get_by_test_id("logout").click()
    page.wait_for_url("**/login?error=logged_out")
    page.screenshot(path=artifacts / "07_logged_out.png")
    page.goto(f"{server.url}/library")
    assert "/login" in page.url
    page.context.close()

    assert not errors, f"console errors (CSP violations show up here): {errors}"


def _file_url_pattern() -> re.Pattern[str]:
    return re.compile(r"/api/v1/images/[0-9a-f-]{36}/(file|thumbnail)$")


_DELIVER = """
async ([b64, name, how]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, { type: "image/jpeg" }));
  if (how === "paste") {
    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
  } else {
    const zone = document.querySelector("#dropzone");
    const drop = { dataTransfer: data, bubbles: true, cancelable: true };
    zone.dispatchEvent(new DragEvent("drop", drop));
  }
}
"""


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_a_dropped_or_pasted_image_starts_a_search(
    how: str, server: Any, browser: Any, photos: dict[str, Path]
) -> None:
    import base64

    from playwright.sync_api import expect

    errors: list[str] = []
    page = _page(browser, errors, viewport={"width": 1280, "height": 800})
    _log_in(page, server)
    data = base64.b64encode(photos["coffee.jpg"].read_bytes()).decode()
    with page.expect_response(is_search) as searched:
        page.evaluate(_DELIVER, [data, f"{how}ed.jpg", how])
    assert searched.value.ok
    expect(page.locator("#query-name")).to_have_text(f"{how}ed.jpg")
    expect(page.locator("#query-crop")).to_contain_text("600 × 400 px")
    page.context.close()
    assert not errors, errors
