"""The library scan: symlinks are followed only where they stay inside."""

from __future__ import annotations

from pathlib import Path

from engine.folder import PathKeys, scan


def test_a_symlink_leading_out_of_the_library_is_not_followed(tmp_path: Path) -> None:
    library, outside = tmp_path / "library", tmp_path / "outside"
    (library / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"outside")
    (library / "own.png").write_bytes(b"inside")
    (library / "leak.png").symlink_to(outside / "secret.png")
    (library / "sub" / "alias.png").symlink_to(library / "own.png")
    (library / "dangling.png").symlink_to(tmp_path / "gone.png")
    (library / "outdir").symlink_to(outside, target_is_directory=True)
    found = scan(library, PathKeys(library))
    assert set(found) == {"own.png"}  # the inside alias is the same file, under its own key
    assert not any(key.startswith("/") for key in found)


def test_an_outside_folder_indexed_on_purpose_keeps_its_own_links(tmp_path: Path) -> None:
    library, folder = tmp_path / "library", tmp_path / "elsewhere"
    library.mkdir()
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.png").write_bytes(b"x")
    (folder / "link.png").symlink_to(folder / "a" / "x.png")
    (tmp_path / "other.png").write_bytes(b"o")
    (folder / "out.png").symlink_to(tmp_path / "other.png")
    found = scan(folder, PathKeys(library))
    assert set(found) == {str((folder / "a" / "x.png").resolve())}
