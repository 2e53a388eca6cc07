"""Stage one of a mirror search: candidates from compact codes of the fused vectors.

Why: an exact scan reads every full vector, 12 KB a point at 3 models (512 + 2048 + 512
floats), memory-bound at ~50 ms per query at 100k points here. A code of a few hundred bytes
scanned the same way costs ~1/30 of that; the few hundred best candidates are then rescored
exactly from the full vectors (``index.Mirror.search``), so the scores returned are exact
and only the choice of candidates is approximate (recall@10 >= 0.99: bench/search_latency).

A code is, per model block, a PCA projection of the (centred) block, scaled per component
and rounded to int8, scanned by faiss (IndexScalarQuantizer, QT_8bit_direct_signed: the
fastest of faiss's 8-bit scans here, 1.4 ms at 100k x 448 against 2.9 ms for QT_8bit).
Projecting each block on its own keeps the per-query model weights: the query's block b is
projected with the same basis and scaled by its weight share f_b, so the scan estimates
``sum f_b <q_b, x_b - mean_b>``. The mean term ``sum f_b <q_b, mean_b>`` is the same for
every point, so leaving it out changes no ranking, and centring spends the int8 range on
what tells points apart instead of on what they share.

How many components each block gets: the ``budget`` components with the largest variance
over all blocks together (every block is unit-norm, so variances are comparable), at least
``MIN_PER_BLOCK`` each. With the default budget that is 384 bytes a point.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from store.mirror.rows import Rows

BUDGET = 384  # code bytes per point
MIN_PER_BLOCK = 16
TRAIN_SAMPLE = 20_000  # rows the PCA is fitted on
# Components are scaled so that +-CLIP_SIGMAS standard deviations fill the int8 range;
# rarer values are clipped, which only makes their candidate score a little less exact.
CLIP_SIGMAS = 5.0
_ZERO_CODE = 128  # QT_8bit_direct_signed stores v + 128


def import_faiss() -> Any:
    """faiss, imported on first use because it is heavy. Typed as Any: its SWIG signatures
    do not show the keyword arguments and array conversions its Python layer adds."""
    return importlib.import_module("faiss")


@dataclass
class CompactModel:
    """The fitted projection: what a snapshot stores to skip refitting on load."""

    slices: list[slice]  # each block's place in the fused vector
    means: np.ndarray  # (D,) float32, the fused vector's mean
    basis: np.ndarray  # (D, K) float32; block b's rows feed only its own columns
    widths: np.ndarray  # (blocks,) int64: components per block, in block order
    scales: np.ndarray  # (K,) float32, multiplies each component before rounding
    trained_on: int  # live points when fitted: the mirror refits once it has doubled

    @property
    def width(self) -> int:
        return int(self.basis.shape[1])

    def as_arrays(self) -> dict[str, np.ndarray]:
        return {
            "means": self.means,
            "basis": self.basis,
            "widths": self.widths,
            "scales": self.scales,
            "trained_on": np.asarray(self.trained_on, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, slices: list[slice]) -> CompactModel:
        dim = slices[-1].stop
        model = cls(
            slices=slices,
            means=np.asarray(arrays["means"], dtype=np.float32),
            basis=np.asarray(arrays["basis"], dtype=np.float32),
            widths=np.asarray(arrays["widths"], dtype=np.int64),
            scales=np.asarray(arrays["scales"], dtype=np.float32),
            trained_on=int(arrays["trained_on"]),
        )
        k = model.basis.shape[1] if model.basis.ndim == 2 else -1
        if model.means.shape != (dim,) or model.basis.shape != (dim, k) or k < 1:
            raise ValueError(f"compact model does not fit dim {dim}")
        if model.scales.shape != (k,) or model.widths.shape != (len(slices),):
            raise ValueError("compact model is inconsistent")
        if int(model.widths.sum()) != k or not np.isfinite(model.basis).all():
            raise ValueError("compact model is inconsistent")
        return model

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """Rows (n, D) -> codes (n, K) uint8, in faiss's direct_signed layout."""
        y = np.empty((len(rows), self.width), dtype=np.float32)
        col = 0
        for sl, k in zip(self.slices, self.widths.tolist(), strict=True):
            # Block by block: the dense basis is mostly zeros, 3x the work at 3 models.
            y[:, col : col + k] = (rows[:, sl] - self.means[sl]) @ self.basis[sl, col : col + k]
            col += k
        y *= self.scales
        np.rint(y, out=y)
        np.clip(y, -127, 127, out=y)
        return (y + _ZERO_CODE).astype(np.uint8)

    def query(self, fused_query: np.ndarray) -> np.ndarray:
        """A weighted fused query (D,) -> the (1, K) vector the codes are scanned with.

        Scaled to +-127: faiss's SIMD scan for direct_signed codes (d >= 32) rounds the query
        to integers too and computes int8 dot products (which is why it is fast), so a
        query left at its natural scale (|q| ~ 0.1) would round to zeros. Scaling changes
        no ranking."""
        q = np.empty(self.width, dtype=np.float32)
        col = 0
        for sl, k in zip(self.slices, self.widths.tolist(), strict=True):
            # einsum, not BLAS: see fusion.hits.
            q[col : col + k] = np.einsum("i,ij->j", fused_query[sl], self.basis[sl, col : col + k])
            col += k
        q /= self.scales
        peak = float(np.abs(q).max())
        if peak > 0:
            q *= 127.0 / peak
        return q.reshape(1, -1).astype(np.float32)


