"""The mirror's rows by slot: a base array (a mapped snapshot) plus chunks, freed slots reused."""

from __future__ import annotations

import numpy as np
import pytest

from store.mirror import rows as rows_module
from store.mirror.rows import Rows


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rows_module, "CHUNK_BYTES", 3 * 4 * 4)  # 3 rows of 4 floats a chunk


def test_rows_span_the_base_and_the_chunks(small_chunks: None) -> None:
    base = np.arange(8, dtype=np.float32).reshape(2, 4)
    rows = Rows(4, base=base)
    assert rows.n_slots == 2
    new = rows.alloc(5)  # slots 2..6: one full chunk of 3 and part of a second
    assert new.tolist() == [2, 3, 4, 5, 6] and rows.n_slots == 7
    values = np.arange(20, dtype=np.float32).reshape(5, 4) + 100
    rows.put(new, values)
    np.testing.assert_array_equal(rows.get(np.asarray([6, 0, 3])), [values[4], base[0], values[1]])
    parts = list(rows.parts())
    assert [(first, len(part)) for first, part in parts] == [(0, 2), (2, 3), (5, 2)]
    assert rows.nbytes == 7 * 4 * 4


def test_released_slots_are_zeroed_and_reused_lowest_first() -> None:
    rows = Rows(2)
    slots = rows.alloc(4)
    rows.put(slots, np.ones((4, 2), dtype=np.float32))
    rows.release(np.asarray([3, 1]))
    assert rows.free == [3, 1]  # popped from the end: 1 comes out first
    np.testing.assert_array_equal(rows.get(np.asarray([1, 3])), np.zeros((2, 2)))
    assert rows.alloc(3).tolist() == [1, 3, 4]
    assert rows.free == [] and rows.n_slots == 5


def test_bad_slots_and_bases_are_refused() -> None:
    rows = Rows(2)
    rows.alloc(2)
    with pytest.raises(IndexError):
        rows.get(np.asarray([2]))
    with pytest.raises(IndexError):
        rows.put(np.asarray([-1]), np.zeros((1, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="float32"):
        Rows(2, base=np.zeros((3, 2), dtype=np.float64))
    with pytest.raises(ValueError, match="float32"):
        Rows(2, base=np.zeros((3, 5), dtype=np.float32))
