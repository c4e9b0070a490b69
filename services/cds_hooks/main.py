"""Builds the ASGI app; nothing else lives here."""

from fastapi import FastAPI

from services.cds_hooks.config import Settings
from services.cds_hooks.routers import health
from services.plan_builder import load_knowledge


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="OI-CDS", version="0.1.0")
    app.state.settings = settings
    # Loaded (and every condition compiled) once, at start: a broken artifact stops start-up.
    app.state.knowledge = load_knowledge(settings.knowledge_dir)
    app.include_router(health.router)
    return app


app = create_app()
