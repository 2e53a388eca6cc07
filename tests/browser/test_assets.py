"""The UI's templates and static files keep to the page's CSP, checked without a browser.

The CSP (api/app.py) allows scripts, styles, fonts and connections from the site itself only,
and no inline script or style. A violation is silent on the server and breaks the page in the
browser, so these checks read the files themselves; the browser test then proves it end to end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from api.ui import STATIC_DIR, TEMPLATE_DIR, ui_routes

TEMPLATES = sorted(TEMPLATE_DIR.glob("*.html"))
SCRIPTS = sorted(STATIC_DIR.glob("js/*.js"))
STYLES = sorted(STATIC_DIR.glob("css/*.css"))


def _names(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@pytest.mark.parametrize("template", TEMPLATES, ids=_names(TEMPLATES))
def test_templates_have_no_inline_script_or_style(template: Path) -> None:
    html = template.read_text()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag, f"inline script in {template.name}: {tag}"
    assert not re.search(r"<style\b", html), f"inline <style> in {template.name}"
    assert not re.search(r"\sstyle\s*=", html), f"style= attribute in {template.name}"
    handler = re.search(r"\son[a-z]+\s*=", html)
    assert not handler, f"inline event handler in {template.name}: {handler.group(0)}"
    assert "javascript:" not in html


@pytest.mark.parametrize(
    "path", TEMPLATES + SCRIPTS + STYLES, ids=_names(TEMPLATES + SCRIPTS + STYLES)
)
def test_nothing_is_loaded_from_another_host(path: Path) -> None:
    text = path.read_text()
    # SVG's namespace URI is an identifier, never fetched.
    found = [u for u in re.findall(r"https?://[^\s\"')]+", text) if "www.w3.org" not in u]
    assert not found, f"{path.name} refers to another host: {found}"


@pytest.mark.parametrize("script", SCRIPTS, ids=_names(SCRIPTS))
def test_scripts_build_no_markup_from_strings(script: Path) -> None:
    # Filenames and tags are user data: the scripts build elements with textContent only.
    # Comments may name what the code avoids; the code itself must not use it.
    text = re.sub(r"//[^\n]*", "", script.read_text())
    assert "innerHTML" not in text and "outerHTML" not in text and "insertAdjacentHTML" not in text
    assert "eval(" not in text and "new Function" not in text


def test_every_static_reference_exists() -> None:
    referenced: set[str] = set()
    for path in TEMPLATES + STYLES:
        referenced |= set(re.findall(r"/static/([\w./-]+)", path.read_text()))
    for path in SCRIPTS:
        referenced |= {
            f"js/{m}" for m in re.findall(r"from \"\./([\w.-]+\.js)\"", path.read_text())
        }
    assert referenced
    missing = sorted(r for r in referenced if not (STATIC_DIR / r).is_file())
    assert not missing, f"referenced but missing under api/static: {missing}"


def test_vendored_font_carries_its_licence() -> None:
    inter = STATIC_DIR / "vendor" / "inter"
    assert (inter / "LICENSE").read_text().startswith("Copyright")
    assert list(inter.glob("*.woff2"))


def test_pages_are_marked_as_pages_and_static_files_as_public() -> None:
    from api.auth import PAGE_OPT, PUBLIC_OPT

    handlers = ui_routes()
    pages = [h for h in handlers if getattr(h, "opt", {}).get(PAGE_OPT)]
    assert {path for page in pages for path in getattr(page, "paths", ())} == {
        "/",
        "/library",
        "/duplicates",
    }
    static = [h for h in handlers if getattr(h, "opt", {}).get(PUBLIC_OPT)]
    assert len(static) == 1
