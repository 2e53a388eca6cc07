"""Retrieval metrics for bench/quality.py, written out so that every convention is visible.

Copy detection has exactly one relevant database item per query (its source), so for one
query AP = 1 / rank of that item and recall@k = [rank <= k].

Ties matter: a 64-bit hash has only 65 possible similarities, so many database items share a
score. Ranking ties by database order would favour whichever method puts sources first, so
these functions give the *expected* value under a uniformly random order of tied items: with
g items strictly above the relevant one and t others tied with it, its rank is uniform on
g+1 .. g+t+1. For float embeddings t is almost always 0 and this is the ordinary value.

µAP (DISC21, Douze et al. 2021, "micro average precision"): every (query, db) pair is one
prediction scored by its similarity; all pairs of all queries are ranked together, and µAP is
the average precision of that single ranking against the set of true (query, source) pairs.
Unlike mAP, it rewards scores that mean the same thing across queries, which is what a
global near-duplicate threshold needs. Tied scores form one step of the curve (as in
scikit-learn's ``average_precision_score``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def rank_bounds(scores: np.ndarray, relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(g, t) per query: items scoring strictly above, and others scoring equal to, the
    relevant item. ``scores`` is (n_queries, n_db); ``relevant`` the db row per query."""
    rows = np.arange(len(relevant))
    rel = scores[rows, relevant][:, None]
    g = (scores > rel).sum(axis=1)
    t = (scores == rel).sum(axis=1) - 1
    return g, t


def expected_ranking_metrics(
    g: np.ndarray, t: np.ndarray, ks: tuple[int, ...] = (1, 10)
) -> dict[str, np.ndarray]:
    """Per query: 'ap' and 'recall@k', expected over a random order of the tied items."""
    ap = np.empty(len(g))
    recall = {k: np.empty(len(g)) for k in ks}
    for i, (gi, ti) in enumerate(zip(g, t, strict=True)):
        ranks = np.arange(gi + 1, gi + ti + 2, dtype=np.float64)
        ap[i] = np.mean(1.0 / ranks)
        for k in ks:
            recall[k][i] = np.mean(ranks <= k)
    return {"ap": ap, **{f"recall@{k}": r for k, r in recall.items()}}


def ranking_summary(scores: np.ndarray, relevant: np.ndarray) -> dict[str, float]:
    g, t = rank_bounds(scores, relevant)
    per = expected_ranking_metrics(g, t)
    return {
        "mAP": float(per["ap"].mean()),
        "recall@1": float(per["recall@1"].mean()),
        "recall@10": float(per["recall@10"].mean()),
    }


@dataclass
class PrCurve:
    """Precision and recall of 'score >= threshold' over all pairs, one point per distinct
    score (highest first)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    n_positive: int

    def micro_ap(self) -> float:
        # Sum over steps of (recall gained) x (precision there): the area under the
        # step-wise PR curve without interpolation.
        gained = np.diff(self.recall, prepend=0.0)
        return float(np.sum(gained * self.precision))


def pr_curve(scores: np.ndarray, relevant: np.ndarray) -> PrCurve:
    """The global PR curve of all (query, db) pairs, positives being (query, its source)."""
    n_q, n_db = scores.shape
    flat = scores.ravel()
    positive = np.zeros(flat.shape, bool)
    positive[np.arange(n_q) * n_db + relevant] = True
    order = np.argsort(-flat, kind="stable")
    s, pos = flat[order], positive[order]
    tp, seen = np.cumsum(pos), np.arange(1, len(s) + 1)
    # The last index of each run of equal scores: ties are one threshold.
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    return PrCurve(
        thresholds=s[ends],
        precision=tp[ends] / seen[ends],
        recall=tp[ends] / max(n_q, 1),
        n_positive=n_q,
    )


def threshold_for_precision(curve: PrCurve, target: float) -> dict[str, float | None]:
    """The lowest threshold at which precision is >= ``target`` there *and at every higher
    threshold*: walking down from the top score, stop before the first dip below target.
    A lone lucky point further down would give more recall on paper and none in use."""
    below = np.flatnonzero(curve.precision < target)
    last_ok = (below[0] if len(below) else len(curve.thresholds)) - 1
    if last_ok < 0:
        return {"threshold": None, "precision": None, "recall": 0.0}
    return {
        "threshold": float(curve.thresholds[last_ok]),
        "precision": float(curve.precision[last_ok]),
        "recall": float(curve.recall[last_ok]),
    }


def at_threshold(scores: np.ndarray, relevant: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision and recall of 'score >= threshold' over all pairs (for a held-out split)."""
    n_q, _ = scores.shape
    flagged = scores >= threshold
    tp = int(flagged[np.arange(n_q), relevant].sum())
    n = int(flagged.sum())
    return {
        "precision": tp / n if n else 1.0,
        "recall": tp / max(n_q, 1),
        "flagged_pairs": n,
    }


def map_at_k(
    scores: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray, k: int = 10
) -> dict[str, float]:
    """Category retrieval: mAP@k and precision@k, an item being relevant when it has the
    query's label.

    AP@k = (1 / R_k) * sum_{i<=k} precision@i * rel_i, with R_k the number of relevant items
    in the top k (0 when none): the convention of the image-retrieval and hashing literature
    for mAP@k. Each class has far more than k members, so min(k, total relevant) = k would
    only rescale it into precision-like values; precision@k is reported beside it.
    """
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    top = np.take_along_axis(top, np.argsort(-top_scores, axis=1, kind="stable"), axis=1)
    rel = db_labels[top] == query_labels[:, None]
    hits = np.cumsum(rel, axis=1)
    prec_at = hits / np.arange(1, k + 1)
    r_k = rel.sum(axis=1)
    ap = np.where(r_k > 0, (prec_at * rel).sum(axis=1) / np.maximum(r_k, 1), 0.0)
    return {f"mAP@{k}": float(ap.mean()), f"precision@{k}": float(rel.mean())}
