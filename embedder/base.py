"""The one shape every embedding model has, and the two capabilities some have.

A model is built cheaply (no weights), then ``load()`` resolves and loads its weights.
``preprocess`` runs on decoding threads (numpy/PIL only, no torch state shared);
``embed`` runs batched inference and returns float32, L2-normalised rows.

``Accelerated`` (speed settings and compiling: the neural models, embedder.torch_model) and
``TextEmbedder`` (text into the image space: CLIP) are protocols, so the pipeline asks a
model what it can do instead of which class it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class WeightsInfo:
    """Where a model's weights came from, for logs, `lookalike status` and the UI."""

    source: str  # e.g. 'openai', 'imagenet', 'bundled', 'random', 'file:/path', 'none'
    fallback: bool = False  # True when these are not the weights that were asked for
    reason: str | None = None  # why a fallback happened, and the setting that fixes it


class Model(ABC):
    role: ClassVar[str]  # 'clip' | 'cnn' | 'hsv': what a query weight refers to
    name: str  # model identity, also the Qdrant named-vector key, e.g. 'resnet50'
    dim: int
    weights: WeightsInfo

    @abstractmethod
    def load(self) -> None:
        """Resolve and load weights. Raises ``ModelLoadError`` if they cannot be had."""

    @abstractmethod
    def preprocess(self, image: Image.Image) -> Any:
        """RGB PIL image -> model input for one image (thread-safe, CPU only)."""

    @abstractmethod
    def embed(self, batch: list[Any]) -> np.ndarray:
        """Preprocessed inputs -> (n, dim) float32, each row L2-normalised."""

    def embed_candidates(self, batch: list[Any]) -> np.ndarray:
        """As ``embed``, for rows that only propose candidates to a later, exact check (the
        windows of a picture searched inside, engine.inside): a model may trade a little
        fidelity for speed here. The default is ``embed``."""
        return self.embed(batch)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


@runtime_checkable
class Accelerated(Protocol):
    """A model whose inference has speed settings (embedder.runtime, embedder.compiled)."""

    name: str

    @property
    def precision(self) -> str:
        """What its inference runs at: 'fp32' or 'bf16'."""

    @property
    def int8(self) -> bool:
        """Whether it runs an int8 module now (the pipeline's readers hold back meanwhile)."""

    def tune(self, precision: str, compile_mode: str, int8: str, batch_size: int) -> None:
        """Apply the settings (``ModelConfig``), once, after load()."""

    def start_compile(self, *, background: bool = True) -> None:
        """Compile, once; a no-op with compile 'off'."""

    def expected_compile_s(self) -> float:
        """Seconds a compile started now is expected to take here (0: none would run)."""

    def wait_compiled(self, timeout: float | None = None) -> bool:
        """Wait for compiles under way; True when a compiled module is in use."""

    def add_batch_size(self, batch: int, *, background: bool = True) -> None:
        """A batch size that keeps coming: compile for it too, where that helps (int8)."""

    def settle_eager(self) -> bool:
        """Run eager bf16 to the end of the process: bf16 weights, no compile; True if so."""

    def runtime(self) -> dict[str, Any]:
        """How its inference runs now, for /api/v1/status."""


@runtime_checkable
class TextEmbedder(Protocol):
    """A model that also embeds text, into the same space as its image vectors."""

    name: str
    dim: int

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> (n, dim) float32, L2-normalised."""
