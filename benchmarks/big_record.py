"""A realistic adult without OI, as an EHR's prefetch sends it for every chart open (issue 10):
about 40 Conditions, 300 Observations and 40 MedicationRequests, over 300 KB.

    python -m benchmarks.big_record > big.json

Codes are common ones in their systems (LOINC vital signs and labs, SNOMED CT problems) as a
real record carries them; none is in the knowledge's ValueSets, so the answer is no cards.
"""

from __future__ import annotations

import json
import sys
from typing import Any

PID = "adult-without-oi"
SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
PROBLEMS = [
    ("38341003", "Hypertensive disorder"),
    ("44054006", "Diabetes mellitus type 2"),
    ("195967001", "Asthma"),
    ("55822004", "Hyperlipidemia"),
    ("35489007", "Depressive disorder"),
    ("235595009", "Gastroesophageal reflux disease"),
    ("69896004", "Rheumatoid arthritis"),
    ("396275006", "Osteoarthritis"),
]
LABS = [
    ("8480-6", "Systolic blood pressure", "mm[Hg]", 128),
    ("8462-4", "Diastolic blood pressure", "mm[Hg]", 82),
    ("8867-4", "Heart rate", "/min", 72),
    ("29463-7", "Body weight", "kg", 81.5),
    ("8302-2", "Body height", "cm", 176),
    ("2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", 104),
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 6.4),
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 212),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 14.1),
    ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.9),
]
DRUGS = [
    "lisinopril 10 mg tablet",
    "metformin 500 mg tablet",
    "atorvastatin 20 mg tablet",
    "albuterol 90 mcg inhaler",
    "omeprazole 20 mg capsule",
    "sertraline 50 mg tablet",
]


def _searchset(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"https://ehr.example.org/fhir/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def body() -> dict[str, Any]:
    subject = {"reference": f"Patient/{PID}"}
    meta = {"versionId": "3", "lastUpdated": "2026-11-30T08:15:00Z"}
    conditions = [
        {
            "resourceType": "Condition",
            "id": f"c{i}",
            "meta": meta,
            "clinicalStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "confirmed",
                    }
                ]
            },
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                            "code": "problem-list-item",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {
                        "system": SNOMED,
                        "code": PROBLEMS[i % len(PROBLEMS)][0],
                        "display": PROBLEMS[i % len(PROBLEMS)][1],
                    }
                ],
                "text": PROBLEMS[i % len(PROBLEMS)][1],
            },
            "subject": subject,
            "onsetDateTime": f"{2000 + i % 25}-0{1 + i % 9}-15",
            "recordedDate": "2025-03-01",
        }
        for i in range(40)
    ]
    observations = [
        {
            "resourceType": "Observation",
            "id": f"o{i}",
            "meta": meta,
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "vital-signs",
                        }
                    ]
                }
            ],
            "code": {
                "coding": [
                    {"system": LOINC, "code": LABS[i % len(LABS)][0], "display": LABS[i % len(LABS)][1]}
                ],
                "text": LABS[i % len(LABS)][1],
            },
            "subject": subject,
            "effectiveDateTime": f"20{10 + i % 16}-{1 + i % 12:02d}-{1 + i % 28:02d}T09:30:00Z",
            "valueQuantity": {
                "value": LABS[i % len(LABS)][3],
                "unit": LABS[i % len(LABS)][2],
                "system": "http://unitsofmeasure.org",
                "code": LABS[i % len(LABS)][2],
            },
            "interpretation": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
                            "code": "N",
                            "display": "Normal",
                        }
                    ]
                }
            ],
            "performer": [{"reference": "Practitioner/example", "display": "Clinic nurse"}],
        }
        for i in range(300)
    ]
    medications = [
        {
            "resourceType": "MedicationRequest",
            "id": f"m{i}",
            "meta": meta,
            "status": "active" if i % 3 else "completed",
            "intent": "order",
            "medicationCodeableConcept": {"text": DRUGS[i % len(DRUGS)]},
            "subject": subject,
            "authoredOn": f"20{15 + i % 10}-05-01",
            "dosageInstruction": [{"text": "one daily", "route": {"text": "oral"}}],
        }
        for i in range(40)
    ]
    return {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"userId": "Practitioner/example", "patientId": PID},
        "prefetch": {
            "patient": {
                "resourceType": "Patient",
                "id": PID,
                "gender": "female",
                "birthDate": "1968-04-02",
                "meta": meta,
            },
            "conditions": _searchset(conditions),
            "observations": _searchset(observations),
            "medications": _searchset(medications),
            "medicationStatements": _searchset([]),
            "carePlans": _searchset([]),
        },
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(body()))
