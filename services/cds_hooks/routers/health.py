"""Liveness and readiness."""

from fastapi import APIRouter

from services.cds_hooks.deps import KnowledgeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(knowledge: KnowledgeDep) -> dict[str, object]:
    plan = knowledge.management
    return {"status": "ready", "planDefinition": plan.canonical, "actions": len(plan.actions)}
