"""The rule book at /knowledge (auth as /fhir, or open with OI_CDS_KNOWLEDGE_OPEN) and the
cards' source icon (always open: it is what an EHR shows beside every card)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from services import rulebook as book
from services.cds_hooks.deps import KnowledgeDep, SettingsDep

router = APIRouter(tags=["Knowledge"])
public = APIRouter(tags=["Knowledge"])
ICON = Path(__file__).parent.parent / "static" / "icon.png"
ICON_PATH = "/static/icon.png"


@router.get("/knowledge", response_class=HTMLResponse, summary="The rule book of the knowledge in force")
async def rule_book(request: Request, knowledge: KnowledgeDep, settings: SettingsDep) -> HTMLResponse:
    """Generated from the knowledge artifacts, the site's thresholds and (in a source checkout)
    the example patients, once per process; every card's source.url points into it."""
    html: str | None = getattr(request.app.state, "rulebook_html", None)
    if html is None:
        built_on = settings.today().isoformat()
        made = await run_in_threadpool(book.build, knowledge, settings.plan)
        html = request.app.state.rulebook_html = await run_in_threadpool(book.render_html, made, built_on)
    return HTMLResponse(html)


@public.get(ICON_PATH, include_in_schema=False)
async def icon() -> Response:
    return Response(ICON.read_bytes(), media_type="image/png", headers={"Cache-Control": "max-age=86400"})
