"""The store layout settings: their names, defaults, ranges and contradictions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from engine.composition import Lookalike
from engine.settings import Settings

URL = {"qdrant_url": "http://qdrant:6333"}


def test_defaults_reach_the_store_config() -> None:
    config = Settings().store_config()
    assert (config.shards, config.replication, config.write_consistency) == (None, None, 1)
    assert (config.quantization, config.on_disk) == ("int8", True)
    assert (config.hnsw_m, config.hnsw_ef_construct, config.edge_shards) == (32, 256, 1)
    assert config.hnsw_ef is None  # unset: round one grows it with the collection


def test_the_variables_are_read_by_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "LOOKALIKE_QDRANT_URL": "http://qdrant:6333",
        "LOOKALIKE_QDRANT_SHARDS": "12",
        "LOOKALIKE_QDRANT_REPLICATION": "3",
        "LOOKALIKE_QDRANT_WRITE_CONSISTENCY": "2",
        "LOOKALIKE_QDRANT_QUANTIZATION": "off",
        "LOOKALIKE_QDRANT_ON_DISK": "false",
        "LOOKALIKE_HNSW_M": "48",
        "LOOKALIKE_HNSW_EF_CONSTRUCT": "400",
        "LOOKALIKE_HNSW_EF": "2048",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Settings().store_config()
    assert (config.shards, config.replication, config.write_consistency) == (12, 3, 2)
    assert (config.quantization, config.on_disk) == ("off", False)
    assert (config.hnsw_m, config.hnsw_ef_construct, config.hnsw_ef) == (48, 400, 2048)
    monkeypatch.delenv("LOOKALIKE_QDRANT_URL")
    monkeypatch.delenv("LOOKALIKE_QDRANT_SHARDS")
    monkeypatch.delenv("LOOKALIKE_QDRANT_REPLICATION")
    monkeypatch.delenv("LOOKALIKE_QDRANT_WRITE_CONSISTENCY")
    monkeypatch.setenv("LOOKALIKE_EDGE_SHARDS", "4")
    assert Settings().store_config().edge_shards == 4


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"qdrant_shards": 4}, "LOOKALIKE_QDRANT_SHARDS"),
        ({"qdrant_replication": 2}, "LOOKALIKE_QDRANT_REPLICATION"),
        ({**URL, "edge_shards": 3}, "LOOKALIKE_EDGE_SHARDS"),
        ({**URL, "qdrant_replication": 1, "qdrant_write_consistency": 2}, "WRITE_CONSISTENCY"),
        ({"hnsw_m": 64, "hnsw_ef_construct": 32}, "LOOKALIKE_HNSW_EF_CONSTRUCT"),
    ],
)
def test_contradictions_fail_at_start_up_naming_the_setting(
    values: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError, match=named):
        Settings(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "values",
    [
        {"qdrant_quantization": "binary"},  # not offered: non-negative vectors lose it all
        {"hnsw_m": 2},
        {"hnsw_ef_construct": 5000},
        {"hnsw_ef": 8},
        {"edge_shards": 0},
        {**URL, "qdrant_shards": 0},
        {**URL, "qdrant_write_consistency": 0},
    ],
)
def test_out_of_range_values_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**values)  # type: ignore[arg-type]


def test_another_edge_shard_count_stops_the_start_with_a_sentence(
    make_lookalike: Callable[..., Lookalike],
) -> None:
    from engine.errors import ConfigError

    first = make_lookalike(edge_shards=2)
    assert first.store.count() == 0
    first.close()
    again = make_lookalike()  # the default, one shard, on the same data directory
    with pytest.raises(ConfigError, match="LOOKALIKE_EDGE_SHARDS"):
        again.resources.store()
