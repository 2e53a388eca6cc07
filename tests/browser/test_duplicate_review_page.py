"""Duplicate review in the browser: mark a group "not duplicates", reload, it stays dismissed;
keep one image of another group and delete the others in one confirmed step. The page passes
axe and fits at 390 and 1280 px with groups and their buttons on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_first_hour import AXE, AXE_RUN, DESKTOP, PHONE, log_in, new_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two unrelated photos, each as a PNG and a BMP of the same pixels: two exact-copy
    groups (a score of 1, whatever the threshold)."""
    import skimage.data
    from PIL import Image

    folder = tmp_path_factory.mktemp("dup-review")
    paths = []
    for name, array in (("sun", skimage.data.coffee()), ("sea", skimage.data.rocket())):
        img = Image.fromarray(array).convert("RGB")
        img.thumbnail((200, 200))
        for suffix in ("png", "bmp"):
            paths.append(folder / f"{name}.{suffix}")
            img.save(paths[-1])
    return paths


def test_review_marks_survive_a_reload_and_keep_one_deletes_the_others(
    server: Any, browser: Any, images: list[Path], artifacts: Path
) -> None:
    from playwright.sync_api import expect

    errors: list[str] = []
    page = new_page(browser, errors, DESKTOP)
    log_in(page, server)
    page.goto(f"{server.url}/library")
    page.get_by_test_id("upload-files").set_input_files([str(p) for p in images])
    page.get_by_test_id("upload").click()
    expect(page.get_by_test_id("upload-results").locator("li.file--ok")).to_have_count(4)

    page.goto(f"{server.url}/duplicates")
    groups = page.get_by_test_id("dup-group")
    expect(groups).to_have_count(2)
    expect(groups.first.get_by_test_id("dup-kind")).to_have_text("Exact copy")
    sun = groups.filter(has_text="sun.png")
    sun.get_by_role("button", name="Not duplicates").click()
    expect(groups).to_have_count(1)
    expect(page.get_by_test_id("dup-stats")).to_contain_text("1 dismissed hidden")
    page.reload()
    expect(page.get_by_test_id("dup-stats")).to_contain_text("1 dismissed hidden")
    expect(groups).to_have_count(1)
    expect(groups.filter(has_text="sun.png")).to_have_count(0)
    page.get_by_text("Show dismissed groups").click()
    expect(groups).to_have_count(2)
    expect(sun.get_by_test_id("dup-state")).to_have_text("Marked: not duplicates")

    # Keep sea.png; the bulk button counts the group, the dialog the images.
    sea = groups.filter(has_text="sea.png")
    card = sea.locator("li.hit").filter(has_text="sea.png")
    card.get_by_role("button", name="Keep this one").click()
    bulk = page.get_by_role("button", name="Delete the others in 1 group")
    expect(bulk).to_be_visible()
    expect(sea.get_by_test_id("dup-state")).to_contain_text("Keeping sea.png")
    points = page.request.get(f"{server.url}/api/v1/status").json()["points"]
    page.wait_for_load_state("networkidle")
    page.screenshot(path=artifacts / "dup_review_1280.png", full_page=True)
    bulk.click()
    dialog = page.get_by_test_id("dup-confirm")
    expect(dialog).to_contain_text("1 image will leave the library")
    dialog.get_by_role("button", name="Delete them").click()
    expect(page.get_by_text("1 image deleted.")).to_be_visible()
    expect(groups).to_have_count(1)  # the dismissed sun group only
    expect(bulk).to_be_hidden()
    assert page.request.get(f"{server.url}/api/v1/status").json()["points"] == points - 1
    library = page.request.get(f"{server.url}/api/v1/images?limit=50").json()
    names = sorted(i["filename"] for i in library["items"])
    assert names == ["sea.png", "sun.bmp", "sun.png"], names

    # At phone width: no sideways scroll, and axe finds nothing serious.
    page.set_viewport_size(PHONE)
    page.reload()
    expect(groups).to_have_count(0)  # reloaded without "show dismissed"
    page.get_by_text("Show dismissed groups").click()
    expect(groups).to_have_count(1)
    page.wait_for_load_state("networkidle")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE["width"]
    page.evaluate(AXE.read_text())
    serious = [v for v in page.evaluate(AXE_RUN) if v["impact"] in ("serious", "critical")]
    assert not serious, serious
    page.screenshot(path=artifacts / "dup_review_390.png", full_page=True)
    page.context.close()
    assert not errors, errors


def test_the_cli_reads_the_review_through_the_server(server: Any) -> None:
    """After the test above: `lookalike duplicates` beside the server shows its decisions."""
    import csv
    import io
    import json
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cli", "duplicates", *args],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listed = cli("--all", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "asking it" in listed.stderr  # through the server, and it says so
    groups = json.loads(listed.stdout)["groups"]
    assert [g["decision"] for g in groups] == ["not_duplicates"]
    table = cli("--csv", "-")
    rows = list(csv.reader(io.StringIO(table.stdout)))
    assert rows[0][:5] == ["group", "kind", "score", "paths", "decision"]
    assert {r[4] for r in rows[1:]} == {"not_duplicates"} and len(rows) == 3
    applied = cli("--apply", "--yes", "--json")
    assert applied.returncode == 0 and json.loads(applied.stdout) == {"deleted": []}
