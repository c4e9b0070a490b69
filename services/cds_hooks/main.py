"""Builds the ASGI app; nothing else lives here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from services.cds_hooks import card_ids, errors
from services.cds_hooks.auth import DatabaseReplayCache, KeySets, RedisReplayCache, Verifier
from services.cds_hooks.config import Settings
from services.cds_hooks.cors import Cors
from services.cds_hooks.db import installation_secret, make_engine, migrate, schema_current
from services.cds_hooks.demo import DemoStore
from services.cds_hooks.deps import require_jwt
from services.cds_hooks.events import EventSink
from services.cds_hooks.fhir_client import FhirClient
from services.cds_hooks.hook_endpoint import HookEndpoint
from services.cds_hooks.limits import HookAdmission
from services.cds_hooks.logs import RequestLog
from services.cds_hooks.models import HookRequest
from services.cds_hooks.prefetch import Budget, prefetch_keys, templates
from services.cds_hooks.registry import registry
from services.cds_hooks.routers import (
    admin,
    demo_fhir,
    feedback,
    fhir,
    health,
    observe,
    rulebook,
    services,
    tryit,
)
from services.cds_hooks.service import HookEnv
from services.cds_hooks.store import FeedbackStore
from services.plan_builder import Planner, load_knowledge
from services.plan_builder.orders import OrderChecker

log = logging.getLogger("oi_cds")


class OiCds(FastAPI):
    """FastAPI, except that POSTs under /cds-services/ go to HookAdmission first, which hands
    hook calls to HookEndpoint: they skip FastAPI's error, telemetry and body-limit layers,
    routing and dependency solving (issue 10's profile), and answer as errors.install would."""

    admission: HookAdmission | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.admission is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith("/cds-services/")
        ):
            scope["app"] = self
            await self.admission(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    problem = settings.startup_problem()
    if problem is not None:
        raise RuntimeError(problem)
    # Loaded (and every condition compiled) once, at start: a broken artifact stops start-up.
    knowledge = load_knowledge(settings.knowledge_dir, site_dir=settings.site_dir)
    planner = Planner(knowledge, settings.plan)
    checker = OrderChecker(knowledge, settings.plan)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        if settings.database_url.startswith("sqlite"):
            migrate(settings.database_url, engine)  # a shared database: by `oi-cds migrate`
        migrated = await run_in_threadpool(schema_current, engine)
        shadow_secret = (
            settings.shadow_secret.get_secret_value().encode()
            if settings.shadow_secret
            else await run_in_threadpool(installation_secret, engine, "shadow-ids")
            if migrated
            else None
        )
        app.state.events = EventSink(engine, shadow_secret)
        if settings.card_secret:
            card_ids.configure(settings.card_secret.get_secret_value().encode())
        elif migrated:
            card_ids.configure(await run_in_threadpool(installation_secret, engine))
        else:
            # a shared database not yet migrated: /readyz answers 503 until `oi-cds migrate`,
            # then takes the installation's secret before it says ready
            app.state.card_secret_pending = True
        timeout = httpx.Timeout(settings.fhir_timeout_s)
        replay: RedisReplayCache | DatabaseReplayCache = (
            RedisReplayCache(settings.redis_url) if settings.redis_url else DatabaseReplayCache(engine)
        )
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
            app.state.verifier = Verifier(settings, KeySets(http, settings.jwks_cache_ttl_s), replay)
            fhir = FhirClient(
                http,
                settings.fhir_allowlist,
                settings.fhir_max_pages,
                settings.fhir_max_response_bytes,
                settings.max_bundle_entries,
                asyncio.Semaphore(settings.fhir_max_in_flight),
            )
            app.state.env = HookEnv(
                knowledge,
                planner,
                checker,
                fhir,
                prefetch_keys(knowledge),
                settings.review_active_orders,
                settings.quiet_when_current,
                # best-effort keys give way at 3/4 of the deadline, so required ones still answer
                Budget(settings.fhir_concurrency, settings.hook_deadline_s * 0.75),
            )
            app.state.store = FeedbackStore(engine, knowledge.recommendation_codes)
            if settings.demo:
                log.warning("OI-CDS demo mode: any CORS origin; not for patient data")
            # Everything loaded so far lives as long as the process: keep it out of GC scans,
            # which otherwise show up as latency spikes under load.
            gc.collect()
            gc.freeze()
            if not settings.auth_required:
                log.warning("OI-CDS: CDS Hooks JWT checks are OFF; any caller is trusted")
            flusher = asyncio.create_task(app.state.events.run(settings.events_flush_s))
            try:
                yield
            finally:
                flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flusher
                if isinstance(replay, RedisReplayCache):
                    await replay.close()
                engine.dispose()

    app = OiCds(
        title="OI-CDS",
        version="0.1.0",
        description="CDS Hooks 2.0 service for osteogenesis imperfecta management.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.knowledge = knowledge
    app.state.registry = registry()
    app.state.prefetch_templates = templates(prefetch_keys(knowledge))
    errors.install(app)
    # POSTs under /cds-services/ meet HookAdmission first (refusing must stay cheap under
    # overload); hook calls then go to HookEndpoint, one layer that does CORS, the request log
    # and the call, and never enter FastAPI's stack. Everything else: CORS(RequestLog(app)).
    origins = ["*"] if settings.demo else settings.cors_origins
    services_ids = set(app.state.registry)
    app.add_middleware(RequestLog, services=services_ids)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Accept"],
        max_age=600,
    )
    cors = Cors(settings.cors_origins, any_origin=settings.demo)
    app.admission = HookAdmission(
        functools.partial(FastAPI.__call__, app),
        hooks=HookEndpoint(app, services_ids, cors),
        services=services_ids,
        limit=settings.max_concurrent_hooks,
        cors=cors,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_read_timeout_s,
        max_loop_lag_s=settings.shed_loop_lag_s,
    )
    app.include_router(health.router)
    app.include_router(observe.router)  # /metrics checks the JWT itself (OI_CDS_METRICS_OPEN)
    # Every other route needs the CDS Hooks JWT when auth is required; with auth off the
    # dependency is not even resolved (the hot path pays per dependency).
    protected = [Depends(require_jwt)] if settings.auth_required else []
    for router in (services.router, feedback.router, admin.router, fhir.router):
        app.include_router(router, dependencies=protected)
    # the rule book holds no patient data: a site may open it to clinicians following card links
    app.include_router(rulebook.router, dependencies=[] if settings.knowledge_open else protected)
    app.include_router(rulebook.public)
    if settings.demo:
        app.state.demo = DemoStore(settings.today())
        app.include_router(demo_fhir.router)
        app.include_router(tryit.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, plus the hook request model the hook route documents by $ref."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        extra = HookRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(extra.pop("$defs", {}))
        components["HookRequest"] = extra
        app.openapi_schema = schema
    return app.openapi_schema
