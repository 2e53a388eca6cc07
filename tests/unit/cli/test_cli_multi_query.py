"""``lookalike search IMG1 IMG2 --combine``, ``--image-id``, ``--like`` and ``--sheet`` on a
small library (direct: no server; HSV only, so no torch)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli import main


def _picture(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((64, 48))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, value in {
        "DATA_DIR": tmp_path / "data",
        "LIBRARY_DIR": tmp_path / "library",
        "CLIP_WEIGHTS": "off",
        "CNN": "off",
    }.items():
        monkeypatch.setenv(f"LOOKALIKE_{name}", str(value))
    (tmp_path / "library").mkdir()
    for i in range(5):
        (tmp_path / "library" / f"p{i}.png").write_bytes(_picture(i))
    assert main(["index"]) == 0
    return tmp_path / "library"


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_several_images_combined_liked_and_sheet(
    library: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    a, b = str(library / "p0.png"), str(library / "p3.png")
    capsys.readouterr()
    assert main(["search", a, b, "--k", "5", "--json"]) == 0  # one search per image
    assert len(_lines(capsys)) == 2
    sheet = tmp_path / "sheet.pdf"
    assert main(["search", a, b, "--combine", "any", "--json", "--sheet", str(sheet)]) == 0
    (combined,) = _lines(capsys)
    by_path = {Path(h["path"]).name: h for h in combined["hits"]}
    assert by_path["p0.png"]["matched_query"] == 0 and by_path["p3.png"]["matched_query"] == 1
    assert sheet.read_bytes().startswith(b"%PDF")

    first, *_, last = combined["hits"]
    assert main(["search", "--image-id", first["id"], "--k", "5", "--json"]) == 0
    (plain,) = _lines(capsys)
    ranks = [h["id"] for h in plain["hits"]]
    assert main(["search", "--image-id", first["id"], "--like", last["id"], "--json"]) == 0
    (liked,) = _lines(capsys)
    assert [h["id"] for h in liked["hits"]].index(last["id"]) <= ranks.index(last["id"])
    k = str(len(ranks) - 1)
    assert (
        main(["search", "--image-id", first["id"], "--k", k, "--exclude", ranks[0], "--json"]) == 0
    )
    (left_out,) = _lines(capsys)
    assert [h["id"] for h in left_out["hits"]] == ranks[1:]  # still k hits, without it

    many = [str(p) for p in sorted(library.iterdir())] * 2
    assert main(["search", *many, "--combine", "all"]) == 2  # 10 images: over the limit
    assert "8" in capsys.readouterr().err
