"""Model input preparation in numpy and Pillow only, so it runs on decoding threads.

Each neural model declares its recipe (``InputSpec``). Decoding threads produce the resized
crop as uint8 HWC pixels (``to_pixels``); ``TorchModel.embed`` stacks them and normalises the
whole batch in torch (``normalise`` is the same arithmetic in numpy). Why there: the float
conversion and normalisation cost ~0.6 ms per image and model in numpy on the decoding
threads, which share the 2 cores with inference; in torch it is one vectorised pass per
batch (fused into the first layer when compiled), and a uint8 batch is a quarter the bytes.
Keeping torch out of here means no torch state is shared between threads, and the recipe can
be read without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class InputSpec:
    resize: int  # the shorter side is resized to this...
    crop: int  # ...then the centre crop x crop is taken
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: Image.Resampling = Image.Resampling.BILINEAR


def resize_center_crop(image: Image.Image, resize: int, crop: int, resample: int) -> Image.Image:
    """Resize the shorter side to ``resize``, then take the centre ``crop`` x ``crop``.

    Done as one resize of just the source region that the crop keeps: the same picture as
    resizing everything and cropping, but cheaper, and bounded for a 1 x 10000 banner whose
    full resize would need gigabytes.
    """
    w, h = image.size
    side = crop * min(w, h) / resize  # the crop window, in source pixels
    left, top = (w - side) / 2.0, (h - side) / 2.0
    box = (left, top, left + side, top + side)
    return image.resize((crop, crop), resample, box=box, reducing_gap=3.0)


def to_pixels(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """RGB image -> the resized centre crop as uint8 pixels of shape (crop, crop, 3)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    cropped = resize_center_crop(rgb, spec.resize, spec.crop, spec.resample)
    return np.asarray(cropped, dtype=np.uint8)


def normalise(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 (..., crop, crop, 3) pixels -> float32 (..., 3, crop, crop), as the model wants."""
    scaled = pixels.astype(np.float32) * np.float32(1.0 / 255.0)
    normalised = (scaled - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(np.moveaxis(normalised, -1, -3), dtype=np.float32)


def to_input(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """RGB image -> normalised float32 array of shape (3, crop, crop)."""
    return normalise(to_pixels(image, spec), spec)
