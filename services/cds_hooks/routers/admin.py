"""What a CDS committee reviews: feedback counts (no patient data)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response

from services.cds_hooks.deps import StoreDep
from services.cds_hooks.errors import BadRequest, Msg
from services.cds_hooks.routers.services import json_response
from services.cds_hooks.store import parse_timestamp

router = APIRouter(tags=["admin"])


@router.get(
    "/admin/feedback", summary="Feedback counts by service, recommendation, outcome and override reason"
)
async def feedback_summary(store: StoreDep, since: str | None = None) -> Response:
    start: datetime | None = None
    if since:
        try:
            start = parse_timestamp(since if "T" in since else since + "T00:00:00Z")
        except ValueError as exc:
            raise BadRequest(
                f"since={since!r} is not a date or RFC 3339 date-time", msg=Msg.INVALID_QUERY
            ) from exc
    groups = await store.summary(start)
    body: dict[str, object] = {"total": sum(int(g["count"]) for g in groups), "groups": groups}
    if start is not None:
        body["since"] = start.isoformat()
    return json_response(body)
