"""Image bytes -> named, L2-normalised vectors. No storage, no HTTP.

Importing this package never imports torch: the models import it inside ``load()``.
"""

from embedder.config import ModelConfig
from embedder.decode import Decoded, decode_image, probe
from embedder.errors import DecodeError, EmbedderError, ModelLoadError
from embedder.pipeline import Embedder, FileResult
from embedder.registry import ModelStatus, planned_models, vector_sizes

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
