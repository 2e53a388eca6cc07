"""The FAISS mirror: an in-memory index of fused vectors, derived from the store.

Each point's fused vector is the concatenation of its models' L2-normalised vectors (a
missing vector is a zero block). A query scales each of its blocks by ``w_i / sum(w)``, so
one inner product gives ``sum(w_i * cos_i) / sum(w_i)`` and weights change per query
without reindexing.

Search has two paths with the same answers:

- exact: one inner product with every stored vector. Used below ``EXACT_BELOW`` points,
  where it is fast enough and no projection is trained yet, and whenever ``exact=True``.
- two stages: the ``rerank`` best candidates by compact int8 codes (``compact``,
  384 bytes a point instead of 12 KB), then exact scores from the full float32 vectors.
  Measured recall@10 against exact is >= 0.99 (bench/search_latency.py), at ~1/10 the
  time at 100k points.

The full vectors live in ``rows`` (slot-indexed, memory-mapped from the snapshot after
a restart); the codes in a faiss scan indexed by the same slots. The projection is fitted
when the mirror reaches ``EXACT_BELOW`` points and refitted when it has doubled since.

Concurrency: one writer, many readers, behind a writer-preferring readers-writer lock.
faiss and numpy release the GIL, so concurrent searches really run in parallel, but rows and
codes must not be read while they are being written. A write holds the lock only while it
stores rows (validation and normalisation are done before); a refit of the projection
happens outside it and is swapped in. ``rebuild`` fills a fresh mirror off to the side and
swaps it in, so searches keep being answered from the old one meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from store.base import Record, Store
from store.mirror import fusion, snapshot, sync
from store.mirror.compact import CompactIndex, CompactModel, import_faiss
from store.mirror.compact import build as build_compact
from store.mirror.fusion import MirrorHit
from store.mirror.lock import RWLock
from store.mirror.rows import Rows

# Below this many points search is exact: at 4k points x 3 models a full scan takes ~1-2 ms
# and a projection fitted on fewer points would not generalise.
EXACT_BELOW = 4096
# Candidates rescored exactly, at least: 256 keeps recall@10 >= 0.99 at 1M points in
# bench/search_latency.py and costs ~1 ms of gathering rows.
RERANK = 256


@dataclass
class _State:
    """Everything a reader must see consistently; replaced whole by ``adopt``."""

    rows: Rows
    compact: CompactIndex | None = None
    fid_of: dict[str, int] = field(default_factory=dict)  # point uuid -> slot
    uuid_of: dict[int, str] = field(default_factory=dict)
    rev_of: dict[str, int] = field(default_factory=dict)  # rev applied, per point
    watermark: int = 0
    order: np.ndarray | None = None  # live slots ascending, for page(); None when stale


class Mirror:
    """Fused-vector search over the store's points. See the module docstring."""

    def __init__(self, path: Path, blocks: Sequence[tuple[str, int]]) -> None:
        names = [name for name, _ in blocks]
        if not blocks or len(set(names)) != len(names):
            raise ValueError(f"mirror blocks must be non-empty and unique, got {names}")
        if any(int(dim) <= 0 for _, dim in blocks):
            raise ValueError(f"mirror block dimensions must be positive, got {list(blocks)}")
        self.path = Path(path)
        self.blocks: tuple[tuple[str, int], ...] = tuple((n, int(d)) for n, d in blocks)
        offsets = np.cumsum([0] + [d for _, d in self.blocks])
        self._slices = {
            name: slice(int(offsets[i]), int(offsets[i + 1]))
            for i, (name, _) in enumerate(self.blocks)
        }
        self.dim = int(offsets[-1])
        self.exact_below = EXACT_BELOW
        self.rerank = RERANK
        self._state = _State(Rows(self.dim))
        self._lock = RWLock()
        self._writer = threading.Lock()  # writes (and refits) one at a time, whoever calls
        self._sync_lock = threading.Lock()  # sync steps read-then-write: one at a time
        self._save_lock = threading.Lock()

    # --- reads ------------------------------------------------------------------------
    @property
    def watermark(self) -> int:
        """Highest rev up to which the mirror reflects the store (see ``sync``)."""
        return self._state.watermark

    def __len__(self) -> int:
        return len(self._state.fid_of)

    def ids(self) -> set[str]:
        with self._lock.read():
            return set(self._state.fid_of)

    def revs(self, ids: Iterable[str] | None = None) -> dict[str, int]:
        """The rev applied for each point (of ``ids``, where given and present)."""
        with self._lock.read():
            rev_of = self._state.rev_of
            if ids is None:
                return dict(rev_of)
            return {i: rev_of[i] for i in ids if i in rev_of}

    def vector(self, point_id: str) -> dict[str, np.ndarray]:
        """The stored (normalised) vectors of one point; absent models are left out."""
        with self._lock.read():
            st = self._state
            if point_id not in st.fid_of:
                raise KeyError(point_id)
            row = st.rows.get(np.asarray([st.fid_of[point_id]]))[0]
        blocks = {name: row[self._slices[name]] for name, _ in self.blocks}
        return {name: v for name, v in blocks.items() if v.any()}

    def page(self, start: int, count: int) -> tuple[list[str], np.ndarray]:
        """Points ``start`` to ``start + count`` in a stable order (by slot) while nothing
        is written: their ids and stored fused rows (copies)."""
        with self._lock.read():
            st = self._state
            order = st.order
            if order is None:
                order = np.fromiter(sorted(st.uuid_of), dtype=np.int64, count=len(st.uuid_of))
                st.order = order
            slots = order[max(0, start) : max(0, start) + max(0, count)]
            return [st.uuid_of[int(s)] for s in slots], st.rows.get(slots)

    def memory(self) -> dict[str, int]:
        """Bytes held: full vectors (mapped from the snapshot or in RAM) and stage-one codes."""
        st = self._state
        return {
            "vectors": st.rows.nbytes,
            "codes": st.compact.nbytes if st.compact is not None else 0,
            "points": len(st.fid_of),
        }

    def search(
        self,
        query: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
        k: int,
        allowed: Collection[str] | None = None,
        *,
        exact: bool = False,
    ) -> list[MirrorHit]:
        """Top-k points by ``sum(w_i * cos_i) / sum(w_i)`` over the models in both
        ``query`` and ``weights``; ``allowed`` restricts results to those point ids.
        ``exact`` skips the compact stage (see the module docstring)."""
        units, fractions = fusion.query_blocks(self._slices, query, weights)
        fused = np.zeros(self.dim, dtype=np.float32)
        for name, frac in fractions.items():
            fused[self._slices[name]] = frac * units[name]
        if k <= 0:
            return []
        with self._lock.read():
            st = self._state
            subset = None
            if allowed is not None:
                subset = np.fromiter(
                    (f for f in (st.fid_of.get(i) for i in allowed) if f is not None),
                    dtype=np.int64,
                )
            live = len(st.fid_of) if subset is None else len(subset)
            if min(k, live) == 0:
                return []
            want = max(self.rerank, 4 * k)
            if exact or st.compact is None or live <= max(want, self.exact_below):
                slots = self._exact(st, fused, min(k, live), subset)
            else:
                # One thread per scan (the setting is per calling thread): concurrent
                # searches already fill the cores, and on shared cores an OpenMP team
                # waits for its slowest member (p50 10 ms instead of 3 ms at 100k here).
                import_faiss().omp_set_num_threads(1)
                slots = st.compact.candidates(fused, want, subset)
                slots = np.asarray([s for s in slots.tolist() if s in st.uuid_of], np.int64)
            stored = st.rows.get(slots)
            point_ids = [st.uuid_of[int(s)] for s in slots]
        return fusion.hits(self._slices, point_ids, stored, units, fractions, k)

    @staticmethod
    def _exact(st: _State, fused: np.ndarray, k: int, subset: np.ndarray | None) -> np.ndarray:
        """Slots of the top-k by float32 inner product over every live point (or subset)."""
        if subset is not None:
            slots, scores = subset, st.rows.get(subset) @ fused
        else:
            slots = np.arange(st.rows.n_slots, dtype=np.int64)
            scores = np.empty(st.rows.n_slots, dtype=np.float32)
            for first, part in st.rows.parts():
                np.matmul(part, fused, out=scores[first : first + len(part)])
            free = st.rows.free
            if free:
                scores[np.asarray(free, dtype=np.int64)] = -np.inf
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        return slots[top]

    # --- writes -----------------------------------------------------------------------
    def upsert(self, records: Sequence[Record], *, advance_watermark: bool = True) -> int:
        """Insert or replace points; returns how many. Raises the watermark to the highest
        ``payload['rev']`` among them unless told not to (sync steps set it themselves)."""
        latest = {r.id: r for r in records}  # a later record for the same id wins
        if not latest:
            return 0
        recs = list(latest.values())
        fused = fusion.fuse(recs, self.blocks, self._slices)
        revs = [int(r.payload.get("rev", 0)) for r in recs]
        with self._writer:
            with self._lock.write():
                st = self._state
                known = np.asarray([i for i, r in enumerate(recs) if r.id in st.fid_of], np.int64)
                fresh = np.asarray(
                    [i for i, r in enumerate(recs) if r.id not in st.fid_of], np.int64
                )
                if len(known):
                    # Most updates are payload edits (tags) that bump the rev only: rows that
                    # come out bit-identical are not rewritten.
                    slots = np.asarray([st.fid_of[recs[i].id] for i in known], np.int64)
                    moved = ~(st.rows.get(slots) == fused[known]).all(axis=1)
                    self._store(st, slots[moved], fused[known[moved]])
                if len(fresh):
                    slots = st.rows.alloc(len(fresh))
                    self._store(st, slots, fused[fresh])
                    for i, slot in zip(fresh.tolist(), slots.tolist(), strict=True):
                        st.fid_of[recs[i].id] = slot
                        st.uuid_of[slot] = recs[i].id
                    st.order = None
                for rec, rev in zip(recs, revs, strict=True):
                    st.rev_of[rec.id] = rev
                if advance_watermark:
                    st.watermark = max(st.watermark, *revs)
            self._refit_if_due()
        return len(recs)

    def remove(self, ids: Iterable[str]) -> int:
        """Remove these points (unknown ids are ignored); returns how many went."""
        wanted = set(ids)
        with self._writer, self._lock.write():
            st = self._state
            gone = [i for i in wanted if i in st.fid_of]
            if not gone:
                return 0
            slots = np.fromiter((st.fid_of.pop(i) for i in gone), np.int64, len(gone))
            for i, slot in zip(gone, slots.tolist(), strict=True):
                del st.uuid_of[slot]
                st.rev_of.pop(i, None)
            st.rows.release(slots)
            if st.compact is not None:
                st.compact.clear(slots)
            st.order = None
            return len(gone)

    def advance_watermark(self, rev: int) -> None:
        with self._lock.write():
            self._state.watermark = max(self._state.watermark, int(rev))

    def adopt(self, other: Mirror) -> None:
        """Take over ``other``'s contents at once: readers see all old or all new."""
        if other.blocks != self.blocks:
            raise ValueError(f"cannot adopt a mirror of {other.blocks}; this one is {self.blocks}")
        with self._writer, self._lock.write():
            self._state = other._state

    @staticmethod
    def _store(st: _State, slots: np.ndarray, rows: np.ndarray) -> None:
        """Write rows and their codes; caller holds the write lock."""
        if len(slots):
            st.rows.put(slots, rows)
            if st.compact is not None:
                st.compact.set_rows(slots, rows)

    def _refit_if_due(self) -> None:
        """Fit the compact projection once there are enough points, and again whenever
        they have doubled since. Caller holds ``_writer``, so rows do not change meanwhile;
        searches go on with the old codes until the new ones are swapped in."""
        st = self._state
        live = len(st.fid_of)
        if live < self.exact_below:
            return
        if st.compact is not None and live < 2 * st.compact.model.trained_on:
            return
        slots = np.fromiter(st.uuid_of, dtype=np.int64, count=live)
        compact = build_compact(st.rows, slots, list(self._slices.values()))
        with self._lock.write():
            st.compact = compact

    # --- sync with the store (the source of truth); see sync.py -----------------------
    def catch_up(self, store: Store) -> int:
        """Apply points changed since the watermark; returns how many were applied."""
        with self._sync_lock:
            return sync.catch_up(self, store)

    def full_diff(self, store: Store) -> tuple[int, int]:
        """Compare every id (and rev) with the store; returns (removed, fetched)."""
        with self._sync_lock:
            return sync.full_diff(self, store)

    def rebuild(self, store: Store) -> int:
        """Reload everything from the store; searches keep working meanwhile."""
        with self._sync_lock:
            return sync.rebuild(self, type(self)(self.path, self.blocks), store)

    def lag(self, store: Store) -> int:
        """How many store points have a rev above the watermark."""
        return sync.lag(self, store)

    # --- snapshot ---------------------------------------------------------------------
    def save(self) -> None:
        """Write a snapshot under ``path``; a crash mid-way leaves the previous one.

        Call it from the writing thread: it holds off writes for its duration (seconds for
        a large mirror), and a queued write would in turn hold off new searches."""
        with self._save_lock, self._lock.read():
            st = self._state
            uuids = list(st.fid_of)
            compact = st.compact
            snap = snapshot.Snapshot(
                vectors=np.zeros((0, self.dim), np.float32),  # streamed from parts instead
                uuids=uuids,
                slots=np.fromiter(st.fid_of.values(), dtype=np.int64, count=len(uuids)),
                revs=np.fromiter((st.rev_of[u] for u in uuids), dtype=np.int64, count=len(uuids)),
                watermark=st.watermark,
                codes=compact.codes() if compact is not None else None,
                compact=compact.model.as_arrays() if compact is not None else None,
            )
            parts = (part for _, part in st.rows.parts())
            snapshot.write(self.path, self.blocks, snap, (st.rows.n_slots, parts))

    @classmethod
    def load(cls, path: Path, blocks: Sequence[tuple[str, int]]) -> Mirror | None:
        """The mirror saved under ``path``, or None (logged) when there is no usable one."""
        mirror = cls(path, blocks)
        snap = snapshot.read(mirror.path, mirror.blocks)
        if snap is None:
            return None
        compact = None
        if snap.codes is not None and snap.compact is not None:
            try:
                model = CompactModel.from_arrays(snap.compact, list(mirror._slices.values()))
            except (KeyError, ValueError) as exc:  # refitted below instead
                snapshot.log.warning("mirror codes at %s not used: %s", path, exc)
            else:
                compact = CompactIndex(model)
                compact.set_codes(np.arange(len(snap.vectors)), snap.codes)
        mirror._attach(snap.vectors, snap.uuids, snap.slots, snap.revs, snap.watermark, compact)
        return mirror

    @classmethod
    def from_rows(
        cls,
        path: Path,
        blocks: Sequence[tuple[str, int]],
        rows: np.ndarray,
        ids: Sequence[str],
        revs: Sequence[int] | np.ndarray,
        watermark: int = 0,
    ) -> Mirror:
        """A mirror over fused rows stored as a mirror stores them (each block unit-norm or
        zero), used in place: a memory-mapped .npy stays mapped. For bulk loads and
        benchmarks; ``upsert`` is the checked way in."""
        mirror = cls(path, blocks)
        slots = np.arange(len(ids), dtype=np.int64)
        mirror._attach(rows, list(ids), slots, np.asarray(revs, np.int64), watermark, None)
        return mirror

    def _attach(
        self,
        vectors: np.ndarray,
        uuids: list[str],
        slots: np.ndarray,
        revs: np.ndarray,
        watermark: int,
        compact: CompactIndex | None,
    ) -> None:
        rows = Rows(self.dim, base=vectors)
        taken = np.zeros(rows.n_slots, dtype=bool)
        taken[slots] = True
        rows.set_free(np.flatnonzero(~taken).tolist())
        slot_list = slots.tolist()
        self._state = _State(
            rows=rows,
            compact=compact,
            fid_of=dict(zip(uuids, slot_list, strict=True)),
            uuid_of=dict(zip(slot_list, uuids, strict=True)),
            rev_of=dict(zip(uuids, revs.tolist(), strict=True)),
            watermark=watermark,
        )
        if compact is None:
            with self._writer:
                self._refit_if_due()  # no usable codes saved: make them now
