"""Configuration of the vector store, built by ``engine.settings``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoreConfig:
    data_dir: Path
    url: str | None = None  # set -> ServerStore (qdrant-client); unset -> EdgeStore
    api_key: str | None = None
    collection: str = "lookalike"
