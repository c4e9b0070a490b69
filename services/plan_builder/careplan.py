"""Recommendations -> a FHIR R4 CarePlan, as plain data (proven against the models in tests)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date

from services.plan_builder.canonical import CAREPLAN_PROFILE, MANAGEMENT_PLAN, RECOMMENDATION_SYSTEM
from services.plan_builder.results import PlanOnFile, PlanResult, Recommendation
from services.plan_builder.types import JSON

_ID_NAMESPACE = uuid.UUID("5b7c1f64-3f0e-4b8e-9a57-0c1d2e3f4a5b")


def careplan_id(subject: str, at: date, keys: Sequence[str]) -> str:
    """Deterministic: the same patient, day and plan give the same id (idempotent re-runs)."""
    return str(uuid.uuid5(_ID_NAMESPACE, "|".join([subject, at.isoformat(), *keys])))


def build_careplan(
    *,
    subject: str,
    at: date,
    plan_canonical: str,
    recommendations: Sequence[Recommendation],
    notes: Sequence[str],
) -> JSON:
    activities = []
    for rec in recommendations:
        detail: JSON = {}
        if rec.kind:
            detail["kind"] = rec.kind
        if rec.activity_definition:
            detail["instantiatesCanonical"] = [rec.activity_definition]
        detail["code"] = {"coding": [rec.coding], "text": rec.title}
        if rec.evidence:
            detail["reasonReference"] = [{"reference": ref} for ref in rec.evidence]
        detail["status"] = "not-started"
        detail["description"] = f"{rec.description} Why: {'; '.join(rec.reasons)}. Source: {rec.citation}."
        activities.append({"detail": detail})
    careplan: JSON = {
        "resourceType": "CarePlan",
        "id": careplan_id(subject, at, [r.key for r in recommendations]),
        "meta": {"profile": [CAREPLAN_PROFILE]},
        "instantiatesCanonical": [plan_canonical],
        "status": "draft",
        "intent": "proposal",
        "title": "Osteogenesis imperfecta management plan",
        "description": "Proposed OI management from OI-CDS; every activity needs a clinician's review.",
        "subject": {"reference": subject},
        "created": at.isoformat(),
        "activity": activities,
    }
    if notes:
        careplan["note"] = [{"text": text} for text in notes]
    return careplan


def plan_on_file(result: PlanResult, care_plans: Sequence[JSON], plan_version: str) -> PlanOnFile:
    """The first active or draft CarePlan instantiating the management PlanDefinition at the same
    major version; current when its recommendation keys are exactly the ones that apply now."""
    major = plan_version.split(".")[0]
    for plan in care_plans:
        if plan.get("status") not in ("active", "draft"):
            continue
        for canonical in plan.get("instantiatesCanonical") or ():
            url, _, version = str(canonical).partition("|")
            if url == MANAGEMENT_PLAN and (not version or version.split(".")[0] == major):
                return PlanOnFile(plan, _keys_of(plan) == set(result.keys))
    return PlanOnFile(None, False)


def _keys_of(plan: JSON) -> set[str]:
    return {
        c.get("code")
        for a in plan.get("activity") or ()
        for c in ((a.get("detail") or {}).get("code") or {}).get("coding") or ()
        if c.get("system") == RECOMMENDATION_SYSTEM
    }
