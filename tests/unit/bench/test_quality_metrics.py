"""The benchmark's metrics and fusion helpers, on hand-made score matrices."""

from __future__ import annotations

import numpy as np
import pytest

from bench.quality_fusion import calibrate, fuse, model_sets, weight_grid
from bench.quality_methods import hash_similarity
from bench.quality_metrics import (
    at_threshold,
    map_at_k,
    pr_curve,
    rank_bounds,
    ranking_summary,
    threshold_for_precision,
)


def test_rank_metrics_without_ties() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.9]], np.float32)
    relevant = np.array([0, 1])  # query 0 ranks it first, query 1 second
    assert ranking_summary(scores, relevant) == pytest.approx(
        {"mAP": (1 + 1 / 2) / 2, "recall@1": 0.5, "recall@10": 1.0}
    )


def test_ties_count_as_a_random_order() -> None:
    # The relevant item ties with two others: its rank is 1, 2 or 3 with equal chance.
    scores = np.array([[0.5, 0.5, 0.5, 0.1]], np.float32)
    g, t = rank_bounds(scores, np.array([1]))
    assert (g[0], t[0]) == (0, 2)
    m = ranking_summary(scores, np.array([1]))
    assert m["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert m["recall@1"] == pytest.approx(1 / 3)


def test_micro_ap_ranks_all_pairs_together() -> None:
    # Pairs by score: q0-d0 (pos, .9), q0-d1 (neg, .8), q1-d1 (pos, .7), rest below.
    scores = np.array([[0.9, 0.8], [0.1, 0.7]], np.float32)
    curve = pr_curve(scores, np.array([0, 1]))
    # Precision 1 at recall 1/2, then 2/3 at recall 1.
    assert curve.micro_ap() == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # Each query ranks its match first (mAP 1), but q1's match scores below a non-match of
    # q0: no single threshold separates them, and µAP says so.
    assert ranking_summary(scores, np.array([0, 1]))["mAP"] == pytest.approx(1.0)


def test_threshold_stops_at_the_first_dip() -> None:
    # Ranked: pos .9, neg .8, pos .7, pos .6: precision 1, 1/2, 2/3, 3/4.
    scores = np.array([[0.9, 0.8], [0.7, 0.0], [0.6, 0.0]], np.float32)
    curve = pr_curve(scores, np.array([0, 0, 0]))
    pick = threshold_for_precision(curve, 0.95)
    assert pick["threshold"] == pytest.approx(0.9)
    assert pick["recall"] == pytest.approx(1 / 3)
    # 0.7 reaches 2/3 only: the later recovery to 3/4 must not lower the threshold.
    assert threshold_for_precision(curve, 0.7)["threshold"] == pytest.approx(0.9)
    held = at_threshold(scores, np.array([0, 0, 0]), 0.65)
    assert held == {"precision": 2 / 3, "recall": 2 / 3, "flagged_pairs": 3}


def test_map_at_k_uses_the_relevant_retrieved() -> None:
    scores = np.array([[0.9, 0.8, 0.7, 0.1]], np.float32)
    out = map_at_k(scores, np.array([1]), np.array([1, 0, 1, 1]), k=3)
    # Top 3: rel, not, rel -> AP@3 = (1/1 + 2/3) / 2.
    assert out["mAP@3"] == pytest.approx((1 + 2 / 3) / 2)
    assert out["precision@3"] == pytest.approx(2 / 3)


def test_hash_similarity_is_one_minus_normalised_hamming() -> None:
    q = np.array([[1, 0, 1, 0]], bool)
    d = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 0]], bool)
    assert hash_similarity(q, d) == pytest.approx(np.array([[1.0, 0.0, 0.75]]))


def test_fusion_and_grid() -> None:
    a, b = np.ones((1, 2), np.float32), np.zeros((1, 2), np.float32)
    assert fuse({"a": a, "b": b}, {"a": 3.0, "b": 1.0}) == pytest.approx(np.full((1, 2), 0.75))
    grid = weight_grid(2)
    assert grid[0] == (1.0, 1.0) and all(max(w) == 1.0 for w in grid)
    sets = model_sets({"cnn": ["effnet-lite0"], "hsv": ["hsv-8x8x8"]})
    assert {"cnn": "effnet-lite0", "hsv": "hsv-8x8x8"} in sets and len(sets) == 3


def test_calibrate_picks_the_informative_model_on_train_only() -> None:
    rng = np.random.default_rng(0)
    n_q, n_db = 40, 30
    relevant = rng.integers(0, n_db, n_q)
    good = rng.uniform(0, 0.5, (n_q, n_db)).astype(np.float32)
    good[np.arange(n_q), relevant] = 0.9
    noise = rng.uniform(0, 1, (n_q, n_db)).astype(np.float32)
    train = np.arange(n_q) % 2 == 0
    out = calibrate(
        {"m1": good, "m2": noise}, {"cnn": "m1", "hsv": "m2"}, relevant, train, target=0.95
    )
    weights = out["weights"]
    assert isinstance(weights, dict) and weights["cnn"] == 1.0 and weights["hsv"] < 0.5
    assert out["test"]["mAP"] == pytest.approx(1.0)  # type: ignore[index]
    threshold = out["near_duplicate_threshold"]
    assert isinstance(threshold, float) and 0.0 < threshold <= 0.9
