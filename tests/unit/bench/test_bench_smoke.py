"""Each performance benchmark (issue 4) runs end to end at a tiny size and prints its keys.

The figures mean nothing at this size; what is checked is that the scripts still run against
the current code and report what the issue asks for. Deselect with ``-m 'not bench'``.
"""

from __future__ import annotations

import json

import pytest

from bench import e2e_search, index_throughput, search_latency, startup, upload_throughput

pytestmark = pytest.mark.bench


def printed(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    lines = capsys.readouterr().out.strip().splitlines()
    return dict(json.loads(lines[-1]))


def test_search_latency(capsys: pytest.CaptureFixture[str]) -> None:
    # 5,000 points: above EXACT_BELOW, so the two-stage path is the one measured.
    search_latency.main(["--sizes", "5000", "--queries", "12"])
    (size,) = printed(capsys)["sizes"]  # type: ignore[misc]
    assert {"n", "p50_ms", "p99_ms", "exact_p50_ms", "recall_at_10", "mirror_bytes"} <= set(size)
    assert size["two_stage"] and size["recall_at_10"] >= 0.9


def test_index_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    index_throughput.main(["--n", "10", "--batch-size", "4", "--light", "--compile", "off"])
    out = printed(capsys)
    assert {"ours_img_s", "baseline_img_s", "speedup", "min_cosine_vs_fp32", "n"} <= set(out)
    assert out["n"] == 10 and out["min_cosine_vs_fp32"] > 0.99  # type: ignore[operator]


def test_e2e_search(capsys: pytest.CaptureFixture[str]) -> None:
    e2e_search.main(
        [
            "--n",
            "300",
            "--requests",
            "3",
            "--seconds",
            "1",
            "--images",
            "4",
            "--light",
            "--no-baseline",
        ]
    )
    keys = {"p50_ms_1", "p99_ms_1", "p50_ms_8", "p99_ms_8", "searches_per_s_8"}
    assert keys <= set(printed(capsys))


def test_startup(capsys: pytest.CaptureFixture[str]) -> None:
    startup.main(["--n", "300", "--runs", "1", "--light"])
    out = printed(capsys)
    assert {"ready_s", "model_load_s"} <= set(out) and out["n"] == 300


def test_index_throughput_whole_process(capsys: pytest.CaptureFixture[str]) -> None:
    """Three child processes (cold, warm, baseline) of `lookalike index` at a tiny size."""
    index_throughput.main(["--n", "8", "--light", "--whole"])
    out = printed(capsys)
    keys = {"cold_whole_img_s", "warm_whole_img_s", "baseline_whole_img_s", "peak_rss_mb"}
    assert keys <= set(out) and out["n"] == 8
    assert out["min_cosine_vs_fp32"] > 0.99  # type: ignore[operator]
    assert out["compile_records"] == {}  # 8 images: the rule never compiles


def test_upload_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    """Three servers (ours, baseline, ours again), each sent 3 photos as the page sends them."""
    upload_throughput.main(["--n", "3", "--light"])
    out = printed(capsys)
    assert {"ours_img_s", "baseline_img_s", "speedup"} <= set(out) and out["n"] == 3
    for run in ("ours", "baseline", "ours_again"):
        assert out[run]["img_s"] > 0  # type: ignore[index]
