"""Prometheus metrics.

Request latency per route comes from Litestar's ``PrometheusMiddleware`` (grouped by path
template, so ids in URLs do not explode the label set). It keeps its metrics in
prometheus_client's process-wide registry; what this app adds lives in a registry of its own
(``AppMetrics``), so several apps in one process (tests) never register a name twice:
search stage timings, and index size and mirror lag read from the engine at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


def prometheus_config() -> PrometheusConfig:
    return PrometheusConfig(
        app_name="lookalike",
        prefix="lookalike_http",
        group_path=True,
        exclude=["^/static/", "^/health$", "^/ready$", "^/metrics$"],
    )


class _EngineCollector(Collector):
    """Reads index size and mirror lag when Prometheus scrapes, not on every request."""

    def __init__(self, read: Callable[[], dict[str, Any] | None]) -> None:
        self._read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            status = self._read()
        except Exception as exc:  # a scrape must not fail because the store is down
            log.warning("metrics: cannot read engine status: %s", exc)
            status = None
        ready = GaugeMetricFamily("lookalike_ready", "1 when store, mirror and models are ready")
        ready.add_metric([], 1.0 if status is not None else 0.0)
        yield ready
        if status is None:
            return
        yield GaugeMetricFamily(
            "lookalike_index_points", "Images (distinct contents) in the store", status["points"]
        )
        yield GaugeMetricFamily(
            "lookalike_search_by_qdrant",
            "1 when Qdrant serves searches (LOOKALIKE_SEARCH), 0 when the FAISS mirror does",
            1.0 if status["search_mode"]["mode"] == "qdrant" else 0.0,
        )
        if status["mirror"] is None:  # no mirror in this process
            return
        yield GaugeMetricFamily(
            "lookalike_mirror_points", "Images in the FAISS mirror", status["mirror"]["points"]
        )
        yield GaugeMetricFamily(
            "lookalike_mirror_lag",
            "Store writes the FAISS mirror has not caught up with yet",
            status["mirror_lag"],
        )


class AppMetrics:
    def __init__(self, read_status: Callable[[], dict[str, Any] | None]) -> None:
        self.registry = CollectorRegistry()
        self.search_stage = Histogram(
            "lookalike_search_stage_seconds",
            "Time spent in each search stage (decode, embed, search)",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(read_status))

    def observe_search(self, timings: dict[str, float]) -> None:
        for name, ms in timings.items():
            self.search_stage.labels(name.removesuffix("_ms")).observe(ms / 1000.0)

    def render(self) -> bytes:
        """Prometheus text format (blocking: the engine collector reads the store)."""
        return generate_latest(REGISTRY) + generate_latest(self.registry)
