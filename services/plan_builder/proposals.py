"""An ActivityDefinition offered instead of a drafted order -> the draft resource it proposes.

A small $apply of the ActivityDefinition: its kind, product or code, intent and dosage; never a
dose the knowledge does not hold (the prescriber completes it)."""

from __future__ import annotations

from services.plan_builder.engine import Alternative
from services.plan_builder.types import JSON


def proposal(alternative: Alternative, patient_ref: str, drafted: JSON | None = None) -> JSON:
    """The proposed draft; one replacing a drafted order is at that order's body site."""
    definition = alternative.definition
    resource: JSON = {
        "resourceType": definition["kind"],
        "status": "draft",
        "intent": definition.get("intent", "proposal"),
    }
    if definition["kind"] == "MedicationRequest":
        resource["medicationCodeableConcept"] = definition["productCodeableConcept"]
    else:
        resource["code"] = definition["code"]
    resource["subject"] = {"reference": patient_ref}
    resource["instantiatesCanonical"] = [f"{definition['url']}|{definition['version']}"]
    if definition.get("dosage"):
        resource["dosageInstruction"] = definition["dosage"]
    if alternative.replaces_order and drafted is not None and drafted.get("bodySite"):
        resource["bodySite"] = drafted["bodySite"]
    return resource


def proposed_text(alternative: Alternative) -> str:
    """What the proposal is, in words: the product's or code's text, else the definition's title."""
    definition = alternative.definition
    concept = definition.get("productCodeableConcept") or definition.get("code") or {}
    return str(concept.get("text") or definition["title"])
