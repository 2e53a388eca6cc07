"""Operational routes: liveness, readiness (public, for probes) and Prometheus metrics."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from litestar import Controller, MediaType, Request, Response, get

from api.auth import PUBLIC_OPT, key_principal
from api.errors import ERROR_RESPONSES
from api.routes.deps import ServicesDep
from api.schemas import Health, Readiness, SearchModeInfo
from engine.errors import STORE_DOWN, STORE_DOWN_NO_MIRROR

PUBLIC_FAILURE = (
    "Lookalike could not start. The server log has the reason, and so does /ready for a "
    "caller with an API key."
)


class OpsController(Controller):
    tags = ("operations",)

    # security=[{}]: the document says these need no credentials, as the probes send none.
    @get("/health", operation_id="health", opt={PUBLIC_OPT: True}, skip_session=True, security=[{}])
    async def health(self) -> Health:
        """Liveness: the process answers. Says nothing about the store or the models."""
        return Health()

    @get("/ready", operation_id="ready", opt={PUBLIC_OPT: True}, skip_session=True, security=[{}])
    async def ready(
        self, request: Request[Any, Any, Any], services: ServicesDep
    ) -> Response[Readiness]:
        """Readiness: 200 once store, models and mirror are up, else 503 saying what is missing.
        Once ready, ``search_mode`` says who serves searches and why. While a store server
        is unreachable it stays 200 with ``degraded: true`` (with a mirror, searches are
        answered from it). Why a start-up failed is told only to a caller with
        an API key: the reason may name hosts, paths or versions."""
        ok = services.ready
        detail = None
        if not ok:
            detail = services.not_ready_detail()
            if services.failure and key_principal(request) is None:
                detail = PUBLIC_FAILURE
        body = Readiness(
            status=200 if ok else 503,
            ready=ok,
            checks=dict(services.checks),
            error=None if ok else "not_ready",
            detail=detail,
        )
        if ok and services.lookalike is not None:
            serving = await anyio.to_thread.run_sync(services.lookalike.search_mode.current)
            body.search_mode = msgspec.convert(serving.as_dict(), SearchModeInfo)
            if not await services.store_reachable():
                detail = STORE_DOWN if serving.mode == "mirror" else STORE_DOWN_NO_MIRROR
                body.degraded, body.error, body.detail = True, "store_unavailable", detail
        return Response(body, status_code=body.status)

    @get(
        "/metrics",
        operation_id="metrics",
        responses=ERROR_RESPONSES,
        media_type=MediaType.TEXT,
        include_in_schema=True,
    )
    async def metrics(self, services: ServicesDep) -> Response[bytes]:
        """Prometheus text format: request latency per route, search stage timings, index
        size and mirror lag. Needs a login or an API key, like everything but the probes."""
        body = await anyio.to_thread.run_sync(services.metrics.render, limiter=services.limiter)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
