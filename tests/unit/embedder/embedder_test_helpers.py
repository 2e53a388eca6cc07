"""Image helpers for the embedder tests (a unique module name: test dirs have no __init__)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def rgb(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr)).convert("RGB")


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


def recompressed(image: Image.Image, scale: float = 0.8, quality: int = 70) -> Image.Image:
    """A slightly smaller, JPEG-recompressed copy: the same picture to a person."""
    size = (round(image.width * scale), round(image.height * scale))
    data = encode(image.resize(size, Image.Resampling.BICUBIC), "JPEG", quality=quality)
    return Image.open(io.BytesIO(data)).convert("RGB")


def checkpoint_file(state: dict[str, Any], path: Path, *, half: bool = False) -> Path:
    """``state`` saved as a torch checkpoint at ``path``; ``half``: its floating tensors in
    fp16, as in OpenAI's own CLIP file."""
    import torch

    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, path)
    return path


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


@dataclass
class Offline:
    """Records every download attempted while the network is 'down' (see conftest)."""

    attempts: list[str] = field(default_factory=list)
