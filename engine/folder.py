"""The image folder as the engine sees it: which files exist, their size and mtime, and
how a file's location is written in the store (its *key*)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".dib", ".tif", ".tiff"}
)


@dataclass(frozen=True)
class FileStat:
    size: int
    mtime_ns: int


class PathKeys:
    """Keys are POSIX paths relative to the library root for files inside it, so a library
    can move (or be mounted elsewhere in a container) without re-indexing; files outside
    the library are keyed by their absolute path."""

    def __init__(self, library_dir: Path) -> None:
        self.root = library_dir.resolve()

    def key(self, path: Path) -> str:
        absolute = path.resolve()
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return absolute.as_posix()

    def is_inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root)

    def path(self, key: str) -> Path:
        p = Path(key)
        return p if p.is_absolute() else self.root / p

    def scope(self, folder: Path) -> str:
        """The key prefix under which every file of ``folder`` lives ('' = whole library)."""
        k = self.key(folder)
        return "" if k == "." else k.rstrip("/") + "/"


def folder_of(key: str) -> str:
    parent = PurePosixPath(key).parent.as_posix()
    return "" if parent == "." else parent


def scan(folder: Path, keys: PathKeys) -> dict[str, FileStat]:
    """Every image file under ``folder`` (recursively, hidden entries skipped), by key.
    Only ``stat`` is called: no file is opened. A symlink is followed only to a file inside
    the library, or inside ``folder`` (one the CLI was asked to index): one leading
    elsewhere would embed an outside file and show its absolute path."""
    found: dict[str, FileStat] = {}
    roots = (keys.root, folder.resolve())
    for path in _walk(folder, roots):
        try:
            st = path.stat()
        except OSError:
            continue  # vanished between listing and stat: the next run will see it
        found[keys.key(path)] = FileStat(st.st_size, st.st_mtime_ns)
    return found


def _walk(folder: Path, roots: tuple[Path, ...]) -> Iterator[Path]:
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            elif (
                entry.is_file()
                and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES
                and (not entry.is_symlink() or _leads_into(Path(entry.path), roots))
            ):
                yield Path(entry.path)


def _leads_into(link: Path, roots: tuple[Path, ...]) -> bool:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop
        return False
    return any(target.is_relative_to(root) for root in roots)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
