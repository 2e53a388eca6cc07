"""The CLI beside a running `lookalike serve` (issue 15): it goes through the server.

Uses the browser tests' server (a real `lookalike serve` subprocess, shared by the session)
so no second server starts; no browser is needed. The CLI runs as a user runs it, in a
subprocess with the server's environment.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from engine.local_server import credential_path, find

pytestmark = pytest.mark.browser

# Runs the CLI, then says on stderr whether torch (the models) was ever imported.
PROBE = (
    "import sys; from cli import main; code = main(sys.argv[1:]); "
    "print('torch imported:', 'torch' in sys.modules, file=sys.stderr); sys.exit(code)"
)


def _cli(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=server.env,
        cwd=server.library.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def query(server: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo in the library (indexed through the server by `lookalike index`) and a query."""
    import skimage.data

    folder = server.library / "cli"
    folder.mkdir(exist_ok=True)
    Image.fromarray(skimage.data.rocket()).save(folder / "rocket.png")
    Image.fromarray(skimage.data.astronaut()).save(folder / "astronaut.png")
    path = tmp_path_factory.mktemp("cli-query") / "rocket-query.jpg"
    Image.fromarray(np.asarray(skimage.data.rocket())[20:-20, 30:-30]).save(path, quality=85)
    return path


def test_the_cli_goes_through_the_server_and_says_so(server: Any, query: Path) -> None:
    published = find(server.data)
    assert published is not None and published.pid == server.pid
    assert credential_path(server.data).stat().st_mode & 0o777 == 0o600
    assert credential_path(server.data).parent.stat().st_mode & 0o777 == 0o700

    indexed = _cli(server, "index", str(server.library / "cli"), "--tags", "from-cli", "--json")
    assert indexed.returncode == 0, indexed.stderr
    lines = indexed.stderr.splitlines()
    assert lines[0] == (
        f"The Lookalike server at {published.url} (pid {server.pid}) holds the data "
        "directory: asking it."
    )
    report = json.loads(indexed.stdout)
    assert report["embedded"] + report["unchanged"] + report["attached"] == 2
    assert "torch imported: False" in indexed.stderr

    # `lookalike search` answers exactly what POST /api/v1/search answers.
    searched = _cli(server, "search", str(query), "--k", "5", "--json")
    assert searched.returncode == 0, searched.stderr
    assert "holds the data directory: asking it." in searched.stderr.splitlines()[0]
    assert "torch imported: False" in searched.stderr  # no model loaded in the CLI
    cli_hits = json.loads(searched.stdout)["hits"]
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {published.key}"}
    ) as http:
        api = http.post(
            "/api/v1/search", files={"image": (query.name, query.read_bytes())}, data={"k": "5"}
        ).json()
    assert [(h["id"], h["score"], h["scores"]) for h in cli_hits] == [
        (h["id"], h["score"], h["scores"]) for h in api["hits"]
    ]
    # The rocket, as this test indexed it or as another test uploaded it, comes first.
    assert Path(cli_hits[0]["path"]).stem == "rocket", cli_hits[0]
    assert all(Path(h["path"]).is_relative_to(server.library) for h in cli_hits)

    # Two images as one query, a liked hit and a contact sheet, through the server too.
    sheet = server.data.parent / "combined.png"
    liked = cli_hits[-1]["id"]
    combined = _cli(
        server, "search", str(query), "--image-id", cli_hits[1]["id"], "--combine", "any",
        "--like", liked, "--k", "5", "--json", "--sheet", str(sheet),
    )  # fmt: skip
    assert combined.returncode == 0, combined.stderr
    hits = json.loads(combined.stdout)["hits"]
    assert {h["matched_query"] for h in hits} <= {0, 1} and liked in [h["id"] for h in hits]
    assert sheet.read_bytes().startswith(b"\x89PNG")

    # `lookalike status` answers in under 2 s of the CLI's own time (CPU: the figure that
    # does not depend on how busy the machine is), and loads nothing heavy.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    status = _cli(server, "status", "--json")
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["points"] >= 2
    assert cpu < 2.0, f"lookalike status took {cpu:.2f} s of CPU ({wall:.2f} s wall)"
    print(f"lookalike status beside the server: {cpu:.2f} s CPU, {wall:.2f} s wall")


def test_cli_failures_are_one_plain_line(server: Any, tmp_path: Path) -> None:
    missing = _cli(server, "search", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2
    assert missing.stderr.splitlines()[0] == (
        f"error: Cannot read {tmp_path / 'nope.jpg'}: No such file or directory."
    )
    outside = _cli(server, "index", str(tmp_path))
    assert outside.returncode == 2
    error_lines = [line for line in outside.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "outside it" in error_lines[0]
    assert "Traceback" not in missing.stderr + outside.stderr
