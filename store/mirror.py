"""The FAISS mirror: an exact, in-memory index of fused vectors, derived from the store.

Each point's fused vector is the concatenation of its models' L2-normalised vectors (a
missing vector is a zero block). A query scales each of its blocks by ``w_i / sum(w)``, so
one inner product gives ``sum(w_i * cos_i) / sum(w_i)`` and weights change per query
without reindexing.

Concurrency: one writer, many readers, behind a writer-preferring readers-writer lock.
faiss releases the GIL during search, so concurrent searches really run in parallel, but a
faiss index must not be searched while it is being added to or compacted (``add`` may
reallocate the storage a search is reading). Copy-on-write would avoid blocking readers,
but it copies the whole index (1.2 GB at 100k x 3072) on every write batch; a write holds
the lock only for the faiss calls, with all validation and normalisation done beforehand.
``rebuild`` is the exception: it fills a fresh mirror off to the side and swaps it in, so
searches keep being answered from the old one meanwhile.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from store import mirror_snapshot, mirror_sync
from store.base import Record, Store
from store.mirror_lock import RWLock

# Scores are float32 sums: more digits than this are noise.
SCORE_DIGITS = 6


@dataclass(frozen=True)
class MirrorHit:
    id: str
    score: float  # sum(w_i * cos_i) / sum(w_i)
    scores: dict[str, float]  # model name -> cosine, for models both sides have


@dataclass
class _State:
    """Everything a reader must see consistently; replaced whole by ``adopt``."""

    index: Any  # faiss.IndexIDMap2 over an IndexFlatIP
    fid_of: dict[str, int] = field(default_factory=dict)  # point uuid -> faiss id
    uuid_of: dict[int, str] = field(default_factory=dict)
    rev_of: dict[str, int] = field(default_factory=dict)  # rev applied, per point
    next_fid: int = 0
    watermark: int = 0


def _new_index(dim: int) -> Any:
    faiss = mirror_snapshot.import_faiss()
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    # A zero row stays zero: it stands for "no vector", cosine 0 with everything.
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


class Mirror:
    """Exact fused-vector search over the store's points. See the module docstring."""

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
        self._state = _State(_new_index(self.dim))
        self._lock = RWLock()
        self._sync_lock = threading.Lock()  # sync steps read-then-write: one at a time
        self._save_lock = threading.Lock()

    # --- reads ------------------------------------------------------------------------
    @property
    def watermark(self) -> int:
        """Highest rev up to which the mirror reflects the store (see ``mirror_sync``)."""
        return self._state.watermark

    def __len__(self) -> int:
        return int(self._state.index.ntotal)

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
            row = st.index.reconstruct(st.fid_of[point_id])
        blocks = {name: row[self._slices[name]] for name, _ in self.blocks}
        return {name: v for name, v in blocks.items() if v.any()}

    def page(self, start: int, count: int) -> tuple[list[str], np.ndarray]:
        """Ids and fused rows (copies) of the points at storage positions
        ``[start, start + count)``: a batched scan of every point (the duplicate report's
        self-join) without holding the whole matrix twice. Positions shift when points are
        removed, so a scan racing a deletion may skip or repeat a point."""
        with self._lock.read():
            st = self._state
            total = int(st.index.ntotal)
            start, stop = max(0, int(start)), min(total, int(start) + max(0, int(count)))
            if stop <= start:
                return [], np.zeros((0, self.dim), dtype=np.float32)
            faiss = mirror_snapshot.import_faiss()
            id_map = faiss.rev_swig_ptr(st.index.id_map.data(), total)  # a view, no copy
            ids = [st.uuid_of[int(f)] for f in id_map[start:stop]]
            rows = np.array(st.index.index.reconstruct_n(start, stop - start), dtype=np.float32)
        return ids, rows

    def search(
        self,
        query: Mapping[str, np.ndarray],
        weights: Mapping[str, float],
        k: int,
        allowed: Collection[str] | None = None,
    ) -> list[MirrorHit]:
        """Top-k points by ``sum(w_i * cos_i) / sum(w_i)`` over the models in both
        ``query`` and ``weights``; ``allowed`` restricts results to those point ids."""
        units, fractions = self._query_blocks(query, weights)
        fused = np.zeros((1, self.dim), dtype=np.float32)
        for name, frac in fractions.items():
            fused[0, self._slices[name]] = frac * units[name]
        if k <= 0:
            return []
        with self._lock.read():
            st = self._state
            params = None
            limit = int(st.index.ntotal)
            if allowed is not None:
                faiss = mirror_snapshot.import_faiss()
                fids = np.fromiter(
                    (f for f in (st.fid_of.get(i) for i in allowed) if f is not None),
                    dtype=np.int64,
                )
                # The selector must outlive the search: ``params`` keeps it referenced.
                params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(fids))
                limit = min(limit, len(fids))
            if min(k, limit) == 0:
                return []
            _, found = st.index.search(fused, min(k, limit), params=params)
            found = found[0][found[0] >= 0]
            stored = st.index.reconstruct_batch(found)
            point_ids = [st.uuid_of[int(f)] for f in found]
        return self._hits(point_ids, stored, units, fractions)

    def _query_blocks(
        self, query: Mapping[str, np.ndarray], weights: Mapping[str, float]
    ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """Unit query vector per model, and each model's share of the total weight."""
        unknown = sorted({name for name, w in weights.items() if w} - set(self._slices))
        if unknown:
            raise ValueError(f"unknown models {unknown}; the mirror holds {list(self._slices)}")
        units: dict[str, np.ndarray] = {}
        for name, vec in query.items():
            if name not in self._slices:
                continue  # a model the mirror lacks (yet), queried with no weight
            v = np.asarray(vec, dtype=np.float64).reshape(-1)
            dim = self._slices[name].stop - self._slices[name].start
            if v.shape != (dim,):
                raise ValueError(f"query vector for {name!r} has {v.size} values, want {dim}")
            norm = float(np.linalg.norm(v))
            if norm > 0 and np.isfinite(norm):
                units[name] = v / norm
        used: dict[str, float] = {}
        for name, w in weights.items():
            w = float(w)
            if not np.isfinite(w) or w < 0:
                raise ValueError(f"weight for {name!r} must be a finite number >= 0, got {w}")
            if w > 0 and name in units:
                used[name] = w
        total = sum(used.values())
        if total <= 0:
            raise ValueError("every weight is 0 (or its model has no query vector)")
        return units, {name: w / total for name, w in used.items()}

    def _hits(
        self,
        point_ids: list[str],
        stored: np.ndarray,
        units: dict[str, np.ndarray],
        fractions: dict[str, float],
    ) -> list[MirrorHit]:
        # Recomputed in float64 from the stored blocks so that each hit's score is exactly
        # the weighted mean of the cosines it reports; faiss only chose the candidates.
        cosines: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray] = {}
        for name, unit in units.items():
            block = stored[:, self._slices[name]].astype(np.float64)
            cosines[name] = block @ unit
            present[name] = np.asarray(block.any(axis=1))
        fused = sum(
            (frac * cosines[name] for name, frac in fractions.items()),
            start=np.zeros(len(point_ids)),
        )
        hits = [
            MirrorHit(
                id=pid,
                score=round(float(fused[row]), SCORE_DIGITS),
                scores={
                    name: round(float(cos[row]), SCORE_DIGITS)
                    for name, cos in cosines.items()
                    if present[name][row]
                },
            )
            for row, pid in enumerate(point_ids)
        ]
        order = np.argsort(-fused, kind="stable")
        return [hits[i] for i in order]

    # --- writes -----------------------------------------------------------------------
    def upsert(self, records: Sequence[Record], *, advance_watermark: bool = True) -> int:
        """Insert or replace points; returns how many. Raises the watermark to the highest
        ``payload['rev']`` among them unless told not to (sync steps set it themselves)."""
        latest = {r.id: r for r in records}  # a later record for the same id wins
        if not latest:
            return 0
        recs = list(latest.values())
        fused = self._fuse(recs)
        revs = [int(r.payload.get("rev", 0)) for r in recs]
        with self._lock.write():
            st = self._state
            known = [i for i, r in enumerate(recs) if r.id in st.fid_of]
            if known:
                # Most updates are payload edits (tags) that bump the rev only. Rows that
                # come out bit-identical keep their place, sparing the O(n) compaction.
                old = st.index.reconstruct_batch(
                    np.fromiter((st.fid_of[recs[i].id] for i in known), np.int64, len(known))
                )
                same = (old == fused[known]).all(axis=1)
                for i in np.asarray(known)[same].tolist():
                    st.rev_of[recs[i].id] = revs[i]
                self._drop(st, [recs[i].id for i in np.asarray(known)[~same].tolist()])
                fresh = [i for i, r in enumerate(recs) if r.id not in st.fid_of]
            else:
                fresh = list(range(len(recs)))
            if fresh:
                fids = np.arange(st.next_fid, st.next_fid + len(fresh), dtype=np.int64)
                st.index.add_with_ids(fused[fresh], fids)
                st.next_fid += len(fresh)
                for i, fid in zip(fresh, fids.tolist(), strict=True):
                    st.fid_of[recs[i].id] = fid
                    st.uuid_of[fid] = recs[i].id
                    st.rev_of[recs[i].id] = revs[i]
            if advance_watermark:
                st.watermark = max(st.watermark, *revs)
        return len(recs)

    def remove(self, ids: Iterable[str]) -> int:
        """Remove these points (unknown ids are ignored); returns how many went."""
        wanted = set(ids)
        with self._lock.write():
            return self._drop(self._state, [i for i in wanted if i in self._state.fid_of])

    def advance_watermark(self, rev: int) -> None:
        with self._lock.write():
            self._state.watermark = max(self._state.watermark, int(rev))

    def adopt(self, other: Mirror) -> None:
        """Take over ``other``'s contents at once: readers see all old or all new."""
        if other.blocks != self.blocks:
            raise ValueError(f"cannot adopt a mirror of {other.blocks}; this one is {self.blocks}")
        with self._lock.write():
            self._state = other._state

    @staticmethod
    def _drop(st: _State, ids: list[str]) -> int:
        """Remove existing points; caller holds the write lock."""
        if not ids:
            return 0
        fids = np.fromiter((st.fid_of.pop(i) for i in ids), dtype=np.int64, count=len(ids))
        for i, fid in zip(ids, fids.tolist(), strict=True):
            del st.uuid_of[fid]
            st.rev_of.pop(i, None)
        # One compaction pass over the whole index per call, however many ids: batch them.
        st.index.remove_ids(fids)
        return len(ids)

    def _fuse(self, recs: list[Record]) -> np.ndarray:
        fused = np.zeros((len(recs), self.dim), dtype=np.float32)
        for name, dim in self.blocks:
            rows = [i for i, r in enumerate(recs) if r.vectors.get(name) is not None]
            if not rows:
                continue
            vecs = [np.asarray(recs[i].vectors[name], dtype=np.float32).reshape(-1) for i in rows]
            for i, v in zip(rows, vecs, strict=True):
                if v.size != dim:
                    raise ValueError(
                        f"point {recs[i].id}: {name!r} vector has {v.size} values, want {dim}"
                    )
            block = np.stack(vecs)
            if not np.isfinite(block).all():
                raise ValueError(f"non-finite values in {name!r} vectors")
            fused[rows, self._slices[name]] = _normalise_rows(block)
        return fused

    # --- sync with the store (the source of truth); see mirror_sync -------------------
    def catch_up(self, store: Store) -> int:
        """Apply points changed since the watermark; returns how many were applied."""
        with self._sync_lock:
            return mirror_sync.catch_up(self, store)

    def full_diff(self, store: Store) -> tuple[int, int]:
        """Compare every id (and rev) with the store; returns (removed, fetched)."""
        with self._sync_lock:
            return mirror_sync.full_diff(self, store)

    def rebuild(self, store: Store) -> int:
        """Reload everything from the store; searches keep working meanwhile."""
        with self._sync_lock:
            return mirror_sync.rebuild(self, store)

    def lag(self, store: Store) -> int:
        """How many store points have a rev above the watermark."""
        return mirror_sync.lag(self, store)

    # --- snapshot ---------------------------------------------------------------------
    def save(self) -> None:
        """Write a snapshot under ``path``; a crash mid-way leaves the previous one.

        Call it from the writing thread: it holds off writes for its duration (seconds for
        a large index), and a queued write would in turn hold off new searches."""
        with self._save_lock, self._lock.read():
            st = self._state
            uuids = list(st.fid_of)
            snap = mirror_snapshot.Snapshot(
                index=st.index,
                uuids=uuids,
                fids=np.fromiter(st.fid_of.values(), dtype=np.int64, count=len(uuids)),
                revs=np.fromiter((st.rev_of[u] for u in uuids), dtype=np.int64, count=len(uuids)),
                watermark=st.watermark,
            )
            mirror_snapshot.write(self.path, self.blocks, snap)

    @classmethod
    def load(cls, path: Path, blocks: Sequence[tuple[str, int]]) -> Mirror | None:
        """The mirror saved under ``path``, or None (logged) when there is no usable one."""
        mirror = cls(path, blocks)
        snap = mirror_snapshot.read(mirror.path, mirror.blocks)
        if snap is None:
            return None
        uuids, fids = snap.uuids, snap.fids.tolist()
        mirror._state = _State(
            index=snap.index,
            fid_of=dict(zip(uuids, fids, strict=True)),
            uuid_of=dict(zip(fids, uuids, strict=True)),
            rev_of=dict(zip(uuids, snap.revs.tolist(), strict=True)),
            next_fid=max(fids, default=-1) + 1,
            watermark=snap.watermark,
        )
        return mirror
