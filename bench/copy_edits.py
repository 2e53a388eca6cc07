"""The eight edit families of issue 18 (copy detection you can prove), for bench/copy_detection.py.

Each family makes one query from a source photo, deterministic given its generator (seeded
per (source, family) by ``bench.quality_edits.edit_rng``). Families with several kinds of
edit (geometry, colour) pick one kind per source, so a family's mAP spreads over them:

- ``crop25``: keep 25 % of the area, anywhere;
- ``geometry``: rotation (8-20 degrees), perspective, or a mirror image with a small rotation;
- ``colour``: hue shift, greyscale or posterize (2-3 bits per channel);
- ``overlay``: a translucent coloured wash, a banner top and bottom with captions, a logo;
- ``screenshot``: the photo inside a UI-like frame (title bar, side panel of text, status bar);
- ``pasted``: the photo at 30-60 % of the width pasted into another picture (a background
  given by the bench: a held-out photo or a distractor, never a source);
- ``thumb64``: a 64 px (longer side) thumbnail, blurred, saved at JPEG 75;
- ``jpeg25``: JPEG at quality 25.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from bench.quality_edits import crop_at, greyscale, hue_shift, overlay, perspective, rotate
from tests.edits import jpeg

Family = Callable[[Image.Image, np.random.Generator], Image.Image]

THUMB_SIDE = 64
WORDS = ("lorem", "ipsum", "dolor", "sit", "amet")
CAPTIONS = ("SUMMER SALE -40%", "© STUDIO NORTH", "DRAFT v2", "NOT FOR RESALE", "NEW IN")


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(10, size))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in rng.integers(0, 256, 3))
    return r, g, b


def geometry(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One of: a rotation, a perspective view, a mirror image rotated 2-5 degrees."""
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return rotate(img, rng)
    if kind == 1:
        return perspective(img, rng, strength=0.15)
    return rotate(ImageOps.mirror(img), rng, 2, 5)


def posterize(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.posterize(img.convert("RGB"), int(rng.integers(2, 4)))


def colour(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One of: a hue shift with more saturation, greyscale, posterize."""
    kind = int(rng.integers(0, 3))
    return (hue_shift, greyscale, posterize)[kind](img, rng)


def heavy_overlay(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A translucent coloured wash (35-50 %), then banners top and bottom with captions and
    the caption-and-logo overlay of bench.quality_edits."""
    base = img.convert("RGB")
    wash = Image.new("RGB", base.size, _colour(rng))
    out = Image.blend(base, wash, float(rng.uniform(0.35, 0.5)))
    draw = ImageDraw.Draw(out)
    w, h = out.size
    band = max(12, h // 8)
    font = _font(band * 2 // 3)
    for top in (0, h - band):
        draw.rectangle((0, top, w, top + band), fill=_colour(rng))
        text = CAPTIONS[int(rng.integers(0, len(CAPTIONS)))]
        draw.text((w // 25, top + band // 6), text, fill=(255, 255, 255), font=font)
    return overlay(out, rng)


def screenshot(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The photo shown in an app window: title bar, tool bar, a side panel of text lines,
    a status bar; the photo fills 55-75 % of the window's width."""
    photo = img.convert("RGB")
    share = float(rng.uniform(0.55, 0.75))
    width = 1280
    pw = round(width * share)
    ph = max(1, round(photo.height * pw / photo.width))
    photo = photo.resize((pw, ph), Image.Resampling.BICUBIC)
    title, tools, status = 36, 44, 28
    height = title + tools + ph + 40 + status
    dark = bool(rng.random() < 0.5)
    bg = (30, 31, 34) if dark else (245, 245, 247)
    fg = (220, 220, 220) if dark else (40, 40, 40)
    out = Image.new("RGB", (width, height), bg)
    draw = ImageDraw.Draw(out)
    font = _font(16)
    accent = _colour(rng)
    draw.rectangle((0, 0, width, title), fill=accent)
    draw.text((14, 9), "Lookbook – Photos", fill=(255, 255, 255), font=font)
    for i, x in enumerate(range(width - 90, width, 30)):
        draw.ellipse((x, 10, x + 16, 26), fill=((255, 95, 86), (255, 189, 46), (39, 201, 63))[i])
    draw.rectangle((0, title, width, title + tools), fill=tuple(max(0, c - 12) for c in bg))
    for i, label in enumerate(("File", "Edit", "View", "Share", "Export")):
        draw.text((14 + 80 * i, title + 13), label, fill=fg, font=font)
    panel_x = 20 + pw + 20
    out.paste(photo, (20, title + tools + 20))
    for row in range(title + tools + 24, height - status - 20, 26):
        n = int(rng.integers(6, 22))
        words = " ".join(WORDS[: 1 + n % 5])
        draw.text((panel_x, row), f"{words} {n * 37}", fill=fg, font=font)
    draw.rectangle((0, height - status, width, height), fill=accent)
    draw.text(
        (14, height - status + 6), f"{pw} x {ph} px  ·  100 %", fill=(255, 255, 255), font=font
    )
    return out


def background_index(rng: np.random.Generator, n: int) -> int:
    """Which of ``n`` backgrounds a pasted query uses: the first draw of its generator, so
    the bench can tell, from the seed alone, which library picture the query also holds."""
    return int(rng.integers(0, n))


def pasted_into(backgrounds: Sequence[Image.Image]) -> Family:
    """A family that pastes the photo, at 30-60 % of the width, into one of ``backgrounds``
    (chosen per query), at a random position."""
    if not backgrounds:
        raise ValueError("pasted_into needs at least one background picture")

    def paste(img: Image.Image, rng: np.random.Generator) -> Image.Image:
        back = backgrounds[background_index(rng, len(backgrounds))].convert("RGB").copy()
        if max(back.size) > 1280:
            back.thumbnail((1280, 1280), Image.Resampling.BICUBIC)
        share = float(rng.uniform(0.3, 0.6))
        pw = max(1, round(back.width * share))
        ph = max(1, round(img.height * pw / img.width))
        if ph > back.height * 0.9:  # a tall photo in a wide picture: fit the height instead
            ph = round(back.height * 0.9)
            pw = max(1, round(img.width * ph / img.height))
        photo = img.convert("RGB").resize((pw, ph), Image.Resampling.BICUBIC)
        x = int(rng.integers(0, back.width - pw + 1))
        y = int(rng.integers(0, back.height - ph + 1))
        back.paste(photo, (x, y))
        return back

    return paste


def thumb64(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    small = img.convert("RGB")
    small.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BICUBIC)
    small = small.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.0))))
    return jpeg(small, 75)


def families(backgrounds: Sequence[Image.Image]) -> dict[str, Family]:
    """Name -> family, in the order of the issue."""
    return {
        "crop25": lambda im, rng: crop_at(im, 0.25, rng),
        "geometry": geometry,
        "colour": colour,
        "overlay": heavy_overlay,
        "screenshot": screenshot,
        "pasted": pasted_into(backgrounds),
        "thumb64": thumb64,
        "jpeg25": lambda im, rng: jpeg(im, 25),
    }
