"""Synthetic fused vectors with the shape of real embeddings, for the search benchmarks.

Dimension-faithful: the three seed models' blocks (CLIP 512, ResNet-50 2048, HSV 512), each
L2-normalised, as the mirror stores them. Random isotropic vectors would be the wrong test:
real image embeddings (1) share a strong common direction (two unrelated photos still have
a CLIP cosine around 0.5), (2) put most of their variance in a few hundred directions with a
decaying spectrum, and (3) come in groups (a shoot, a product, edits of one picture). In
isotropic data every point is about as far from a query as every other, no method but a
full scan finds "neighbours", and the neighbours mean nothing. So each block is

    x = normalise(a * mean + latent @ G + noise)

- ``mean``: a fixed unit direction per block, weighted so the typical cosine between two
  unrelated points is ~0.5 (CLIP, ResNet) or ~0.3 (HSV);
- ``latent``: ``rank`` dims with a power-law spectrum (variance of dim j ~ 1/j), mixed into
  the block by a fixed random matrix G; a point is its group's centre plus its own draw
  (correlation ``GROUP_RHO``), ~50 points a group;
- ``noise``: isotropic, ``NOISE`` of the energy: the part no projection can capture, and the
  main source of error of the compact stage.

Queries are fresh draws from the same process (new members of existing groups, or of new
groups), not stored points, so every query has to be searched for. ``--noise`` in
bench/search_latency.py makes the isotropic part larger, to show how recall depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

BLOCKS: list[tuple[str, int]] = [("clip-vit-b-32", 512), ("resnet50", 2048), ("hsv-8x8x8", 512)]
# The models that install offline (EfficientNet-Lite0 in place of ResNet-50, no CLIP).
OFFLINE_BLOCKS: list[tuple[str, int]] = [("effnet-lite0", 1280), ("hsv-8x8x8", 512)]
RANK = {"clip-vit-b-32": 128, "resnet50": 256, "effnet-lite0": 256, "hsv-8x8x8": 64}
MEAN_WEIGHT = {"clip-vit-b-32": 1.0, "resnet50": 1.0, "effnet-lite0": 1.0, "hsv-8x8x8": 0.65}
NOISE = 0.2  # share of each block's energy (before normalising) that is isotropic
GROUP_SIZE = 50
GROUP_RHO = 0.7  # a point's latent = rho * group centre + sqrt(1 - rho^2) * own draw


@dataclass
class _Block:
    name: str
    dim: int
    rank: int
    mean: np.ndarray  # (dim,)
    mix: np.ndarray  # (rank, dim), rows scaled by the spectrum


class Synthetic:
    def __init__(
        self,
        n: int,
        seed: int = 0,
        noise: float = NOISE,
        blocks: list[tuple[str, int]] | None = None,
    ) -> None:
        self.n = n
        self.noise = noise
        self.groups = max(1, n // GROUP_SIZE)
        rng = np.random.default_rng(seed)
        self.blocks: list[_Block] = []
        for name, dim in BLOCKS if blocks is None else blocks:
            rank = RANK[name]
            mean = rng.standard_normal(dim)
            mean /= np.linalg.norm(mean)
            spectrum = 1.0 / np.arange(1, rank + 1)
            mix = rng.standard_normal((rank, dim)) / np.sqrt(dim)  # rows ~unit norm
            mix *= np.sqrt(spectrum / spectrum.sum())[:, None]  # latent energy ~1 in total
            self.blocks.append(_Block(name, dim, rank, mean.astype(np.float32), mix))
        self._seed = seed
        # Group centres, for the stored groups and the new ones queries may start.
        total = self.groups * 4 // 3 + 1
        self._centre = [rng.standard_normal((total, b.rank)) for b in self.blocks]

    @property
    def dim(self) -> int:
        return sum(b.dim for b in self.blocks)

    def _draw(self, rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
        parts = []
        for b, blk in enumerate(self.blocks):
            own = rng.standard_normal((len(groups), blk.rank))
            latent = GROUP_RHO * self._centre[b][groups] + np.sqrt(1 - GROUP_RHO**2) * own
            signal = latent @ blk.mix  # energy ~1
            noise = rng.standard_normal((len(groups), blk.dim)) / np.sqrt(blk.dim)
            a = MEAN_WEIGHT[blk.name]
            x = a * blk.mean + np.sqrt(1 - self.noise) * signal + np.sqrt(self.noise) * noise
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            parts.append(x.astype(np.float32))
        return np.concatenate(parts, axis=1)

    def rows(self, start: int, count: int) -> np.ndarray:
        """Fused rows ``start`` .. ``start + count`` (deterministic per start)."""
        rng = np.random.default_rng((self._seed, 1, start))
        groups = rng.integers(0, self.groups, count)
        return self._draw(rng, groups)

    def queries(self, count: int, seed: int = 99) -> list[dict[str, np.ndarray]]:
        """Fresh points: three in four join an existing group, one in four a new one."""
        rng = np.random.default_rng((self._seed, 2, seed))
        groups = rng.integers(0, self.groups * 4 // 3 + 1, count)
        fused = self._draw(rng, groups)
        out = []
        for row in fused:
            q, at = {}, 0
            for blk in self.blocks:
                q[blk.name] = row[at : at + blk.dim]
                at += blk.dim
            out.append(q)
        return out

    def split(self, fused: np.ndarray) -> dict[str, np.ndarray]:
        """(n, D) fused rows -> {model: (n, dim)} named vectors."""
        out, at = {}, 0
        for blk in self.blocks:
            out[blk.name] = fused[:, at : at + blk.dim]
            at += blk.dim
        return out

    def write_npy(self, path: Path, chunk: int = 32_768) -> np.ndarray:
        """All ``n`` rows into a float32 .npy, chunk by chunk; returns it memory-mapped."""
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(self.n, self.dim))
        for start in range(0, self.n, chunk):
            out[start : start + chunk] = self.rows(start, min(chunk, self.n - start))
        out.flush()
        return np.load(path, mmap_mode="r")


def point_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"
