"""The duplicates report cannot starve the server (issue 19): on 5,000 points at the lowest
threshold it allows, it comes back, bounded, while searches keep answering."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from bench.served import LIGHT, write_points
from engine.defaults import DUPLICATES_MAX_PAIRS, DUPLICATES_MIN_THRESHOLD
from tests.integration.conftest import assert_error

POINTS = 5_000
# A hang detector, not a speed goal: the report groups at most DUPLICATES_MAX_PAIRS pairs.
REPORT_BOUND_S = 300


@pytest.mark.slow
def test_the_lowest_threshold_on_5k_points_returns_while_searches_answer(
    make_app_client: Any,
) -> None:
    client = make_app_client(**LIGHT)  # HSV only: the synthetic vectors need no model
    client.wait_ready()
    engine = client.app.state.services.lookalike
    write_points(engine, POINTS)
    engine.mirror_keeper.sync()
    key = client.api_key("read")
    query = {"image_id": next(iter(engine.store.scroll())).id, "k": 5}

    assert_error(
        client.get(f"/api/v1/duplicates?threshold={DUPLICATES_MIN_THRESHOLD / 2}", headers=key),
        400,
        "bad_input",
    )
    report: dict[str, Any] = {}

    def run_report() -> None:
        started = time.monotonic()
        response = client.get(
            f"/api/v1/duplicates?threshold={DUPLICATES_MIN_THRESHOLD}", headers=key, timeout=600
        )
        report.update(status=response.status_code, body=response.json())
        report["seconds"] = time.monotonic() - started

    worker = threading.Thread(target=run_report)
    worker.start()
    searches_during = 0
    while worker.is_alive():
        answer = client.post("/api/v1/search", json=query, headers=key, timeout=60)
        assert answer.status_code == 200, answer.text
        searches_during += worker.is_alive()
    worker.join()
    assert report["status"] == 200, report
    assert report["seconds"] < REPORT_BOUND_S
    body = report["body"]
    assert body["threshold"] == DUPLICATES_MIN_THRESHOLD and body["truncated"] is True
    members = sum(len(g["members"]) for g in body["groups"])
    assert 0 < members <= POINTS
    pairs_at_most = sum(len(g["members"]) - 1 for g in body["groups"])
    assert pairs_at_most <= DUPLICATES_MAX_PAIRS
    assert searches_during >= 1  # searches were answered while the report ran
