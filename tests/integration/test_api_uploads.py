"""POST /api/v1/images answers per file, and stores what it is given safely.

Real app, engine, store and (bundled) models. Covers issue 15 (per-file outcomes: added,
exists, rejected; a per-file size limit) and issue 19's medium findings 1 (stored HTML) and
3 (upload memory).
"""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from engine.uploads import MAX_UPLOAD_FILES
from tests.integration.conftest import assert_error, image_bytes

HTML = b"<html><body><script>alert(document.cookie)</script></body></html>"


def _files(*parts: tuple[str, bytes]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in parts]


def test_each_file_is_answered_on_its_own(make_app_client: Any) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    library = Path(client.settings.library_dir)

    sent = _files(
        ("a.png", image_bytes(1)), ("broken.png", b"not an image"), ("b.png", image_bytes(2))
    )
    response = client.post("/api/v1/images", files=sent, data={"tags": "batch"}, headers=key)
    assert response.status_code == 201, response.text
    a, broken, b = response.json()["results"]
    assert (a["filename"], a["status"], a["paths"]) == ("a.png", "added", ["uploads/a.png"])
    assert (b["filename"], b["status"], b["paths"]) == ("b.png", "added", ["uploads/b.png"])
    assert broken["status"] == "rejected" and broken["id"] is None and broken["paths"] == []
    assert broken["detail"] == "Not a supported image (expected JPEG, PNG, WebP, GIF, BMP or TIFF)."
    assert {i["id"] for i in response.json()["images"]} == {a["id"], b["id"]}
    assert sorted(p.name for p in (library / "uploads").iterdir()) == ["a.png", "b.png"]

    # The same content again, under another name: it exists, with the image's id and paths;
    # no second file is written, and the new tag joins the old one.
    again = client.post(
        "/api/v1/images",
        files=_files(("copy.png", image_bytes(1))),
        data={"tags": "more"},
        headers=key,
    )
    assert again.status_code == 201, again.text
    (result,) = again.json()["results"]
    assert result == {
        "filename": "copy.png",
        "status": "exists",
        "id": a["id"],
        "paths": ["uploads/a.png"],
        "detail": None,
    }
    assert sorted(p.name for p in (library / "uploads").iterdir()) == ["a.png", "b.png"]
    assert client.get(f"/api/v1/images/{a['id']}", headers=key).json()["tags"] == ["batch", "more"]
    assert client.get("/api/v1/status", headers=key).json()["points"] == 2

    # Every file rejected: the standard error body, with each file's reason.
    refused = client.post(
        "/api/v1/images", files=_files(("x.png", b"junk"), ("y.jpg", b"")), headers=key
    )
    body = assert_error(refused, 400, "undecodable_image")
    assert [r["status"] for r in body["results"]] == ["rejected", "rejected"]
    assert body["results"][1]["detail"] == "The file is empty."
    assert "x.png" in body["detail"] and "y.jpg" in body["detail"]

    many = _files(*[(f"{i}.png", image_bytes(i)) for i in range(MAX_UPLOAD_FILES + 1)])
    too_many = assert_error(client.post("/api/v1/images", files=many, headers=key), 400)
    assert f"at most {MAX_UPLOAD_FILES} files" in too_many["detail"]
    assert client.get("/api/v1/status", headers=key).json()["points"] == 2


def _tiff_with_html() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (30, 120, 200)).save(buf, "TIFF")
    return buf.getvalue() + HTML


def test_a_tiff_named_html_is_stored_and_served_as_a_sandboxed_tiff(make_app_client: Any) -> None:
    """Issue 19, medium 1: a write key must not be able to host HTML on the app's origin."""
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    data = _tiff_with_html()
    response = client.post("/api/v1/images", files=_files(("x.html", data)), headers=key)
    assert response.status_code == 201, response.text
    (result,) = response.json()["results"]
    assert result["status"] == "added" and result["paths"] == ["uploads/x.tif"]
    (image,) = response.json()["images"]
    assert image["format"] == "TIFF"

    served = client.get(image["file_url"], headers=key)
    assert served.status_code == 200 and served.content == data
    assert served.headers["content-type"] == "image/tiff"
    assert served.headers["content-security-policy"].split(";")[0] == "sandbox"
    assert served.headers["content-disposition"] == 'inline; filename="x.tif"'
    assert served.headers["x-content-type-options"] == "nosniff"


def test_a_file_with_a_non_image_name_is_never_indexed_nor_served(make_app_client: Any) -> None:
    client = make_app_client()
    client.wait_ready()
    key = client.api_key("write")
    engine = client.app.state.services.lookalike
    library = Path(client.settings.library_dir)
    (library / "old").mkdir()
    page = library / "old" / "x.html"
    page.write_bytes(_tiff_with_html())

    # index_files (the upload path) refuses the name, as a folder scan skips it.
    report = engine.indexing.index_files([page])
    assert report.failed and report.failed[0][0] == "old/x.html"
    assert "image suffix" in report.failed[0][1]
    assert engine.store.count() == 0
    engine.indexing.index(library)
    assert engine.store.count() == 0

    # An image indexed under an image name, whose only other path is 'x.html' (an old
    # upload), is served from the image name and never from the other.
    good = library / "old" / "x.tif"
    good.write_bytes(page.read_bytes())
    engine.indexing.index(library)
    (item,) = client.get("/api/v1/images", headers=key).json()["items"]
    assert item["paths"] == ["old/x.tif"]
    good.unlink()
    assert_error(client.get(item["file_url"], headers=key), 404, "not_found")


def _png_80mp(seed: int) -> bytes:
    """A valid 10,000 x 8,000 grey PNG (80 MP, 240 MB once decoded to RGB) of ~80 KB: every
    row is zeros. ``seed`` goes into a text chunk, so each file is distinct content."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    width, height = 10_000, 8_000
    rows = zlib.compress(b"\0" * ((width + 1) * height), 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"tEXt", b"seed\0" + str(seed).encode())
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
def test_forty_80_megapixel_files_in_one_request_stay_under_1_gb(make_app_client: Any) -> None:
    """Issue 19, medium 3: the upload kept every decoded image until the end (40 x 240 MB
    here); now one file at a time is read and checked, and no pixels are kept."""
    import resource

    client = make_app_client(max_upload_mb=20)
    client.wait_ready()
    key = client.api_key("write")
    files = _files(*[(f"big{i}.png", _png_80mp(i)) for i in range(40)])
    assert sum(len(f[1][1]) for f in files) < 8 * 1024 * 1024  # small files, huge images

    peak = baseline = _rss()
    max_rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        response = client.post("/api/v1/images", files=files, headers=key, timeout=600)
    finally:
        done.set()
        sampler.join()
    max_rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert response.status_code == 201, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["added"] * 40
    growth = max(peak - baseline, max_rss_after - max_rss_before)
    assert growth < 1024**3, f"peak RSS grew by {growth / 1024**2:.0f} MB"
