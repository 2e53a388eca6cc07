"""Deterministic edits of a photo, shared by tests and benchmarks."""

from __future__ import annotations

import io

from PIL import Image, ImageEnhance, ImageOps


def crop_keep(img: Image.Image, fraction: float, anchor: str = "center") -> Image.Image:
    """Crop keeping ``fraction`` of the area, at the centre or a corner ('tl', 'br')."""
    scale = fraction**0.5
    w, h = img.size
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    x = {"center": (w - cw) // 2, "tl": 0, "br": w - cw}[anchor]
    y = {"center": (h - ch) // 2, "tl": 0, "br": h - ch}[anchor]
    return img.crop((x, y, x + cw, y + ch))


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def resize(img: Image.Image, factor: float) -> Image.Image:
    w, h = img.size
    return img.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.BICUBIC)


def colour_shift(img: Image.Image, saturation: float = 1.3, brightness: float = 1.1) -> Image.Image:
    img = ImageEnhance.Color(img.convert("RGB")).enhance(saturation)
    return ImageEnhance.Brightness(img).enhance(brightness)


def mirror(img: Image.Image) -> Image.Image:
    return ImageOps.mirror(img)


STANDARD_EDITS = {
    "crop70": lambda im: crop_keep(im, 0.7),
    "small": lambda im: resize(im, 0.5),
    "jpeg30": lambda im: jpeg(im, 30),
    "colour": colour_shift,
}
