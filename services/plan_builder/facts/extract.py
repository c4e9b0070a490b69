"""FHIR resources + an evaluation date -> PatientFacts, by the vocabulary's readers.

Codes are matched only through the value sets of fhir_profiles/ (via Terminology); the value
set ids name concepts (``oi-condition``, ``long-bone-fracture``...), never codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from types import MappingProxyType
from typing import Any

from services.plan_builder import dates
from services.plan_builder.errors import Msg, PlanInputError
from services.plan_builder.facts.base import Missing, Record, resource_ref
from services.plan_builder.facts.conditions import read_conditions
from services.plan_builder.facts.observations import read_observations
from services.plan_builder.facts.patient_facts import PatientFacts
from services.plan_builder.facts.vocabulary import VOCABULARY, Vocabulary
from services.plan_builder.settings import PlanSettings
from services.plan_builder.terminology import Terminology
from services.plan_builder.types import JSON


def extract_facts(
    patient: JSON,
    resources: Sequence[JSON],
    at: date,
    terminology: Terminology,
    settings: PlanSettings,
    patient_ref: str | None = None,
    validate: bool = False,
    vocabulary: Vocabulary = VOCABULARY,
) -> PatientFacts:
    """With validate=True, resources are structurally validated as they are read: a resource
    whose code no value set knows is ignored after checking its code alone."""
    record = Record(
        at, settings, terminology, validate, vocabulary.specs, patient, patient_ref or resource_ref(patient)
    )
    record.check(patient)
    record.birth = record.dated(record.patient_ref, "birthDate", patient.get("birthDate"), dates.parse_date)
    if record.birth is not None:
        low, record.age_high = dates.age_range(record.birth, at)
        record.age_low = max(low, 0)
    if patient.get("modifierExtension"):
        raise PlanInputError(
            "has a modifierExtension this service does not understand: it cannot be planned (FHIR: "
            "such a resource must not be processed)",
            msg=Msg.MODIFIER_EXTENSION,
            resource_type="Patient",
            path="Patient.modifierExtension",
            code="not-supported",
        )
    for resource in resources:
        if resource.get("modifierExtension"):
            # FHIR: a resource with a modifier extension we do not understand is not read
            label = resource_ref(resource) or resource.get("resourceType", "a resource")
            record.notes.append(f"{label} has a modifierExtension this service does not understand; ignored")
            continue
        record.by_type.setdefault(resource.get("resourceType", ""), []).append(resource)
    read_conditions(record)
    read_observations(record, vocabulary.observation_reads)

    values: dict[str, Any] = {}
    details: dict[str, Mapping[str, Any]] = {}
    evidence: dict[str, tuple[str, ...]] = {}
    missing: list[Missing] = []
    notes = list(record.notes)
    for name, spec in vocabulary.specs.items():
        found = record.read.get(name)  # read already when another fact asked for it
        if found is None:
            found = record.read[name] = spec.reader(record)
        values[name] = found.value
        if found.evidence:
            evidence[name] = found.evidence
        if found.detail:
            details[name] = found.detail
        if found.missing:
            missing.extend(found.missing)
        if found.notes:
            notes.extend(found.notes)
    return PatientFacts(
        evaluated_on=at,
        patient_ref=record.patient_ref,
        specs=vocabulary.specs,
        values=MappingProxyType(values),
        details=MappingProxyType(details),
        evidence=MappingProxyType(evidence),
        missing=tuple(missing),
        notes=tuple(notes),
        gender=patient.get("gender"),
        birth_date=record.birth,
        fractures=tuple(record.fractures),
    )
