"""The fusion maths on their own: fused rows, weight shares, exact hit scores."""

from __future__ import annotations

import numpy as np
import pytest

from store.base import Record
from store.mirror.fusion import fuse, hits, query_blocks

BLOCKS = [("a", 3), ("b", 2)]
SLICES = {"a": slice(0, 3), "b": slice(3, 5)}


def test_fuse_normalises_each_block_and_leaves_missing_ones_zero() -> None:
    recs = [
        Record("p", {}, {"a": np.array([3.0, 0.0, 4.0]), "b": np.array([0.0, 2.0])}),
        Record("q", {}, {"a": np.zeros(3)}),  # a zero vector stays zero: "no vector"
    ]
    fused = fuse(recs, BLOCKS, SLICES)
    assert fused.dtype == np.float32
    want = np.array([[0.6, 0.0, 0.8, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(fused, want, atol=1e-7)


def test_query_blocks_gives_unit_vectors_and_weight_shares() -> None:
    units, shares = query_blocks(
        SLICES, {"a": np.array([0.0, 5.0, 0.0]), "b": np.ones(2)}, {"a": 3.0, "b": 1.0}
    )
    np.testing.assert_allclose(units["a"], [0.0, 1.0, 0.0])
    assert shares == {"a": 0.75, "b": 0.25}
    _, shares = query_blocks(SLICES, {"a": np.ones(3)}, {"a": 1.0, "b": 9.0})
    assert shares == {"a": 1.0}  # no query vector for b: it weighs nothing


def test_hits_are_exact_weighted_means_and_omit_absent_models() -> None:
    stored = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 0, 0]], dtype=np.float32)
    units = {"a": np.array([1.0, 0.0, 0.0]), "b": np.array([1.0, 0.0])}
    found = hits(SLICES, ["p", "q"], stored, units, {"a": 0.5, "b": 0.5}, k=2)
    assert [(h.id, h.score, h.scores) for h in found] == [
        ("p", 1.0, {"a": 1.0, "b": 1.0}),
        ("q", 0.0, {"a": 0.0}),  # q has no 'b' vector, so no 'b' cosine is reported
    ]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="'b' vector has 3 values, want 2"):
        fuse([Record("p", {}, {"b": np.ones(3)})], BLOCKS, SLICES)
    with pytest.raises(ValueError, match="non-finite"):
        fuse([Record("p", {}, {"a": np.array([1.0, np.inf, 0.0])})], BLOCKS, SLICES)
    with pytest.raises(ValueError, match="unknown models"):
        query_blocks(SLICES, {"a": np.ones(3)}, {"c": 1.0})
