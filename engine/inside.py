""" "Look inside": find a library image inside a bigger picture (a catalogue page, a
screenshot, a shop photo holding one of our designs at a third of its width).

An embedding of the whole picture is mostly about everything else in it, so the design may
rank too low to reach verification. Inside search also embeds five windows of the picture,
each half its width and height: the four quarters and the centre (the whole picture is the
other scale), and searches each. Windows only bring candidates: the best 50 not already
checked are verified against the whole picture's local features, which find the copy
wherever it sits, and a window's candidate moves up only once verified; otherwise the whole
picture's order stands (ranking by window scores let unprovable look-alikes of a window
push true hits down: bench/RESULTS_copy_detection.md).

Why five: on the copy bench's pasted family (60 sources pasted at 30-60 % of the width,
5,060 points), these five found as many copies as 13 windows at two scales (mAP 0.992 each;
the four quarters alone 0.975, one 3/4 window per corner added to them 0.975) at 249 ms a
query instead of 430 (2 cores, with the EfficientNet-Lite0 windows in bf16;
bench/inside_windows.py).

It costs five more embeddings and up to 50 more verifications, so by default
(``LOOKALIKE_INSIDE=auto``) it runs unless a proven copy is the whole picture
(``Verification.is_whole_copy``: its layout matches the query's), for pictures at least
``AUTO_MIN_SIDE`` on each side (a design at a third of its width then still has ~85 px).
"Nothing proven" alone is not enough: a catalogue page whose background, or one of whose
designs, is in the library proves that copy, and the design beside it would be missed
(measured: the copy bench's pasted family, 0.74 instead of 1.0). Auto also stands back while
another picture search runs in the process: at 100k points with three models, 8 clients
whose queries all looked inside got 0.5 searches/s (bench/e2e_search.py), so under
concurrent load a search answers from the whole picture. ``on`` always looks inside
a picture query (under 128 px: 400), ``off`` never; a query's own ``inside`` (the API's
field, ``--inside`` in the CLI, "Look inside" in the page) overrides the setting.
"""

from __future__ import annotations

from engine.errors import BadInput

AUTO, ON, OFF = "auto", "on", "off"
MODES = (AUTO, ON, OFF)
# Each window as (left, top) and side, in shares of the picture's width and height.
WINDOWS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (0.5, 0.5), (0.25, 0.25))
SIDE = 0.5
MIN_SIDE = 128  # a picture smaller than this has no inside worth searching
AUTO_MIN_SIDE = 256  # auto looks inside pictures at least this large on each side

Box = tuple[int, int, int, int]  # x, y, width, height


def check_size(width: int, height: int) -> None:
    if min(width, height) < MIN_SIDE:
        raise BadInput(
            f"'Look inside' needs a picture at least {MIN_SIDE} pixels on each side; this one "
            f"is {width}x{height}. Search it as a whole instead."
        )


def windows(width: int, height: int) -> list[Box]:
    """The windows of a ``width`` x ``height`` picture: its four quarters and its centre."""
    check_size(width, height)
    w, h = round(width * SIDE), round(height * SIDE)
    # A start of (1 - SIDE) is the far edge exactly, whatever the rounding of w and h.
    return [
        (round(fx / (1 - SIDE) * (width - w)), round(fy / (1 - SIDE) * (height - h)), w, h)
        for fx, fy in WINDOWS
    ]


def worth_looking(width: int, height: int) -> bool:
    """Whether ``auto`` looks inside a picture of this size."""
    return min(width, height) >= AUTO_MIN_SIDE


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"'Look inside' is one of {', '.join(MODES)}, not {mode!r}")
    return mode
