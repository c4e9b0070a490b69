"""GET /metrics (Prometheus). Needs a JWT when auth is required, unless OI_CDS_METRICS_OPEN."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from services.cds_hooks import metrics
from services.cds_hooks.deps import SettingsDep, require_jwt

router = APIRouter(tags=["observability"])


@router.get("/metrics", summary="Prometheus metrics (no patient data)")
async def metrics_endpoint(request: Request, settings: SettingsDep) -> Response:
    if not settings.metrics_open:
        await require_jwt(request)
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
