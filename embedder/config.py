"""Configuration of the embedding models, built by ``engine.settings``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from embedder.errors import ModelLoadError

# The values each speed setting takes: checked where the setting is applied (TorchModel.tune).
PRECISIONS = ("auto", "fp32", "bf16")
COMPILE_MODES = ("auto", "on", "off")
INT8_MODES = ("auto", "off")


@dataclass(frozen=True)
class ModelConfig:
    clip_weights: str = "openai"  # 'openai' | checkpoint path | 'random' | 'off'
    cnn: str = "resnet50"  # 'resnet50' | 'effnet-lite0' | 'off'
    cnn_weights: str = "imagenet"  # 'imagenet' | path | 'random'
    hsv: bool = True
    strict: bool = False  # any weight failure is fatal instead of a fallback
    cache_dir: Path | None = None
    # Compile artifacts and inductor's cache (embedder.compile_cache); None: in memory only.
    compile_dir: Path | None = None
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda'
    batch_size: int = 16
    query_batch: int = 8  # the most query images one search batch holds (search_batch_max)
    threads: int = 0  # torch intra-op threads, 0 = torch default
    precision: str = "auto"  # 'auto' (bf16 where native) | 'fp32' | 'bf16'
    compile: str = "auto"  # torch.compile: 'auto' (lazily, for bulk runs) | 'on' | 'off'
    int8: str = "auto"  # compiled CPU models go int8 where verified (embedder.int8) | 'off'
    keypoints: bool = True  # local features for copy verification (embedder.keypoints)
    # A process that only indexes (lookalike index): CLIP's text tower is freed (~250 MB; a
    # text query loads it again), and a run that settles on eager bf16 (compile off, or not
    # worth it by the rule) keeps bf16 weights only (~220 MB): Embedder.embed_files.
    index_only: bool = False


def check_choice(value: str, choices: tuple[str, ...], *, what: str, setting: str) -> None:
    """Raise ModelLoadError, naming ``setting``, unless ``value`` is one of ``choices``."""
    if value not in choices:
        options = f"{', '.join(choices[:-1])} or {choices[-1]}"
        raise ModelLoadError(f"Unknown {what} {value!r}: use {setting}={options}.", setting=setting)
