"""The shapes real EHRs send, as transforms of a clean record Bundle.

Each transform keeps the clinical meaning of the record, so the recommendations must not change.
The local code system is invented and named as such: an OID under the documentation arc.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from typing import Any

JSON = dict[str, Any]
LOCAL = "urn:oid:2.16.840.1.113883.19.5.99"  # HL7's documentation-only OID arc, not a real site
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONCEPT_FIELDS = (
    "code",
    "bodySite",
    "clinicalStatus",
    "verificationStatus",
    "severity",
    "valueCodeableConcept",
    "medicationCodeableConcept",
)
_n = itertools.count(1)


def _resources(bundle: JSON) -> list[JSON]:
    return [e["resource"] for e in bundle.get("entry", [])]


def _patient(bundle: JSON) -> JSON:
    return next(r for r in _resources(bundle) if r["resourceType"] == "Patient")


def _local_coding(label: str) -> JSON:
    # a local code whose code looks like a status word must not be read as one
    return {"system": LOCAL, "code": f"LOC-{next(_n)}", "display": f"local {label}"}


def _concepts(resource: JSON, name: str) -> list[JSON]:
    value = resource.get(name)
    items = value if isinstance(value, list) else [value]
    return [c for c in items if isinstance(c, dict)]


def local_coding_first(bundle: JSON) -> JSON:
    """Every CodeableConcept gets a local coding before the standard one."""
    out = copy.deepcopy(bundle)
    for r in _resources(out):
        for name in CONCEPT_FIELDS:
            for concept in _concepts(r, name):
                if concept.get("coding"):
                    concept["coding"].insert(0, _local_coding(name))
    return out


def status_codings_local_first(bundle: JSON) -> JSON:
    """Condition statuses with a local coding first whose code is another status word."""
    out = copy.deepcopy(bundle)
    for r in _resources(out):
        if r["resourceType"] != "Condition":
            continue
        for name, word in (("clinicalStatus", "resolved"), ("verificationStatus", "entered-in-error")):
            concept = r.get(name)
            if isinstance(concept, dict) and concept.get("coding"):
                concept["coding"].insert(0, {"system": LOCAL, "code": word, "display": "local status"})
    return out


def coding_extras(bundle: JSON) -> JSON:
    """userSelected and version on codings, text that differs from the display."""
    out = copy.deepcopy(bundle)
    for r in _resources(out):
        for name in CONCEPT_FIELDS:
            for concept in _concepts(r, name):
                for coding in concept.get("coding") or ():
                    coding["userSelected"] = True
                    coding.setdefault("version", "http://snomed.info/sct/731000124108/version/20250301")
                if name == "code" and "text" in concept:
                    concept["text"] = "as entered by the clinician"
    return out


def references_absolute(bundle: JSON) -> JSON:
    """Patient references as absolute, versioned URLs; entries keyed by server URLs."""
    out = copy.deepcopy(bundle)
    pid = _patient(out)["id"]
    base = "https://ehr.example.org/fhir"
    for e in out["entry"]:
        r = e["resource"]
        e["fullUrl"] = f"{base}/{r['resourceType']}/{r['id']}"
        for name in ("subject", "patient"):
            if isinstance(r.get(name), dict):
                r[name]["reference"] = f"{base}/Patient/{pid}/_history/4"
    return out


def references_relative(bundle: JSON) -> JSON:
    """Patient references written Patient/<id>/_history/<n>."""
    out = copy.deepcopy(bundle)
    pid = _patient(out)["id"]
    for r in _resources(out):
        if isinstance(r.get("subject"), dict):
            r["subject"]["reference"] = f"Patient/{pid}/_history/2"
    return out


def reversed_entries(bundle: JSON) -> JSON:
    out = copy.deepcopy(bundle)
    out["entry"].reverse()
    return out


def meta_and_extensions(bundle: JSON) -> JSON:
    """meta, extensions nobody here understands, Bundle links, search modes and totals."""
    out = copy.deepcopy(bundle)
    for r in _resources(out):
        r["meta"] = {
            "versionId": "7",
            "lastUpdated": "2026-01-02T03:04:05.678+01:00",
            "profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition"],
            "security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "N"}],
            "tag": [{"system": LOCAL, "code": "imported"}],
        }
        r.setdefault("extension", []).append({"url": f"{LOCAL}/ext/unknown", "valueString": "x"})
    for e in out["entry"]:
        e["search"] = {"mode": "match", "score": 1}
    out["link"] = [{"relation": "self", "url": "https://ehr.example.org/fhir/Patient?_id=x"}]
    out["total"] = len(out["entry"])
    return out


def unrelated_noise(bundle: JSON) -> JSON:
    """Unrelated Conditions, Observations and MedicationRequests of the same patient."""
    out = copy.deepcopy(bundle)
    ref = {"reference": f"Patient/{_patient(out)['id']}"}
    snomed = "http://snomed.info/sct"
    loinc = "http://loinc.org"
    noise: list[JSON] = [
        {
            "resourceType": "Condition",
            "id": f"noise-c{next(_n)}",
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
            "code": {"coding": [{"system": snomed, "code": "195967001", "display": "Asthma"}]},
            "subject": ref,
        },
        {
            "resourceType": "Observation",
            "id": f"noise-o{next(_n)}",
            "status": "final",
            "code": {"coding": [{"system": loinc, "code": "8302-2", "display": "Body height"}]},
            "subject": ref,
            "effectiveDateTime": "2026-01-01",
            "valueQuantity": {
                "value": 120,
                "unit": "cm",
                "system": "http://unitsofmeasure.org",
                "code": "cm",
            },
        },
        {
            "resourceType": "MedicationRequest",
            "id": f"noise-m{next(_n)}",
            "status": "active",
            "intent": "order",
            "medicationCodeableConcept": {"text": "paracetamol 250 mg"},
            "subject": ref,
        },
    ]
    out["entry"] += [{"resource": r} for r in noise]
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "information", "code": "informational", "diagnostics": "search ok"}],
    }
    out["entry"].append({"resource": outcome, "search": {"mode": "outcome"}})
    return out


def status_duplicates(bundle: JSON) -> JSON:
    """An entered-in-error and a refuted copy of every Condition; an entered-in-error,
    a cancelled and a draft copy of every MedicationRequest."""
    out = copy.deepcopy(bundle)
    extra: list[JSON] = []
    for r in _resources(out):
        if r["resourceType"] == "Condition":
            for word in ("entered-in-error", "refuted"):
                dup = copy.deepcopy(r)
                dup["id"] = f"{r['id']}-{word}"
                dup["verificationStatus"] = {
                    "coding": [_local_coding("status"), {"system": VERIFICATION, "code": word}]
                }
                dup["clinicalStatus"] = {"coding": [{"system": CLINICAL, "code": "active"}]}
                dup.pop("onsetDateTime", None)
                dup["onsetDateTime"] = bundle.get("timestamp", "2026-06-01")[:10]
                extra.append(dup)
        if r["resourceType"] == "MedicationRequest":
            for word in ("entered-in-error", "cancelled", "draft"):
                dup = copy.deepcopy(r)
                dup["id"] = f"{r['id']}-{word}"
                dup["status"] = word
                extra.append(dup)
    out["entry"] += [{"resource": r} for r in extra]
    return out


def contained_medication(bundle: JSON) -> JSON:
    """Each MedicationRequest/Statement names its drug through a contained Medication."""
    out = copy.deepcopy(bundle)
    for r in _resources(out):
        if (
            r["resourceType"] in ("MedicationRequest", "MedicationStatement")
            and "medicationCodeableConcept" in r
        ):
            concept = r.pop("medicationCodeableConcept")
            r["contained"] = [{"resourceType": "Medication", "id": "med1", "code": concept}]
            r["medicationReference"] = {"reference": "#med1"}
    return out


def bundled_medication(bundle: JSON) -> JSON:
    """Each MedicationRequest/Statement refers to a Medication entry of the same Bundle."""
    out = copy.deepcopy(bundle)
    meds: list[JSON] = []
    for r in _resources(out):
        if (
            r["resourceType"] in ("MedicationRequest", "MedicationStatement")
            and "medicationCodeableConcept" in r
        ):
            mid = f"med-{r['id']}"
            meds.append({"resourceType": "Medication", "id": mid, "code": r.pop("medicationCodeableConcept")})
            r["medicationReference"] = {"reference": f"Medication/{mid}"}
    out["entry"] += [{"fullUrl": f"urn:uuid:{m['id']}", "resource": m} for m in meds]
    return out


def modifier_extension_on_noise(bundle: JSON) -> JSON:
    """Unrelated resources carrying a modifierExtension (they are ignored, and said so)."""
    out = unrelated_noise(bundle)
    for e in out["entry"]:
        if str(e["resource"].get("id", "")).startswith("noise-"):
            e["resource"]["modifierExtension"] = [{"url": f"{LOCAL}/ext/not-for-us", "valueBoolean": True}]
    return out


def old_abated_condition(bundle: JSON) -> JSON:
    """A long-healed femur fracture, abated years ago."""
    out = copy.deepcopy(bundle)
    out["entry"].append(
        {
            "resource": {
                "resourceType": "Condition",
                "id": f"old-{next(_n)}",
                "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "resolved"}]},
                "verificationStatus": {"coding": [{"system": VERIFICATION, "code": "confirmed"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "71620000"}]},
                "subject": {"reference": f"Patient/{_patient(out)['id']}"},
                "onsetDateTime": "2001-03-01",
                "abatementDateTime": "2001-06-01",
            }
        }
    )
    return out


SHAPES: dict[str, Callable[[JSON], JSON]] = {
    "modifier-extension-on-noise": modifier_extension_on_noise,
    "old-abated-condition": old_abated_condition,
    "local-coding-first": local_coding_first,
    "status-codings-local-first": status_codings_local_first,
    "coding-extras": coding_extras,
    "references-absolute": references_absolute,
    "references-versioned": references_relative,
    "reversed-entries": reversed_entries,
    "meta-and-extensions": meta_and_extensions,
    "unrelated-noise": unrelated_noise,
    "status-duplicates": status_duplicates,
    "contained-medication": contained_medication,
    "bundled-medication": bundled_medication,
}


# The worked example site (docs/site-example): what its hospital's records look like.
SITE_DIR = "docs/site-example"
SITE = "urn:oid:2.16.840.1.113883.19.5.99"
OBS = "https://oi-cds.example.org/CodeSystem/oi-observation"
_AMBULATORY_ANSWERS = {"independent": "1", "with-aids": "2", "wheelchair": "3", "non-ambulatory": "4"}


def site_codes(bundle: JSON, maturity_as: str = "boolean") -> JSON:
    """The record as the example site writes it: flowsheet rows and answer lists of its own,
    maturity as a yes/no row (or free text), canal width in inches."""
    out = copy.deepcopy(bundle)
    for r in _resources(out):
        if r["resourceType"] != "Observation":
            continue
        codes = {c.get("code") for c in r.get("code", {}).get("coding", []) if c.get("system") == OBS}
        answer = next(
            (
                c["code"]
                for c in (r.get("valueCodeableConcept") or {}).get("coding", [])
                if c.get("system") == OBS
            ),
            None,
        )
        if "ambulatory-status" in codes and answer:
            r["code"] = {"coding": [{"system": SITE + ".1", "code": "FLO-7001", "display": "Mobility level"}]}
            r["valueCodeableConcept"] = {
                "coding": [{"system": SITE + ".2", "code": _AMBULATORY_ANSWERS[answer], "display": "(local)"}]
            }
        elif "skeletal-maturity" in codes and answer:
            r.pop("valueCodeableConcept")
            if maturity_as == "boolean":
                r["code"] = {
                    "coding": [{"system": SITE + ".1", "code": "FLO-7004"}],
                    "text": "Growth plates closed?",
                }
                r["valueBoolean"] = answer == "mature"
            else:
                r["code"] = {"coding": [{"system": SITE + ".1", "code": "FLO-7002"}]}
                r["valueString"] = "Growth plates closed" if answer == "mature" else "growth plates OPEN"
        elif "medullary-canal-diameter" in codes and r.get("valueQuantity"):
            q = r["valueQuantity"]
            mm = float(q["value"]) * (10.0 if q.get("code") == "cm" else 1.0)
            r["code"] = {"coding": [{"system": SITE + ".1", "code": "FLO-7003"}]}
            r["valueQuantity"] = {"value": mm / 25.4, "unit": "in", "system": SITE + ".3", "code": "INCH"}
    return out
