"""Duplicate review over the real app: decisions, 409 on a changed group, the bulk
keep-one, the CSV export (escaped against injection) and a group's contact sheet."""

from __future__ import annotations

import csv
import io
from typing import Any

from PIL import Image

from tests.integration.conftest import assert_error, image_bytes
from tests.integration.test_api_jobs import _wait

HSV_ONLY = {"clip_weights": "off", "cnn": "off"}


def _bmp(png: bytes) -> bytes:
    buf = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buf, "BMP")
    return buf.getvalue()


def _client(make_app_client: Any) -> tuple[Any, dict[str, str]]:
    client = make_app_client(**HSV_ONLY)
    lib = client.settings.library_dir
    for name, data in {
        "a.png": image_bytes(1),
        "a.bmp": _bmp(image_bytes(1)),  # the same pixels: two points, score 1
        "b.png": image_bytes(2),
        "b.bmp": _bmp(image_bytes(2)),
        "=cmd/c.png": image_bytes(3),  # the same bytes at two paths: one point
        "c.png": image_bytes(3),
        "d.png": image_bytes(4),
    }.items():
        (lib / name).parent.mkdir(parents=True, exist_ok=True)
        (lib / name).write_bytes(data)
    client.wait_ready()
    key = client.api_key("write")
    job = _wait(client, client.post("/api/v1/reindex", headers=key).json()["id"], key)
    assert job["state"] == "done", job
    return client, key


def _groups(client: Any, key: dict[str, str], **params: Any) -> dict[str, Any]:
    report = client.get("/api/v1/duplicates", params=params, headers=key).json()
    return {
        "+".join(sorted(p for m in g["members"] for p in m["paths"])): g for g in report["groups"]
    }


def test_decisions_are_remembered_and_conflicts_carry_the_new_group(make_app_client: Any) -> None:
    client, key = _client(make_app_client)
    groups = _groups(client, key)
    assert set(groups) == {"a.bmp+a.png", "b.bmp+b.png", "=cmd/c.png+c.png"}
    assert {g["kind"] for g in groups.values()} == {"exact"}
    a = groups["a.bmp+a.png"]
    ids = [m["id"] for m in a["members"]]

    read = client.api_key("read")
    body = {"members": ids, "decision": "not_duplicates", "signature": a["signature"]}
    assert_error(client.post("/api/v1/duplicates/decisions", json=body, headers=read), 403)
    done = client.post("/api/v1/duplicates/decisions", json=body, headers=key)
    assert done.status_code == 200, done.text
    assert done.json()["decision"] == "not_duplicates"
    assert "a.bmp+a.png" not in _groups(client, key)
    shown = _groups(client, key, include_dismissed="true")["a.bmp+a.png"]
    assert shown["decision"] == "not_duplicates" and shown["signature"] == a["signature"]

    unknown = {"members": ["00000000-0000-0000-0000-000000000000"], "decision": "keep_all"}
    assert_error(client.post("/api/v1/duplicates/decisions", json=unknown, headers=key), 404)

    # A new copy joins group b after it was shown: the decision is refused with the group now.
    b = groups["b.bmp+b.png"]
    Image.open(io.BytesIO(image_bytes(2))).save(client.settings.library_dir / "b.tif")
    _wait(client, client.post("/api/v1/reindex", headers=key).json()["id"], key)
    stale = {"members": [m["id"] for m in b["members"]], "decision": "keep_all"}
    conflict = client.post("/api/v1/duplicates/decisions", json=stale, headers=key)
    assert conflict.status_code == 409, conflict.text
    answer = conflict.json()
    assert answer["error"] == "conflict" and len(answer["group"]["members"]) == 3
    assert answer["detail"].endswith(".")


def test_apply_csv_and_sheet(make_app_client: Any) -> None:
    client, key = _client(make_app_client)
    groups = _groups(client, key)
    a = groups["a.bmp+a.png"]
    kept = a["members"][0]["id"]
    body = {"members": [m["id"] for m in a["members"]], "decision": "keep_one", "kept": kept}
    assert client.post("/api/v1/duplicates/decisions", json=body, headers=key).status_code == 200

    points = client.get("/api/v1/status", headers=key).json()["points"]
    unconfirmed = client.post("/api/v1/duplicates/apply", json={"confirm": False}, headers=key)
    refused = assert_error(unconfirmed, 400)
    assert "delete 1 image" in refused["detail"]
    assert client.get("/api/v1/status", headers=key).json()["points"] == points
    read = client.api_key("read")
    assert_error(client.post("/api/v1/duplicates/apply", json={"confirm": True}, headers=read), 403)

    sheet = client.get("/api/v1/duplicates/sheet", params={"group": a["signature"]}, headers=key)
    assert sheet.status_code == 200 and sheet.content.startswith(b"%PDF-")
    png = client.get(
        "/api/v1/duplicates/sheet",
        params={"group": a["signature"], "format": "png"},
        headers=key,
    )
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    missing = {"group": "0" * 20}
    assert_error(client.get("/api/v1/duplicates/sheet", params=missing, headers=key), 404)

    table = client.get("/api/v1/duplicates.csv", headers=key)
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(table.text)))
    assert rows[0][:5] == ["group", "kind", "score", "paths", "decision"]
    c_row = next(r for r in rows if "c.png" in r[3])
    assert c_row[3].startswith("'=cmd/c.png")  # escaped: a spreadsheet shows it as text
    assert {r[4] for r in rows[1:] if r[0] == a["signature"]} == {"keep_one"}

    applied = client.post("/api/v1/duplicates/apply", json={"confirm": True}, headers=key)
    assert applied.status_code == 200, applied.text
    deleted = applied.json()["deleted"]
    assert [d["id"] for d in deleted] == [a["members"][1]["id"]]
    assert client.get("/api/v1/status", headers=key).json()["points"] == points - 1
    assert "a.bmp+a.png" not in _groups(client, key)
