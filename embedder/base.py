"""The one shape every embedding model has.

A model is built cheaply (no weights), then ``load()`` resolves and loads its weights.
``preprocess`` runs on decoding threads (numpy/PIL only, no torch state shared);
``embed`` runs batched inference and returns float32, L2-normalised rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

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


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
