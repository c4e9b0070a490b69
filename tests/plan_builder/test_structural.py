"""Structural validation names the resource and the field; unknown fields are tolerated."""

from __future__ import annotations

from typing import Any

import pytest

from services.plan_builder.errors import PlanInputError
from services.plan_builder.structural import validate_resource
from tests.fhir_builders import condition, medication, observation, patient


@pytest.mark.parametrize(
    ("resource", "path", "words"),
    [
        ({**patient(), "birthDate": "2015-13-01"}, "Patient.birthDate", "not a FHIR date"),
        ({**patient(), "birthDate": "01/02/2015"}, "Patient.birthDate", "not a FHIR date"),
        ({**patient(), "birthDate": 2015}, "Patient.birthDate", "date string"),
        ({**patient(), "gender": ""}, "Patient.gender", "code"),
        ({**condition("oi"), "onsetDateTime": "yesterday"}, "Condition.onsetDateTime", "dateTime"),
        ({**condition("oi"), "code": "Q78.0"}, "Condition.code", "CodeableConcept"),
        ({**condition("oi"), "code": {"coding": {"code": "x"}}}, "Condition.code", "array"),
        ({**condition("oi"), "code": {"coding": [{"code": 78314001}]}}, "Condition.code", "Coding.code"),
        ({**condition("oi"), "subject": "Patient/p1"}, "Condition.subject", "Reference"),
        ({**condition("oi"), "onsetPeriod": {"start": "soon"}}, "Condition.onsetPeriod", "start"),
        ({**condition("oi"), "onsetAge": {"value": "ten"}}, "Condition.onsetAge", "number"),
        (
            {**observation("medullary-canal-diameter", 3.0), "valueQuantity": {"value": True}},
            "Observation.valueQuantity",
            "number",
        ),
        (
            {**observation("ambulatory-status", "independent"), "issued": "2026-01-01"},
            "Observation.issued",
            "instant",
        ),
        (
            {**medication("pamidronate"), "dosageInstruction": {"route": {}}},
            "MedicationRequest.dosageInstruction",
            "array",
        ),
        (
            {**medication("pamidronate"), "authoredOn": "2026-02-30"},
            "MedicationRequest.authoredOn",
            "dateTime",
        ),
    ],
)
def test_bad_field_is_named(resource: dict[str, Any], path: str, words: str) -> None:
    with pytest.raises(PlanInputError) as caught:
        validate_resource(resource)
    assert caught.value.path == path
    assert words in caught.value.describe()
    issue = caught.value.to_issue()
    assert issue["severity"] == "error"
    assert issue["expression"] == [path]


@pytest.mark.parametrize(
    "bad", [None, [], "Patient", 42, {}, {"resourceType": 7}, {"resourceType": "Patient", "id": "a b"}]
)
def test_not_a_resource(bad: Any) -> None:
    with pytest.raises(PlanInputError):
        validate_resource(bad)


def test_unknown_fields_and_types_are_tolerated() -> None:
    resource = {**condition("oi"), "extension": [{"url": "x", "valueString": "y"}], "_onsetDateTime": {}}
    assert validate_resource(resource) is resource
    assert validate_resource({"resourceType": "Encounter", "status": 5})


def test_good_dates_pass() -> None:
    for value in ("2015", "2015-04", "2015-04-01", "2015-04-01T10:00:00Z", "2015-04-01T10:00:00.123+02:00"):
        validate_resource({**condition("oi"), "onsetDateTime": value})
