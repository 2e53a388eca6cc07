""" "Look inside": find a library image inside a bigger picture (a catalogue page, a
screenshot, a shop photo holding one of our designs at a third of its width).

An embedding of the whole picture is mostly about everything else in it, so the design may
rank too low to reach verification. Inside search also embeds overlapping windows of the
picture at two scales (half and three quarters of each side, a quarter apart: 9 + 4
windows) and ranks each library image by its best window, or the whole picture's score if
that is higher (combined by max). Verification then checks the candidates against the whole
picture's local features, which find the copy wherever it sits.

It costs one embedding per window (14 in all), so it is an option (``inside`` in the API,
``--inside`` in the CLI, "Look inside" in the page), not the default.
"""

from __future__ import annotations

from engine.errors import BadInput

SCALES = (0.5, 0.75)  # window side, as a share of the picture's side
STEP = 0.25  # windows start this share of the side apart
MIN_SIDE = 128  # a picture smaller than this has no inside worth searching

Box = tuple[int, int, int, int]  # x, y, width, height


def check_size(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise BadInput(
            f"'Look inside' needs a picture at least {MIN_SIDE} pixels on each side; this one "
            f"is {width}x{height}. Search it as a whole instead."
        )


def windows(width: int, height: int) -> list[Box]:
    """The overlapping windows of a ``width`` x ``height`` picture, largest first."""
    check_size(width, height)
    out: list[Box] = []
    for scale in sorted(SCALES, reverse=True):
        w, h = max(1, round(width * scale)), max(1, round(height * scale))
        fractions = [i * STEP for i in range(round((1 - scale) / STEP) + 1)]
        for fy in fractions:
            for fx in fractions:
                x, y = min(round(fx * width), width - w), min(round(fy * height), height - h)
                out.append((x, y, w, h))
    return out
