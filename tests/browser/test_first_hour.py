"""The first hour of a real user (issue 15), in Chromium against a real `lookalike serve`.

Bulk upload through the Library page (20 photos of ~3 MB and a corrupt file, one request
per file, none over the limit), the "already in the library" answer and its link, the
near-duplicate flag whatever the sliders say, every page at 390 and 1280 px (no sideways
scroll, axe-core finds no serious or critical violation), and a search URL that opens the
same results in another logged-in browser. Screenshots go to artifacts/browser/screens
(copied to docs/screens for the README).

The server is shared by the session: this module asserts only on images it uploads. It logs
in once (the login form allows five attempts a minute; the other modules use four).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.browser.conftest import MAX_UPLOAD_MB

pytestmark = pytest.mark.browser

TIMEOUT_MS = 60_000
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
AXE_RUN = """axe.run(document).then((result) => result.violations.map((v) => (
  {id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" "))})))"""
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
SEARCH_STEPS = "/api/v1/search/stream"  # what the Search page asks (NDJSON steps)
# The page reads its search's steps as they arrive (a stream reader), and Chromium then
# keeps no body for Playwright to read (it reports the request as aborted: Playwright issue
# 42742). So each page of these tests keeps a copy of each search's body, by request.
RECORD_SEARCHES = """
window.__searchSteps = {};
(() => {
  const send = window.fetch;
  let count = 0;
  window.fetch = async (url, init) => {
    if (!String(url).endsWith("SEARCH_STEPS")) return send(url, init);
    const id = String(++count);
    const headers = { ...((init && init.headers) || {}), "x-test-search": id };
    const response = await send(url, { ...init, headers });
    response.clone().text().then(
      (text) => { window.__searchSteps[id] = text; },
      () => { window.__searchSteps[id] = ""; });
    return response;
  };
})();
""".replace("SEARCH_STEPS", SEARCH_STEPS)


def is_search(response: Any) -> bool:
    """The Search page's search request."""
    return bool(response.url.endswith(SEARCH_STEPS))


def search_answer(response: Any, timeout_s: float = 60) -> dict[str, Any]:
    """The answer (the last, 'final' step) of the Search page's search request, from the
    page's copy of it (``RECORD_SEARCHES``)."""
    import time

    assert response.ok, response.status
    key = json.dumps(response.request.headers["x-test-search"])
    deadline = time.monotonic() + timeout_s
    while (text := response.frame.page.evaluate(f"window.__searchSteps[{key}]")) is None:
        assert time.monotonic() < deadline, "the search's answer did not come"
        time.sleep(0.02)
    steps = [json.loads(line) for line in text.splitlines()]
    assert steps and steps[-1]["stage"] == "final", steps
    return dict(steps[-1]["result"])


# Distinct real photographs (scikit-image ships them): no two are near duplicates.
DISTINCT = ("astronaut", "rocket", "coffee", "chelsea", "motorcycle", "hubble")


def _array(name: str) -> np.ndarray:
    import skimage.data

    if name == "motorcycle":
        return np.asarray(skimage.data.stereo_motorcycle()[0])
    if name == "hubble":
        return np.asarray(skimage.data.hubble_deep_field())
    return np.asarray(getattr(skimage.data, name)())


