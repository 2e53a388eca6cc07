"""bench/multi_query.py runs end to end at a tiny size (HSV only) and reports each mAP."""

from __future__ import annotations

import json

import pytest

from bench import multi_query

pytestmark = pytest.mark.bench


def test_two_image_query_bench(capsys: pytest.CaptureFixture[str]) -> None:
    assert multi_query.main(["--originals", "4", "--models", "hsv", "--no-debian"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["originals"] == 4 and out["distractors"] > 4
    assert set(out["map"]) == {"A", "B", "any", "all"}
    assert all(0 < v <= 1 for v in out["map"].values())
