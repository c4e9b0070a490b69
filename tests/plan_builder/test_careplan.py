"""The CarePlan: valid FHIR (fhir.resources R4B), conforms to our profile, says why."""

from __future__ import annotations

from datetime import date

import pytest
from fhir.resources.R4B.careplan import CarePlan

from services.plan_builder import Knowledge, Planner
from services.plan_builder.bundle import split_bundle
from services.plan_builder.conformance import check_profile
from tests.clinical.test_vignettes import VIGNETTES, _record_and_drafts
from tests.fhir_builders import REC, patient
from tests.fhir_builders import condition as c

AT = date(2026, 6, 1)


def _careplan_of(vid: str, planner: Planner) -> dict:  # type: ignore[type-arg]
    record, _ = _record_and_drafts(vid)
    group = split_bundle(record).groups[0]
    result = planner.plan(group.patient, group.resources, AT, patient_ref=group.ref)
    assert result.careplan is not None
    return result.careplan


@pytest.mark.parametrize(
    "vid", [v["id"] for v in VIGNETTES if v["hook"] == "patient-view" and v["expected_keys"]]
)
def test_every_vignette_careplan_is_valid_and_conforms(
    vid: str, planner: Planner, knowledge: Knowledge
) -> None:
    careplan = _careplan_of(vid, planner)
    model = CarePlan.model_validate(careplan)
    # round trip through the model keeps every element we wrote
    assert model.model_dump(mode="json", exclude_none=True) == careplan
    profile = knowledge.get("StructureDefinition", "oi-careplan")
    assert profile is not None
    assert check_profile(careplan, profile, knowledge.terminology) == []


def test_careplan_shape(planner: Planner) -> None:
    oi = c("oi-type-3")
    fracture = c("fracture-femur", "2026-05-20")
    result = planner.plan(patient(pid="kid"), [oi, fracture], AT)
    careplan = result.careplan
    assert careplan is not None
    assert careplan["status"] == "draft"
    assert careplan["intent"] == "proposal"
    assert careplan["subject"] == {"reference": "Patient/kid"}
    assert careplan["created"] == "2026-06-01"
    assert careplan["instantiatesCanonical"] == [
        "https://oi-cds.example.org/PlanDefinition/oi-management|1.1.1"
    ]
    by_key = {a["detail"]["code"]["coding"][0]["code"]: a["detail"] for a in careplan["activity"]}
    assert set(by_key) == set(result.keys)
    care = by_key["fracture-care"]
    assert care["code"]["coding"][0]["system"] == REC
    assert {"reference": f"Condition/{fracture['id']}"} in care["reasonReference"]
    assert care["instantiatesCanonical"] == [
        "https://oi-cds.example.org/ActivityDefinition/fracture-care|1.0.0"
    ]
    assert "Orthopedic Management 2" in care["description"]


def test_missing_severity_is_noted_with_what_it_withholds(planner: Planner) -> None:
    result = planner.plan(patient(), [c("oi")], AT)
    careplan = result.careplan
    assert careplan is not None
    notes = [n["text"] for n in careplan["note"]]
    severity_note = next(n for n in notes if "severity unknown" in n)
    for key in ("activity-guidance-mild", "rehabilitation", "orthopedic-evaluation"):
        assert key in severity_note
    assert "missing-facts" in result.keys


def test_recommendation_explanations(planner: Planner) -> None:
    result = planner.plan(patient(birth="2016-01-01", gender="male"), [c("oi-type-4")], AT)
    rec = next(r for r in result.recommendations if r.key == "bisphosphonate-therapy")
    assert "age 10 years" in rec.reasons
    assert "no active bisphosphonate" in rec.reasons
    assert any(r.startswith("severity moderate") for r in rec.reasons)
    assert rec.citation.endswith("Medical Management: bisphosphonates")
    assert rec.indicator is None
    fracture = planner.plan(patient(), [c("oi-type-1"), c("fracture-femur", "2026-05-30")], AT)
    assert next(r for r in fracture.recommendations if r.key == "fracture-care").indicator == "warning"


def test_no_careplan_without_oi(planner: Planner) -> None:
    result = planner.plan(patient(), [c("fracture-femur", "2026-05-30")], AT)
    assert result.careplan is None
    assert result.recommendations == ()


def test_careplan_id_is_deterministic(planner: Planner) -> None:
    resources = [c("oi-type-1")]
    first = planner.plan(patient(), resources, AT).careplan
    again = planner.plan(patient(), resources, AT).careplan
    assert first is not None
    assert again is not None
    assert first["id"] == again["id"]


def test_missing_facts_activity_says_what_it_withholds(planner: Planner) -> None:
    result = planner.plan(
        patient(birth=None),
        [c("oi-type-4"), *[c("fracture-femur", d) for d in ("2026-01-01", "2026-03-01")]],
        AT,
    )
    rec = next(r for r in result.recommendations if r.key == "missing-facts")
    assert any("birth date not recorded" in r for r in rec.reasons)
    withheld = next(r for r in rec.reasons if r.startswith("withheld until recorded"))
    assert "bisphosphonate-therapy" in withheld
    assert "prophylactic-rod-telescoping" in withheld
