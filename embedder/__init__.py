"""Image bytes -> named, L2-normalised vectors. No storage, no HTTP.

Importing this package imports nothing heavy: not torch (the models import it inside
``load()``), and not numpy or Pillow until a name below is used, so a command that only
reads settings (``lookalike status`` beside a running server) starts fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from embedder.config import ModelConfig
    from embedder.decode import Decoded, decode_image, probe
    from embedder.errors import DecodeError, EmbedderError, ModelLoadError
    from embedder.pipeline import Embedder, FileResult
    from embedder.registry import ModelStatus, planned_models, vector_sizes

_WHERE = {
    "ModelConfig": "embedder.config",
    "Decoded": "embedder.decode",
    "decode_image": "embedder.decode",
    "probe": "embedder.decode",
    "DecodeError": "embedder.errors",
    "EmbedderError": "embedder.errors",
    "ModelLoadError": "embedder.errors",
    "Embedder": "embedder.pipeline",
    "FileResult": "embedder.pipeline",
    "ModelStatus": "embedder.registry",
    "planned_models": "embedder.registry",
    "vector_sizes": "embedder.registry",
}

__all__ = [
    "DecodeError",
    "Decoded",
    "Embedder",
    "EmbedderError",
    "FileResult",
    "ModelConfig",
    "ModelLoadError",
    "ModelStatus",
    "decode_image",
    "planned_models",
    "probe",
    "vector_sizes",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'embedder' has no attribute {name!r}")
    return getattr(import_module(_WHERE[name]), name)
