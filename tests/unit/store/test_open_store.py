"""open_store picks the backend from the settings, importing only what it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from store import StoreConfig, StoreUnavailable, open_store

REPO = Path(__file__).resolve().parents[3]


def test_edge_by_default_server_with_a_url_or_a_client(tmp_path: Path) -> None:
    with open_store(StoreConfig(data_dir=tmp_path)) as edge:
        assert edge.backend == "edge"
    with open_store(StoreConfig(data_dir=tmp_path), client=QdrantClient(":memory:")) as server:
        assert server.backend == "server"
    with pytest.raises(StoreUnavailable, match="LOOKALIKE_QDRANT_URL"):
        open_store(StoreConfig(data_dir=tmp_path, url="http://127.0.0.1:1"))


def test_importing_the_package_loads_no_qdrant_library() -> None:
    probe = "import sys, store; print(sorted(m for m in sys.modules if m.startswith('qdrant')))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