@pytest.fixture(scope="module")
def phone_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """20 photos of about 3 MB, as a phone takes them: 5 MP JPEGs with sensor-like grain
    (which is what makes a phone's JPEG large). Made in a few seconds."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("phone-photos")
    rng = np.random.default_rng(15)
    size = (2592, 1944)
    grain = rng.integers(0, 128, size=(size[1], size[0], 3), dtype=np.uint8)
    bases = [np.asarray(Image.fromarray(_array(n)).convert("RGB").resize(size)) for n in DISTINCT]
    paths = []
    for i in range(20):
        pixels = bases[i % len(bases)] // 2 + np.roll(grain, 97 * i, axis=1) // 2 + i
        path = folder / f"IMG_{4000 + i}.jpg"
        Image.fromarray(pixels).save(path, "JPEG", quality=92)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def session(server: Any, browser: Any) -> dict[str, Any]:
    page = new_page(browser, [])
    log_in(page, server)
    state: dict[str, Any] = page.context.storage_state()
    page.context.close()
    return state


def new_page(browser: Any, errors: list[str], viewport: dict[str, int] = DESKTOP, **kw: Any) -> Any:
    """A page in a context of its own; console errors and page errors land in ``errors``."""
    context = browser.new_context(viewport=viewport, **kw)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(RECORD_SEARCHES)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def log_in(page: Any, server: Any) -> None:
    page.goto(f"{server.url}/login")
    page.get_by_test_id("password").fill(server.password)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(f"{server.url}/")


def test_bulk_upload_one_file_per_request_and_already_in_the_library(
    server: Any, browser: Any, session: dict[str, Any], phone_photos: list[Path], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    sizes = [p.stat().st_size for p in phone_photos]
    assert min(sizes) > 2.2e6 and max(sizes) < 4e6, sizes  # "about 3 MB" each
    assert sum(sizes) > MAX_UPLOAD_MB * 1024 * 1024  # together, far over the limit
    corrupt = tmp_path / "scan-0042.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 64)  # a JPEG's start, then junk
    too_big = tmp_path / "poster.tif"
    too_big.write_bytes(b"II*\x00" + b"\0" * (MAX_UPLOAD_MB * 1024 * 1024 + 1))

    errors: list[str] = []
    page = new_page(browser, errors, storage_state=session)
    bodies: list[int] = []
    page.on(
        "request",
        lambda r: (
            bodies.append(len(r.post_data_buffer or b""))
            if r.method == "POST" and r.url.endswith("/api/v1/images")
            else None
        ),
    )
    page.goto(f"{server.url}/library")
    expect(page.get_by_test_id("upload-limit")).to_contain_text(
        f"Up to {MAX_UPLOAD_MB} MB per file"
    )
    page.get_by_test_id("upload-files").set_input_files(
        [*map(str, phone_photos), str(corrupt), str(too_big)]
    )
    rows = page.get_by_test_id("upload-results").locator("li")
    expect(rows).to_have_count(22)
    # The file over the limit is refused at once, with the numbers, before any upload.
    big_row = rows.filter(has_text="poster.tif")
    expect(big_row).to_contain_text(f"the limit is {MAX_UPLOAD_MB} MB per file")
    assert not bodies
    page.get_by_test_id("upload-tags").fill("first-hour")
    page.get_by_test_id("upload").click()
    summary = page.get_by_test_id("upload-summary")
    expect(summary).to_have_text("20 added, 2 not added.", timeout=180_000)
    expect(rows.locator(".file__state").filter(has_text="Added")).to_have_count(20)
    bad = rows.filter(has_text="scan-0042.jpg")
    expect(bad).to_have_class("file file--bad")
    expect(bad.get_by_test_id("upload-state")).to_contain_text("Not a supported image")
    # One request per file that was sent, none larger than one file's limit.
    assert len(bodies) == 21, bodies
    assert max(bodies) < MAX_UPLOAD_MB * 1024 * 1024, max(bodies)
    page.screenshot(path=_shot("library-upload", 1280), full_page=True)

    # The same photo again: "already in the library", with a link to it that works.
    page.get_by_test_id("upload-files").set_input_files(str(phone_photos[3]))
    page.get_by_test_id("upload").click()
    expect(summary).to_have_text("1 already in the library.")
    row = rows.filter(has_text=phone_photos[3].name).last
    expect(row).to_contain_text("Already in the library.")
    row.get_by_test_id("exists-link").click()
    page.wait_for_url("**/library?image=*")
    dialog = page.get_by_test_id("inspect")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#inspect-title")).to_have_text(phone_photos[3].name)
    expect(dialog.locator("#inspect-meta")).to_contain_text("first-hour")
    page.context.close()
    # Chromium logs every 4xx answer: the corrupt file's refusal is the only one expected.
    expected = "Failed to load resource: the server responded with a status of 400"
    assert [e for e in errors if not e.startswith(expected)] == [], errors
    assert sum(e.startswith(expected) for e in errors) == 1, errors


def _upload_distinct(page: Any, server: Any) -> dict[str, str]:
    """The distinct photos, uploaded through the API with the page's session: name -> id."""
    from PIL import Image

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    ids = {}
    for name in DISTINCT:
        buf = io.BytesIO()
        Image.fromarray(_array(name)).convert("RGB").save(buf, "JPEG", quality=90)
        answer = page.request.post(
            f"{server.url}/api/v1/images",
            multipart={
                "files": {"name": f"{name}.jpg", "mimeType": "image/jpeg", "buffer": buf.getvalue()}
            },
            headers={"x-csrftoken": token},
        )
        assert answer.ok, answer.text()
        (result,) = answer.json()["results"]
        ids[name] = result["id"]
    return ids


