"""Configuration of the vector store, built by ``engine.settings``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StoreConfig:
    data_dir: Path
    url: str | None = None  # set -> ServerStore (qdrant-client); unset -> EdgeStore
    api_key: str | None = field(default=None, repr=False)  # a secret: kept out of reprs
    collection: str = "lookalike"
