"""LOOKALIKE_SEARCH over a real app: /ready, status and metrics say who serves, and why, and a
search served by Qdrant answers through the API as the mirror does."""

from __future__ import annotations

from typing import Any

from tests.integration.conftest import image_bytes
from tests.integration.test_api_jobs import _wait


def _index(client: Any) -> None:
    for i in range(6):
        (client.settings.library_dir / f"p{i}.png").write_bytes(image_bytes(30 + i))


def _search(client: Any, key: dict[str, str]) -> list[tuple[str, float]]:
    response = client.post(
        "/api/v1/search",
        files={"image": ("q.png", image_bytes(32), "image/png")},
        data={"k": "3"},
        headers=key,
    )
    assert response.status_code == 200, response.text
    return [(h["filename"], round(h["score"], 4)) for h in response.json()["hits"]]


def test_ready_status_and_metrics_say_who_serves(make_app_client: Any) -> None:
    answers = {}
    for setting in ("mirror", "qdrant"):
        client = make_app_client(search=setting)
        _index(client)
        client.wait_ready()
        key = client.api_key("write")
        job = client.post("/api/v1/reindex", headers=key).json()
        assert _wait(client, job["id"], key)["state"] == "done"
        ready = client.get("/ready").json()
        assert ready["search_mode"]["mode"] == setting == ready["search_mode"]["setting"]
        assert ready["search_mode"]["reason"].startswith(f"LOOKALIKE_SEARCH={setting}")
        status = client.get("/api/v1/status", headers=key).json()
        assert status["search_mode"] == ready["search_mode"]
        metrics = client.get("/metrics", headers=key).text
        assert f"lookalike_search_by_qdrant {float(setting == 'qdrant')}" in metrics
        if setting == "qdrant":
            assert status["mirror"] is None and status["mirror_lag"] is None
            assert "lookalike_mirror_points" not in metrics
        assert status["points"] == 6
        answers[setting] = _search(client, key)
    assert answers["qdrant"] == answers["mirror"] and answers["mirror"][0][0] == "p2.png"