def fit(
    sample: np.ndarray, slices: Sequence[slice], trained_on: int, budget: int = BUDGET
) -> CompactModel:
    """PCA per block on ``sample`` (n, D) rows, components chosen as the module says."""
    dim = sample.shape[1]
    means = sample.mean(axis=0, dtype=np.float64)
    eig: list[tuple[np.ndarray, np.ndarray]] = []  # per block: variances desc, vectors
    for sl in slices:
        x = sample[:, sl] - means[sl].astype(np.float32)
        # The product in float32 (4x faster than float64), the eigensolver in float64.
        cov = (x.T @ x).astype(np.float64) / max(1, len(x))
        eig.append(_top_eigen(cov, min(budget, cov.shape[0])))
    widths = _allocate([v for v, _ in eig], min(budget, dim))
    basis = np.zeros((dim, sum(widths)), dtype=np.float32)
    sigmas = np.zeros(sum(widths))
    col = 0
    for sl, (values, vectors), k in zip(slices, eig, widths, strict=True):
        basis[sl, col : col + k] = vectors[:, :k]
        sigmas[col : col + k] = np.sqrt(values[:k])
        col += k
    # A component with no variance in the sample gets the scale of the weakest real one.
    floor = sigmas[sigmas > 0].min() if (sigmas > 0).any() else 1.0
    scales = 127.0 / (CLIP_SIGMAS * np.maximum(sigmas, floor))
    return CompactModel(
        slices=list(slices),
        means=means.astype(np.float32),
        basis=basis,
        widths=np.asarray(widths, dtype=np.int64),
        scales=scales.astype(np.float32),
        trained_on=trained_on,
    )


