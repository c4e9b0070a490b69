"""Real request and response examples for the OpenAPI page (/docs), built from the example
patients shipped in fhir_profiles/examples."""

from __future__ import annotations

import json
from typing import Any

from services.plan_builder.canonical import RECOMMENDATION_SYSTEM
from services.plan_builder.knowledge import default_profiles_dir


def _example_prefetch(patient_id: str) -> dict[str, Any]:
    bundle = json.loads((default_profiles_dir() / "examples" / "Bundle-example-patients.json").read_text())
    mine = [e["resource"] for e in bundle["entry"] if e["resource"]["id"].startswith(patient_id)]

    def searchset(rtype: str) -> dict[str, Any]:
        entries = [{"resource": r} for r in mine if r["resourceType"] == rtype]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}

    return {
        "patient": next(r for r in mine if r["resourceType"] == "Patient"),
        "conditions": searchset("Condition"),
        "observations": searchset("Observation"),
        "medications": searchset("MedicationRequest"),
        "medicationStatements": None,
        "serviceRequests": searchset("ServiceRequest"),
        "carePlans": None,
    }


def patient_view_example(patient_id: str = "oi-type-iii-child") -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": patient_id},
        "prefetch": _example_prefetch(patient_id),
    }


def order_select_example() -> dict[str, Any]:
    draft = {
        "resourceType": "MedicationRequest",
        "id": "draft-1",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Denosumab 60 MG/ML Prefilled Syringe"},
        "subject": {"reference": "Patient/oi-type-iii-child"},
    }
    request = patient_view_example()
    request.update(
        hook="order-select",
        context={
            "userId": "Practitioner/example",
            "patientId": "oi-type-iii-child",
            "selections": ["MedicationRequest/draft-1"],
            "draftOrders": {"resourceType": "Bundle", "entry": [{"resource": draft}]},
        },
    )
    return request


def order_sign_example() -> dict[str, Any]:
    request = order_select_example()
    request["hook"] = "order-sign"
    del request["context"]["selections"]
    return request


RESPONSE_EXAMPLE = {
    "cards": [
        {
            "uuid": "6f1a0f8e-2f43-4d57-9a43-6d0b6c1f9b10",
            "summary": "OI: Acute long-bone fracture care",
            "detail": "Manage the acute long-bone fracture.\n\n_Why:_ osteogenesis imperfecta (OI type III); "
            "recent long-bone fracture: Fracture of tibia (onset 2026-05-11).",
            "indicator": "warning",
            "source": {
                "label": "OI management summary (project source text): Mild disease; Orthopedic Management 2",
                "topic": {
                    "system": RECOMMENDATION_SYSTEM,
                    "code": "fracture-care",
                },
            },
        }
    ]
}

HOOK_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/HookRequest"},
                "examples": {
                    "patient-view": {
                        "summary": "oi-management: patient-view with prefetch",
                        "value": patient_view_example(),
                    },
                    "order-select": {
                        "summary": "oi-order-select: a drafted denosumab order",
                        "value": order_select_example(),
                    },
                    "order-sign": {
                        "summary": "oi-order-sign: the same order about to be signed",
                        "value": order_sign_example(),
                    },
                },
            }
        },
    },
    "responses": {
        "200": {"content": {"application/json": {"example": RESPONSE_EXAMPLE}}},
        "400": {"description": "malformed request (OperationOutcome)"},
        "412": {"description": "required FHIR data could not be obtained (OperationOutcome)"},
    },
}
