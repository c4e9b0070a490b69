"""Small builders for FHIR R4 test resources (codes from fhir_profiles/ and codes.md)."""

from __future__ import annotations

import itertools
from typing import Any

SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
HPO = "http://purl.obolibrary.org/obo/hp.owl"
OBS = "https://oi-cds.example.org/CodeSystem/oi-observation"
PROC = "https://oi-cds.example.org/CodeSystem/oi-procedure"
FORMULARY = "http://hospital.example.org/fhir/CodeSystem/formulary"
REC = "https://oi-cds.example.org/CodeSystem/oi-recommendation"

CODES = {
    "oi": (SNOMED, "78314001"),
    "oi-icd10": (ICD10CM, "Q78.0"),
    "oi-type-1": (SNOMED, "385482004"),
    "oi-type-2": (SNOMED, "205496008"),
    "oi-type-2a": (SNOMED, "254110009"),
    "oi-type-3": (SNOMED, "385483009"),
    "oi-type-4": (SNOMED, "205497004"),
    "oi-type-4b": (SNOMED, "279309008"),
    "oi-perinatal-lethal": (SNOMED, "86470003"),
    "pseudoglioma": (SNOMED, "254112001"),
    "fracture-femur": (SNOMED, "71620000"),
    "fracture-tibia": (SNOMED, "447139008"),
    "fracture-humerus": (SNOMED, "66308002"),
    "fracture-femur-icd": (ICD10CM, "S72.301A"),
    "fracture-femur-icd-followup": (ICD10CM, "S72.301D"),
    "fracture-clavicle-icd": (ICD10CM, "S42.001A"),
    "fracture-vertebra": (HPO, "HP:0002953"),
    "bowing": (HPO, "HP:0006487"),
    "scoliosis": (SNOMED, "298382003"),
    "kyphoscoliosis": (HPO, "HP:0002751"),
    "basilar-invagination": (HPO, "HP:0005758"),
    "unknown": ("http://example.org/local", "X-123"),
}
SEVERITY = {
    "mild": "255604002",
    "moderate": "6736007",
    "severe": "24484000",
    "mild-to-moderate": "371923003",
    "moderate-to-severe": "371924009",
}

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}-{next(_ids)}"


def patient(pid: str = "p1", birth: str | None = "2015-01-01", gender: str = "female") -> dict[str, Any]:
    res: dict[str, Any] = {"resourceType": "Patient", "id": pid, "gender": gender}
    if birth is not None:
        res["birthDate"] = birth
    return res


def condition(
    concept: str,
    onset: str | None = None,
    *,
    pid: str = "p1",
    severity: str | None = None,
    clinical: str | None = "active",
    verification: str | None = "confirmed",
    **extra: Any,
) -> dict[str, Any]:
    system, code = CODES[concept]
    res: dict[str, Any] = {
        "resourceType": "Condition",
        "id": _id("cond"),
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    if clinical:
        res["clinicalStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}
            ]
        }
    if verification:
        res["verificationStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}
            ]
        }
    if severity:
        res["severity"] = {"coding": [{"system": SNOMED, "code": SEVERITY[severity]}]}
    if onset:
        res["onsetDateTime"] = onset
    res.update(extra)
    return res


def observation(
    code: str,
    value: Any,
    date: str | None = "2026-05-01",
    *,
    pid: str = "p1",
    status: str = "final",
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Observation",
        "id": _id("obs"),
        "status": status,
        "code": {"coding": [{"system": OBS, "code": code}]},
        "subject": {"reference": f"Patient/{pid}"},
    }
    if date:
        res["effectiveDateTime"] = date
    if isinstance(value, int | float):
        res["valueQuantity"] = {
            "value": value,
            "unit": "mm",
            "system": "http://unitsofmeasure.org",
            "code": "mm",
        }
    else:
        res["valueCodeableConcept"] = {"coding": [{"system": OBS, "code": value}]}
    res.update(extra)
    return res


def medication(
    name: str,
    status: str = "active",
    *,
    kind: str = "MedicationRequest",
    date: str | None = None,
    pid: str = "p1",
    **extra: Any,
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": kind,
        "id": _id("med"),
        "status": status,
        "medicationCodeableConcept": {
            "coding": [{"system": FORMULARY, "code": "F-1", "display": name}],
            "text": name,
        },
        "subject": {"reference": f"Patient/{pid}"},
    }
    if kind == "MedicationRequest":
        res["intent"] = "order"
        if date:
            res["authoredOn"] = date
    elif date:
        res["effectiveDateTime"] = date
    res.update(extra)
    return res


def service_request(
    text: str, code: tuple[str, str] | None = None, *, pid: str = "p1", **extra: Any
) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": text}
    if code:
        concept["coding"] = [{"system": code[0], "code": code[1]}]
    res = {
        "resourceType": "ServiceRequest",
        "id": _id("sr"),
        "status": "draft",
        "intent": "order",
        "code": concept,
        "subject": {"reference": f"Patient/{pid}"},
    }
    res.update(extra)
    return res


def bundle(*resources: dict[str, Any], btype: str = "collection") -> dict[str, Any]:
    entries = [
        {"fullUrl": f"urn:uuid:{r['id']}", "resource": r} if r.get("id") else {"resource": r}
        for r in resources
    ]
    return {"resourceType": "Bundle", "type": btype, "entry": entries}