def _top_eigen(cov: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenvalues (descending, >= 0) and their eigenvectors of ``cov``.

    A full eigendecomposition of a 2048 x 2048 matrix takes ~4 s on 2 cores; when only a few
    hundred components are wanted, subspace iteration (a randomized range finder with power
    steps, Halko et al. 2011) gets them in a fraction of that, as accurately as the search
    needs."""
    d = cov.shape[0]
    if 2 * k >= d or d <= 768:
        values, vectors = np.linalg.eigh(cov)
    else:
        rng = np.random.default_rng(0)
        c32 = cov.astype(np.float32)
        q = np.linalg.qr(c32 @ rng.standard_normal((d, min(d, k + 32)), dtype=np.float32))[0]
        for _ in range(2):  # power steps: enough for a spectrum that decays at all
            q = np.linalg.qr(c32 @ q)[0]
        q64 = q.astype(np.float64)
        values, small = np.linalg.eigh(q64.T @ cov @ q64)
        vectors = q64 @ small
    order = np.argsort(values)[::-1][:k]
    return np.maximum(values[order], 0.0), vectors[:, order]


def _allocate(variances: list[np.ndarray], budget: int) -> list[int]:
    """Components per block: the largest variances overall, MIN_PER_BLOCK at least each."""
    widths = [min(MIN_PER_BLOCK, len(v)) for v in variances]
    rest = budget - sum(widths)
    if rest > 0:
        pool = np.concatenate([v[w:] for v, w in zip(variances, widths, strict=True)])
        owner = np.concatenate(
            [np.full(len(v) - w, b) for b, (v, w) in enumerate(zip(variances, widths, strict=True))]
        )
        for b in owner[np.argsort(pool, kind="stable")[::-1][:rest]]:
            widths[int(b)] += 1
    return widths


class CompactIndex:
    """The codes of every slot (zeros for free ones) in a faiss flat scan."""

    def __init__(self, model: CompactModel) -> None:
        self.model = model
        faiss = import_faiss()
        self._faiss = faiss
        self.index = faiss.IndexScalarQuantizer(
            model.width, faiss.ScalarQuantizer.QT_8bit_direct_signed, faiss.METRIC_INNER_PRODUCT
        )

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def nbytes(self) -> int:
        return len(self) * self.model.width

    def codes(self) -> np.ndarray:
        """A writable (ntotal, K) view of faiss's code storage (valid until it grows)."""
        n, k = len(self), self.model.width
        if n == 0:
            return np.zeros((0, k), dtype=np.uint8)
        flat = self._faiss.rev_swig_ptr(self.index.codes.data(), n * k)
        return np.asarray(flat).reshape(n, k)

    def set_codes(self, slots: np.ndarray, codes: np.ndarray) -> None:
        """Write codes at these slots, growing the index (with zero codes) as needed."""
        slots = np.asarray(slots, dtype=np.int64)
        if not len(slots):
            return
        self.grow(int(slots.max()) + 1)
        self.codes()[slots] = codes

    def grow(self, total: int) -> None:
        """Make room for ``total`` slots; new ones get the zero code, which the mirror never
        reports (it skips free slots)."""
        old, k = len(self), self.model.width
        if total <= old:
            return
        self.index.codes.resize(total * k)  # std::vector growth: amortised, geometric
        self.index.ntotal = total
        self.codes()[old:] = _ZERO_CODE

    def set_rows(self, slots: np.ndarray, rows: np.ndarray) -> None:
        self.set_codes(slots, self.model.encode(rows))

    def clear(self, slots: np.ndarray) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        slots = slots[slots < len(self)]
        if len(slots):
            self.codes()[slots] = _ZERO_CODE

    def candidates(
        self, fused_query: np.ndarray, count: int, allowed: np.ndarray | None
    ) -> np.ndarray:
        """Slots of the ``count`` best candidates (fewer if there are fewer slots)."""
        count = min(count, len(self) if allowed is None else len(allowed))
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        params = None
        if allowed is not None:
            params = self._faiss.SearchParameters(sel=self._faiss.IDSelectorBatch(allowed))
        _, found = self.index.search(self.model.query(fused_query), count, params=params)
        return found[0][found[0] >= 0]


def build(rows: Rows, live: np.ndarray, slices: list[slice]) -> CompactIndex:
    """Fit a projection on (a sample of) the ``live`` slots and encode every slot."""
    rng = np.random.default_rng(len(live))  # reproducible for a given collection size
    sample = live
    if len(live) > TRAIN_SAMPLE:
        sample = np.sort(rng.choice(live, TRAIN_SAMPLE, replace=False))
    model = fit(rows.get(sample), slices, len(live))
    compact = CompactIndex(model)
    compact.grow(rows.n_slots)
    step = 65_536  # bounded temporaries at 1M points
    for first, part in rows.parts():
        for at in range(0, len(part), step):
            block = part[at : at + step]
            compact.set_codes(np.arange(first + at, first + at + len(block)), model.encode(block))
    compact.clear(np.asarray(rows.free, dtype=np.int64))
    return compact
