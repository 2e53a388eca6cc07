"""common.atomic: the one atomic file write every layer uses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from common.atomic import atomic_write


def test_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_writer_function_streams_into_the_file(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    atomic_write(target, lambda fh: [fh.write(bytes([i]) * 1000) for i in range(3)])
    assert target.read_bytes() == b"\x00" * 1000 + b"\x01" * 1000 + b"\x02" * 1000


def test_a_failing_writer_keeps_the_old_file_and_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def boom(fh: object) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_mode_is_set_before_the_content_lands(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    atomic_write(target, b"hunter2", mode=0o600)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_prefix_names_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "x.jpg"
    seen: list[str] = []
    atomic_write(target, lambda fh: seen.extend(p.name for p in tmp_path.iterdir()), prefix=".up-")
    assert len(seen) == 1 and seen[0].startswith(".up-")
