"""The windows 'look inside' searches (engine.inside)."""

from __future__ import annotations

import pytest

from engine.errors import BadInput
from engine.inside import check_mode, windows, worth_looking


@pytest.mark.parametrize("size", [(1000, 800), (128, 128), (1001, 333), (4000, 3000)])
def test_windows_are_the_quarters_and_the_centre_inside_the_picture(
    size: tuple[int, int],
) -> None:
    width, height = size
    boxes = windows(width, height)
    assert len(boxes) == 5
    for x, y, w, h in boxes:
        assert min(x, y) >= 0 and x + w <= width and y + h <= height
        assert abs(w - width / 2) <= 1 and abs(h - height / 2) <= 1
    corners = {(x, y) for x, y, _, _ in boxes[:4]}
    w, h = boxes[0][2], boxes[0][3]
    assert corners == {(0, 0), (width - w, 0), (0, height - h), (width - w, height - h)}
    cx, cy, _, _ = boxes[4]
    assert abs(cx + w / 2 - width / 2) <= 1 and abs(cy + h / 2 - height / 2) <= 1


def test_windows_cover_the_whole_picture() -> None:
    width, height = 640, 480
    covered = [[False] * width for _ in range(height)]
    for x, y, w, h in windows(width, height):
        for row in range(y, y + h):
            covered[row][x : x + w] = [True] * w
    assert all(all(row) for row in covered)


def test_a_picture_under_128_px_a_side_cannot_be_looked_inside() -> None:
    with pytest.raises(BadInput, match="at least 128 pixels"):
        windows(500, 127)


def test_auto_looks_inside_pictures_of_256_px_a_side_or_more() -> None:
    assert worth_looking(256, 256)
    assert not worth_looking(1000, 255)


def test_an_unknown_mode_is_refused_by_name() -> None:
    assert check_mode("auto") == "auto"
    with pytest.raises(ValueError, match="'sometimes'"):
        check_mode("sometimes")