def test_near_duplicate_flag_does_not_follow_the_sliders(
    server: Any, browser: Any, session: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = new_page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/")
    ids = _upload_distinct(page, server)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    distinct = set(ids.values())
    for name, image_id in ids.items():
        answer = page.request.post(
            f"{server.url}/api/v1/search",
            data=json.dumps({"image_id": image_id, "k": 50, "weights": {"hsv": 1, "cnn": 0}}),
            headers={"content-type": "application/json", "x-csrftoken": token},
        ).json()
        assert answer["weights"] == {"hsv": 1.0, "cnn": 0.0}
        # The other distinct photos are unrelated (the session's other images may include
        # grainy copies of these, which are near duplicates indeed): none is flagged.
        unrelated = [h for h in answer["hits"] if h["id"] in distinct and h["id"] != image_id]
        assert len(unrelated) == len(ids) - 1, name
        assert not [h["filename"] for h in unrelated if h["near_duplicate"]], name
        assert answer["hits"][0]["id"] == image_id and answer["hits"][0]["near_duplicate"]

    # The page shows the same: no badge on an unrelated photo, with colour-only sliders
    # (and the query image itself left out of its own results).
    page.goto(f"{server.url}/?image={ids['rocket']}&w=cnn:0,hsv:1&k=50")
    hits = page.get_by_test_id("hit")
    expect(hits.first).to_be_visible()
    expect(hits.filter(has=page.locator(".hit__name", has_text="rocket.jpg"))).to_have_count(0)
    for name in DISTINCT:
        if name != "rocket":
            other = hits.filter(has=page.locator(".hit__name", has_text=f"{name}.jpg"))
            expect(other).to_have_count(1)
            expect(other.get_by_test_id("near-duplicate")).to_have_count(0)
    expect(page.locator("#w-hsv")).to_have_value("1")
    expect(page.locator("#w-cnn")).to_have_value("0")
    page.context.close()
    assert not errors, errors


def test_a_search_url_opens_the_same_results_elsewhere(
    server: Any, browser: Any, session: dict[str, Any], tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = new_page(browser, errors, storage_state=session)
    page.goto(f"{server.url}/library")
    first = page.get_by_test_id("library-item").first
    first.locator("button").click()
    expect(page.locator("#inspect-meta")).to_contain_text("Id")
    with page.expect_response(is_search):
        page.get_by_test_id("search-with-this").click()
    page.wait_for_url("**/?image=*")
    hits = page.get_by_test_id("hit")
    expect(hits.first).to_be_visible()
    page.locator("#k").select_option("20")
    expect(page).to_have_url(re.compile(r"[?&]k=20"))
    expect(hits.first).to_be_visible()
    shown = hits.locator(".hit__name").all_inner_texts()
    url = page.url
    assert "image=" in url and "w=" in url

    # Another browser, logged in, opening the link: the same search, the same results.
    other = new_page(browser, errors, storage_state=session)
    other.goto(url)
    expect(other.get_by_test_id("hit").locator(".hit__name")).to_have_text(shown)
    assert other.locator("#k").input_value() == "20"

    # Back goes to the previous search (k 10), forward again to k 20.
    page.go_back()
    expect(page.locator("#k")).to_have_value("10")
    expect(page.get_by_test_id("hit")).to_have_count(min(10, len(shown)))
    other.context.close()
    page.context.close()
    assert not errors, errors


PAGES = {
    "login": "/login",
    "search": "/?image={image}",
    "library": "/library",
    "duplicates": "/duplicates",
}


def _shot(name: str, width: int) -> Path:
    from tests.browser.conftest import ARTIFACTS

    folder = ARTIFACTS / "screens"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}-{width}.png"


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["390px", "1280px"])
def test_every_page_fits_the_screen_and_passes_axe(
    server: Any, browser: Any, session: dict[str, Any], viewport: dict[str, int]
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = new_page(browser, errors, viewport, storage_state=session)
    page.goto(f"{server.url}/library")
    image = _upload_distinct(page, server)["rocket"]  # "exists" when an earlier test added it
    axe = AXE.read_text()
    for name, path in PAGES.items():
        anonymous = name == "login"
        target = page
        if anonymous:
            target = new_page(browser, errors, viewport)
        target.goto(f"{server.url}{path.format(image=image)}")
        if name == "search":
            expect(target.get_by_test_id("hit").first).to_be_visible()
        if name == "duplicates":
            expect(target.get_by_test_id("dup-stats")).to_contain_text(re.compile(r"\d+ groups?,"))
        target.wait_for_load_state("networkidle")
        width = target.evaluate("document.scrollingElement.scrollWidth")
        assert width <= viewport["width"], (
            f"{name} scrolls sideways at {viewport['width']} px: {width}"
        )
        if not anonymous:  # the navigation, Log out included, is on screen
            for control in (target.get_by_test_id("logout"), target.locator(".nav__link").last):
                box = control.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], name
        if name == "search":  # the first result is in view without scrolling
            box = target.get_by_test_id("hit").first.bounding_box()
            assert box and box["y"] < viewport["height"], box
        target.evaluate(axe)  # the vendored copy: nothing comes from a CDN
        found = target.evaluate(AXE_RUN)
        serious = [v for v in found if v["impact"] in ("serious", "critical")]
        assert not serious, f"{name} at {viewport['width']} px: {serious}"
        target.screenshot(path=_shot(name, viewport["width"]))
        if anonymous:
            target.context.close()
    page.context.close()
    assert not errors, errors
