"""`lookalike reconcile` tells a person what it did; `--json` gives the report to scripts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from cli import main


def test_reconcile_reports_in_words_and_in_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "DATA_DIR": tmp_path / "data",
        "LIBRARY_DIR": tmp_path / "library",
        "CLIP_WEIGHTS": "off",
        "CNN": "off",  # the colour histogram alone: no model to load
    }.items():
        monkeypatch.setenv(f"LOOKALIKE_{name}", str(value))
    (tmp_path / "library").mkdir()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "library" / "red.png")

    assert main(["reconcile"]) == 0
    out = capsys.readouterr()
    assert out.out == ""  # words go to stderr, as every other command's summary
    assert "1 file: 0 unchanged, 1 embedded" in out.err
    assert "In sync: " in out.err and "mirror rows changed" in out.err

    assert main(["reconcile", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["index"]["unchanged"] == 1 and report["index"]["embedded"] == 0
