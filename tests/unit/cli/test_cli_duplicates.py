"""`lookalike duplicates`: --csv, --all and --apply (asks; --yes skips), in direct mode."""

from __future__ import annotations

import csv
import io
import json
from contextlib import closing
from pathlib import Path

import pytest

from cli import main
from engine.composition import Lookalike
from engine.settings import Settings
from tests.unit.engine.conftest import HSV_ONLY, picture, save


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    lib = tmp_path / "library"
    save(picture(1), lib / "a.png")
    save(picture(1), lib / "a.bmp")  # the same pixels: an exact copy, two points
    save(picture(2), lib / "-b" / "b.png")  # the same bytes at two paths: one point
    save(picture(2), lib / "b.png")
    monkeypatch.setenv("LOOKALIKE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOOKALIKE_LIBRARY_DIR", str(lib))
    monkeypatch.setenv("LOOKALIKE_CLIP_WEIGHTS", "off")
    monkeypatch.setenv("LOOKALIKE_CNN", "off")
    assert main(["index"]) == 0
    return Settings(data_dir=tmp_path / "data", library_dir=lib, **HSV_ONLY)


def test_csv_all_and_apply(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["duplicates", "--csv", "-"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0][:5] == ["group", "kind", "score", "paths", "decision"]
    assert any(r[3].startswith("'-b/b.png") for r in rows)  # escaped against CSV injection

    with closing(Lookalike(env)) as lk:  # a person keeps a.png (as the web UI would)
        group = next(g for g in lk.duplicate_review.report().groups if len(g.ids) == 2)
        kept = next(m.id for m in group.group.members if m.paths == ["a.png"])
        lk.duplicate_review.decide(group.ids, "not_duplicates")
    assert main(["duplicates", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["groups"]) == 1  # dismissed: hidden
    assert main(["duplicates", "--json", "--all"]) == 0
    assert len(json.loads(capsys.readouterr().out)["groups"]) == 2

    with closing(Lookalike(env)) as lk:
        lk.duplicate_review.decide(group.ids, "keep_one", kept)
    assert main(["duplicates", "--apply"]) == 2  # no terminal to ask: one plain line
    err = capsys.readouterr().err
    assert "error: This would delete 1 image(s) in 1 group(s); pass --yes" in err
    assert (env.library_dir / "a.bmp").exists()
    assert main(["duplicates", "--apply", "--yes", "--json"]) == 0
    deleted = json.loads(capsys.readouterr().out)["deleted"]
    assert [d["paths"] for d in deleted] == [["a.bmp"]]
    assert not (env.library_dir / "a.bmp").exists() and (env.library_dir / "a.png").exists()
