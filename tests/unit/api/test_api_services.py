"""Readiness: engine routes answer 503 with a reason until warm-up is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.errors import NotReady
from api.services import Services
from engine.settings import Settings


def test_not_ready_until_warm_up_ends(tmp_path: Path) -> None:
    services = Services(Settings(data_dir=tmp_path / "data", library_dir=tmp_path))
    assert not services.ready
    with pytest.raises(NotReady, match="waiting for store, models, mirror"):
        services.ready_lookalike()
    services.checks["store"] = True
    assert "waiting for models, mirror" in services.not_ready_detail()
    services.failure = "Qdrant cannot be reached at http://q:6333."
    assert services.not_ready_detail() == services.failure
