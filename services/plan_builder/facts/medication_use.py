"""Facts read from MedicationRequests and MedicationStatements: bisphosphonate use."""

from __future__ import annotations

from services.plan_builder import dates
from services.plan_builder.facts.base import (
    ABSENT,
    FactValue,
    Record,
    dedupe,
    resource_ref,
    tri_any,
    undecided,
)
from services.plan_builder.medications import (
    Medications,
    index_medications,
    medication_concepts,
    referenced,
)
from services.plan_builder.terminology import Terminology, concept_texts
from services.plan_builder.types import JSON, Tri

VS_BISPHOSPHONATE = "drug-bisphosphonate"
ACTIVE_REQUEST = frozenset({"active", "on-hold"})


def drug_value_sets(resource: JSON, medications: Medications, term: Terminology) -> frozenset[str]:
    """ValueSets of the drug a medication resource names, by code and by name."""
    concepts = medication_concepts(resource, medications)
    found = term.named([t for c in concepts for t in concept_texts(c)])
    for concept in concepts:
        found = found | term.coded(concept)
    return found


def read_active_bisphosphonate(record: Record) -> FactValue:
    """An active (or on-hold) bisphosphonate, or one completed within the site's window."""
    meds = record.by_type.get("MedicationRequest", []) + record.by_type.get("MedicationStatement", [])
    if not meds:
        return ABSENT
    term = record.terminology
    medications = index_medications(record.by_type.get("Medication", []))
    since = dates.add_months(record.at, -record.settings.bisphosphonate_completed_window_months)
    values: list[Tri] = []
    refs: list[str | None] = []
    notes: list[str] = []
    for med in meds:
        record.peek(med, "medicationCodeableConcept", "medicationReference", "contained")
        medication = referenced(med, medications)
        if medication is not None:
            record.check(medication)
        if VS_BISPHOSPHONATE not in drug_value_sets(med, medications, term):
            continue
        record.check(med)
        status, kind, ref = med.get("status"), med["resourceType"], resource_ref(med)
        active: Tri = False
        if (kind == "MedicationRequest" and status in ACTIVE_REQUEST) or (
            kind == "MedicationStatement" and status == "active"
        ):
            active = True
        elif status == "completed":
            if kind == "MedicationRequest":
                raw = med.get("authoredOn")
            else:
                period = med.get("effectivePeriod") or {}
                raw = med.get("effectiveDateTime") or period.get("end") or period.get("start")
            when = record.dated(ref, "date", raw, dates.parse_datetime, notes)
            active = False if when is None else dates.on_or_after(when, since)
        if active is not False:
            refs.append(ref)
        values.append(active)
    value = tri_any(values)
    missing = undecided(
        value,
        "activeBisphosphonate",
        "bisphosphonateDate",
        "a completed bisphosphonate with a partial date may or may not fall in the active window",
    )
    return FactValue(value, dedupe(refs), tuple(notes), missing)
