"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from services.cds_hooks import card_ids
from services.cds_hooks.db import installation_secret, schema_current
from services.cds_hooks.deps import KnowledgeDep, StoreDep
from services.cds_hooks.errors import Msg, outcome_response
from services.cds_hooks.routers.services import json_response

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> Response:
    return json_response({"status": "ok"})


def _database_ready(store: StoreDep) -> bool:
    with store.engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    return schema_current(store.engine)


@router.get("/readyz", summary="Knowledge loaded and database reachable and migrated")
async def readyz(knowledge: KnowledgeDep, store: StoreDep, request: Request) -> Response:
    try:
        migrated = await run_in_threadpool(_database_ready, store)
    except Exception as exc:
        return outcome_response(
            503, f"database not reachable ({type(exc).__name__})", "transient", msg=Msg.NOT_READY
        )
    if not migrated:
        return outcome_response(
            503,
            "database schema is not at the newest migration: run `oi-cds migrate`",
            "transient",
            msg=Msg.NOT_READY,
        )
    if getattr(request.app.state, "card_secret_pending", False):
        card_ids.configure(await run_in_threadpool(installation_secret, store.engine))
        request.app.state.card_secret_pending = False
    events = request.app.state.events
    if events.secret is None and request.app.state.settings.shadow_secret is None:
        events.secret = await run_in_threadpool(installation_secret, store.engine, "shadow-ids")
    plan = knowledge.management
    return json_response({"status": "ready", "planDefinition": plan.canonical, "actions": len(plan.actions)})
