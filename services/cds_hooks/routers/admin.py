"""What a CDS committee reviews: feedback counts, analytics and the shadow report (no patient data)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from services.cds_hooks import pages, reports
from services.cds_hooks.deps import StoreDep
from services.cds_hooks.errors import BadRequest, Msg
from services.cds_hooks.events import EventSink
from services.cds_hooks.routers.services import json_response
from services.cds_hooks.store import FeedbackStore, parse_timestamp

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


def _since(since: str | None) -> date | None:
    if not since:
        return None
    try:
        return date.fromisoformat(since[:10])
    except ValueError as exc:
        raise BadRequest(f"since={since!r} is not a date", msg=Msg.INVALID_QUERY) from exc


async def _analytics(request: Request, store: FeedbackStore, since: str | None) -> dict[str, Any]:
    events: EventSink = request.app.state.events
    await events.aflush()  # this worker's counts are written first: the page is current
    return await run_in_threadpool(reports.analytics, store.engine, _since(since))


@router.get(
    "/admin/analytics.json", summary="Cards shown, accepted and overridden, per recommendation and week"
)
async def analytics_json(request: Request, store: StoreDep, since: str | None = None) -> Response:
    return json_response(await _analytics(request, store, since))


@router.get(
    "/admin/analytics.csv", summary="The analytics as CSV (one row per week, service and recommendation)"
)
async def analytics_csv(request: Request, store: StoreDep, since: str | None = None) -> Response:
    data = await _analytics(request, store, since)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["week", "service", "recommendation", "shown", "accepted", "overridden", "override_reasons"]
    )
    for r in data["rows"]:
        reasons = "; ".join(f"{k}: {v}" for k, v in sorted(r["overrideReasons"].items()))
        writer.writerow(
            [
                r["week"],
                r["service"],
                r["recommendation"],
                r["shown"],
                r["accepted"],
                r["overridden"],
                reasons,
            ]
        )
    return Response(
        out.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="oi-cds-analytics.csv"'},
    )


@router.get(
    "/admin/analytics", response_class=HTMLResponse, summary="Feedback analytics for the CDS committee"
)
async def analytics_page(request: Request, store: StoreDep, since: str | None = None) -> HTMLResponse:
    return HTMLResponse(pages.analytics(await _analytics(request, store, since)))


async def _shadow(request: Request, store: FeedbackStore) -> dict[str, Any]:
    events: EventSink = request.app.state.events
    await events.aflush()
    report = await run_in_threadpool(reports.shadow_report, store.engine)
    report["mode"] = request.app.state.settings.mode
    return report


@router.get("/admin/shadow.json", summary="Shadow mode: what would have fired, per rule and week")
async def shadow_json(request: Request, store: StoreDep) -> Response:
    return json_response(await _shadow(request, store))


@router.get("/admin/shadow", response_class=HTMLResponse, summary="Shadow mode's go-live report")
async def shadow_page(request: Request, store: StoreDep) -> HTMLResponse:
    return HTMLResponse(pages.shadow(await _shadow(request, store)))
