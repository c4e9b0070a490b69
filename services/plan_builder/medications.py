"""Which drug a MedicationRequest/Statement (or a draft order) names, wherever it is written.

FHIR R4 allows the drug as ``medicationCodeableConcept`` or as ``medicationReference`` to a
Medication that is contained in the resource (``#id``), elsewhere in the same Bundle or prefetch,
or on the FHIR server. Every one of them, and the Medication's ingredients, is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.plan_builder.bundle import normalize_ref
from services.plan_builder.types import JSON

MEDICATION_TYPES = frozenset({"MedicationRequest", "MedicationStatement"})

Medications = Mapping[str, JSON]  # "Medication/<id>" or a fullUrl -> Medication
NO_MEDICATIONS: Medications = {}


def index_medications(resources: Iterable[JSON]) -> dict[str, JSON]:
    """Medication resources by every name a reference may use for them."""
    out: dict[str, JSON] = {}
    for resource in resources:
        if resource.get("resourceType") == "Medication" and isinstance(resource.get("id"), str):
            out[f"Medication/{resource['id']}"] = resource
            # Bundles written with fullUrl urn:uuid:<id> refer to entries that way
            out[f"urn:uuid:{resource['id']}"] = resource
    return out


def referenced(resource: JSON, medications: Medications) -> JSON | None:
    """The Medication a medicationReference points to, if it can be found here (one with a
    modifierExtension this service does not understand is not read, as FHIR requires)."""
    found = _referenced(resource, medications)
    return None if found is None or found.get("modifierExtension") else found


def _referenced(resource: JSON, medications: Medications) -> JSON | None:
    ref = resource.get("medicationReference")
    reference = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(reference, str) or not reference:
        return None
    if reference.startswith("#"):
        for item in resource.get("contained") or ():
            if (
                isinstance(item, dict)
                and item.get("resourceType") == "Medication"
                and item.get("id") == reference[1:]
            ):
                return item
        return None
    return medications.get(reference) or medications.get(normalize_ref(reference, "Medication"))


def medication_concepts(resource: JSON, medications: Medications = NO_MEDICATIONS) -> list[JSON]:
    """Every CodeableConcept that names the drug: the element itself, the referenced
    Medication's code and ingredients, and the reference's display as text."""
    concepts: list[JSON] = []
    direct = resource.get("medicationCodeableConcept")
    if isinstance(direct, dict):
        concepts.append(direct)
    medication = referenced(resource, medications)
    if medication is not None:
        if isinstance(medication.get("code"), dict):
            concepts.append(medication["code"])
        for ingredient in medication.get("ingredient") or ():
            item = ingredient.get("itemCodeableConcept") if isinstance(ingredient, dict) else None
            if isinstance(item, dict):
                concepts.append(item)
    display = (resource.get("medicationReference") or {}).get("display")
    if isinstance(display, str) and display:
        concepts.append({"text": display})
    return concepts


def unresolved_reference(resource: JSON, medications: Medications) -> str | None:
    """A ``Medication/<id>`` reference that nothing here resolves (the FHIR server may)."""
    ref = resource.get("medicationReference")
    reference = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(reference, str) or reference.startswith("#") or not reference:
        return None
    if referenced(resource, medications) is not None:
        return None
    normalized = normalize_ref(reference, "Medication")
    return normalized if normalized.startswith("Medication/") else None
