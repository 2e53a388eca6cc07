"""The shape of the code, checked: layers and forbidden imports (import-linter, the
contracts in pyproject.toml), no import cycles (grimp), and small modules.

``make lint`` runs the same two checks; these tests also prove that they fail when the
shape is broken, on a copy of the tree with one bad import added."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "cli", "engine", "embedder", "store", "migrations", "common")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 400


def _copy_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "scripts", tmp_path / "scripts")
    return tmp_path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _add_line(path: Path, line: str) -> None:
    text = path.read_text()
    # After the module docstring and `from __future__`, where an import may stand.
    anchor = "from __future__ import annotations\n"
    assert anchor in text, path
    path.write_text(text.replace(anchor, anchor + line + "\n", 1))


def test_the_tree_keeps_its_import_contracts() -> None:
    done = _run([str(LINT_IMPORTS), "--no-cache"], ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_tree_has_no_import_cycle() -> None:
    done = _run([sys.executable, "scripts/check_cycles.py"], ROOT)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("store/base.py", "import engine.search  # noqa: F401", "Layers"),
        (
            "engine/defaults.py",
            "import torch  # noqa: F401",
            "torch and OpenCV live only in embedder",
        ),
        ("cli/commands.py", "import api.app  # noqa: F401", "Layers"),
        ("engine/search.py", "import qdrant_client  # noqa: F401", "qdrant libraries"),
    ],
)
def test_a_broken_import_fails_the_contracts(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    tree = _copy_tree(tmp_path)
    _add_line(tree / module, line)
    done = _run([str(LINT_IMPORTS), "--no-cache"], tree)
    assert done.returncode != 0, done.stdout
    broken = [ln for ln in done.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(ln.startswith(contract) for ln in broken), done.stdout


def test_an_import_cycle_fails_the_cycle_check(tmp_path: Path) -> None:
    tree = _copy_tree(tmp_path)
    # engine.search imports engine.query; the reverse closes a ring.
    _add_line(tree / "engine/query.py", "import engine.search  # noqa: F401")
    done = _run([sys.executable, "scripts/check_cycles.py"], tree)
    assert done.returncode == 1
    assert "engine.query -> engine.search -> engine.query" in done.stderr


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for package in ("api", "engine", "store", "embedder")
        for path in (ROOT / package).rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}
