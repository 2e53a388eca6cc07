"""The mirror's full fused vectors, float32, one row per slot.

A slot is a point's place in this store and in the compact index (``compact``); it is
also the id faiss reports. Slots of removed points are zeroed and reused by later inserts,
so nothing is ever compacted and a point whose vector changes keeps its slot.

Rows live in two parts: a *base* array, which after a restart is the snapshot's vector file
mapped copy-on-write (``np.load(mmap_mode='c')``: start-up reads no vector data eagerly,
pages come in as searches touch them, and a write changes only a private copy of its page),
followed by fixed-size chunks in RAM for slots added since. Growing never copies existing
rows, which matters at 1M x 3072 floats (12 GB).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK_BYTES = 64 << 20  # RAM chunks of about 64 MiB: few chunks, little slack


class Rows:
    def __init__(self, dim: int, base: np.ndarray | None = None) -> None:
        self.dim = int(dim)
        if base is None:
            base = np.zeros((0, self.dim), dtype=np.float32)
        if base.dtype != np.float32 or base.ndim != 2 or base.shape[1] != self.dim:
            raise ValueError(f"base rows must be float32 (n, {self.dim}), got {base.shape}")
        self._base = base
        self._chunk_rows = max(1, CHUNK_BYTES // (4 * self.dim))
        self._chunks: list[np.ndarray] = []
        self.n_slots = int(base.shape[0])  # slots ever handed out: the high-water mark
        self._free: list[int] = []

    @property
    def free(self) -> list[int]:
        return list(self._free)

    def set_free(self, slots: list[int]) -> None:
        self._free = sorted(slots, reverse=True)  # pop() hands out the lowest slot first

    # --- allocation -------------------------------------------------------------------
    def alloc(self, count: int) -> np.ndarray:
        """``count`` slots for new points: freed ones first, then new ones at the end."""
        reused = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = count - len(reused)
        start = self.n_slots
        self.n_slots += fresh
        need = self.n_slots - self._base.shape[0]
        while len(self._chunks) * self._chunk_rows < need:
            # np.zeros maps untouched pages lazily: a fresh chunk costs no RAM until written.
            self._chunks.append(np.zeros((self._chunk_rows, self.dim), dtype=np.float32))
        return np.asarray(reused + list(range(start, start + fresh)), dtype=np.int64)

    def release(self, slots: np.ndarray) -> None:
        """Zero these slots and make them reusable."""
        if len(slots):
            self.put(slots, np.zeros((len(slots), self.dim), dtype=np.float32))
            self.set_free(self._free + [int(s) for s in slots])

    # --- access -----------------------------------------------------------------------
    def put(self, slots: np.ndarray, rows: np.ndarray) -> None:
        for where, idx, sel in self._route(np.asarray(slots, dtype=np.int64)):
            where[idx] = rows[sel]

    def get(self, slots: np.ndarray) -> np.ndarray:
        """A copy of the rows at ``slots``, in that order."""
        slots = np.asarray(slots, dtype=np.int64)
        out = np.empty((len(slots), self.dim), dtype=np.float32)
        for where, idx, sel in self._route(slots):
            out[sel] = where[idx]
        return out

    def parts(self) -> Iterator[tuple[int, np.ndarray]]:
        """(first slot, rows) over every slot handed out, in slot order; views, not copies."""
        if self._base.shape[0]:
            yield 0, self._base
        start = self._base.shape[0]
        for chunk in self._chunks:
            if start >= self.n_slots:
                return
            yield start, chunk[: min(self._chunk_rows, self.n_slots - start)]
            start += self._chunk_rows

    @property
    def nbytes(self) -> int:
        """Bytes of vector data the slots occupy (mapped or in RAM)."""
        return self.n_slots * self.dim * 4

    def _route(self, slots: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(array, indices in it, positions in ``slots``) for each part the slots fall in."""
        if len(slots) and (slots.min() < 0 or slots.max() >= self.n_slots):
            raise IndexError(f"slot out of range 0..{self.n_slots - 1}")
        n_base = self._base.shape[0]
        in_base = slots < n_base
        if in_base.any():
            sel = np.flatnonzero(in_base)
            yield self._base, slots[sel], sel
        if not in_base.all():
            sel = np.flatnonzero(~in_base)
            chunk_of, row = np.divmod(slots[sel] - n_base, self._chunk_rows)
            for c in np.unique(chunk_of):
                mine = chunk_of == c
                yield self._chunks[int(c)], row[mine], sel[mine]
