"""Recommendations -> a FHIR R4 CarePlan, as plain data (proven against the models in tests)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING

from services.plan_builder.types import JSON

if TYPE_CHECKING:
    from services.plan_builder.planner import Recommendation

CAREPLAN_PROFILE = "https://oi-cds.example.org/StructureDefinition/oi-careplan"
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
