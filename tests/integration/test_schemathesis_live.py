"""Schemathesis against a live server (tests/fuzz/live_run.py): all checks, the examples,
coverage, fuzzing and stateful phases, a fixed seed. ``make test`` runs it on a budget of
``MAX_EXAMPLES`` per operation (over 1,000 generated cases, a few minutes); ``make fuzz``
runs ten times as many."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import live_run

MAX_EXAMPLES = 20  # -> about 1,200 cases over the 18 operations


@pytest.mark.slow
def test_the_api_keeps_to_its_document(tmp_path: Path) -> None:
    result = live_run.run(MAX_EXAMPLES, tmp_path)
    summary = {k: v for k, v in result.items() if k != "output"}
    assert result["cases"] >= 1000, summary
    assert result["operations"] >= 18, summary
    assert result["failures"] == 0 and result["errors"] == 0, result["output"]
    assert result["server_errors"] == 0, summary
    assert set(result["phases"]) >= {"coverage", "fuzzing", "stateful"}, summary


def test_the_document_is_served_only_to_the_authenticated(make_app_client: Any) -> None:
    client = make_app_client()
    assert client.get("/schema/openapi.json").status_code == 401
    ok = client.get("/schema/openapi.json", headers=client.api_key("read"))
    assert ok.status_code == 200 and ok.json()["openapi"].startswith("3.")


def test_options_lists_every_method_of_a_path(make_app_client: Any) -> None:
    client = make_app_client()
    allow = {
        path: set(client.options(path).headers["allow"].split(", "))
        for path in ("/api/v1/images", "/api/v1/images/00000000-0000-0000-0000-000000000000")
    }
    assert allow["/api/v1/images"] == {"GET", "POST", "OPTIONS"}
    assert allow["/api/v1/images/00000000-0000-0000-0000-000000000000"] == {
        "GET",
        "PATCH",
        "DELETE",
        "OPTIONS",
    }


def test_file_headers_are_documented_as_sent(make_app_client: Any) -> None:
    client = make_app_client()
    paths = client.get("/schema/openapi.json", headers=client.api_key("read")).json()["paths"]
    for what in ("file", "thumbnail"):
        ok = paths[f"/api/v1/images/{{image_id}}/{what}"]["get"]["responses"]["200"]
        assert "format" not in ok["headers"]["last-modified"]["schema"]  # an HTTP-date
        assert all(media.startswith("image/") for media in ok["content"])
