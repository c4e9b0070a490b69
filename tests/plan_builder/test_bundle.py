"""Splitting a Bundle of many patients; problems stay with their patient."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.plan_builder import Planner
from services.plan_builder.batch import Summary, plan_bundle
from services.plan_builder.bundle import split_bundle
from services.plan_builder.errors import PlanInputError
from tests.fhir_builders import bundle, condition, patient

AT = date(2026, 6, 1)


def test_references_by_id_fullurl_and_absolute_url() -> None:
    doc = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"fullUrl": "urn:uuid:aaa", "resource": {"resourceType": "Patient"}},
            {"fullUrl": "https://ehr.example.org/fhir/Patient/b", "resource": patient("b")},
            {"resource": {**condition("oi"), "subject": {"reference": "urn:uuid:aaa"}}},
            {"resource": {**condition("oi-type-1"), "subject": {"reference": "Patient/b"}}},
            {
                "resource": {
                    **condition("scoliosis"),
                    "subject": {"reference": "https://ehr.example.org/fhir/Patient/b/_history/3"},
                }
            },
            {"resource": {"resourceType": "Encounter", "id": "e1", "subject": {"reference": "Patient/b"}}},
        ],
    }
    split = split_bundle(doc)
    assert [g.ref for g in split.groups] == ["urn:uuid:aaa", "Patient/b"]
    assert len(split.groups[0].resources) == 1
    assert len(split.groups[1].resources) == 2  # the Encounter is not read
    assert split.orphans == []


def test_orphan_and_missing_subject_are_reported() -> None:
    doc = bundle(
        patient("a"),
        {**condition("oi"), "subject": {"reference": "Patient/zzz"}},
        {**condition("oi"), "subject": None},
    )
    split = split_bundle(doc)
    assert len(split.orphans) == 2
    assert "Patient/zzz" in split.orphans[0].describe()
    assert "no subject" in split.orphans[1].describe()


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"resourceType": "Patient"}, "expected a FHIR Bundle"),
        ([1, 2], "expected a FHIR Bundle"),
        ({"resourceType": "Bundle", "type": "document", "entry": []}, "Bundle.type"),
        ({"resourceType": "Bundle", "type": "collection", "entry": {}}, "must be an array"),
    ],
)
def test_unusable_bundle_raises(doc: Any, words: str) -> None:
    with pytest.raises(PlanInputError, match=words):
        split_bundle(doc)


def test_problem_confined_to_one_patient(planner: Planner) -> None:
    doc = bundle(
        patient("good", birth="2016-01-01"),
        condition("oi-type-3", pid="good"),
        patient("bad"),
        {**condition("oi-type-1", pid="bad"), "onsetDateTime": "last week"},
        patient("plain"),
        condition("fracture-femur", "2026-05-01", pid="plain"),
        {"resourceType": "Patient", "id": "weird", "birthDate": "2015-02-30"},
    )
    doc["entry"].append("not an entry")
    outcomes = list(plan_bundle(doc, planner, AT))
    kinds = [(o.kind, o.patient_ref) for o in outcomes]
    assert kinds == [
        ("careplan", "Patient/good"),
        ("error", "Patient/bad"),
        ("not-oi", "Patient/plain"),
        ("error", "Patient/weird"),
        ("orphan", None),
    ]
    bad = outcomes[1].resource
    assert bad["resourceType"] == "OperationOutcome"
    assert bad["issue"][0]["expression"] == ["Condition.onsetDateTime"]
    assert bad["issue"][0]["diagnostics"].startswith("Patient/bad: ")
    summary = Summary()
    for outcome in outcomes:
        summary.add(outcome)
    assert (
        summary.line()
        == "patients read: 4, planned: 1, without OI: 1, with errors: 2, resources without a patient: 1"
    )


def test_patient_without_id_or_fullurl_is_an_error(planner: Planner) -> None:
    doc = {"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient"}}]}
    outcome = next(plan_bundle(doc, planner, AT))
    assert outcome.kind == "error"
    assert "neither id nor fullUrl" in outcome.resource["issue"][0]["diagnostics"]


def test_duplicate_patient_is_an_error(planner: Planner) -> None:
    outcomes = list(plan_bundle(bundle(patient("a"), patient("a")), planner, AT))
    assert any(o.kind == "error" and "duplicate" in o.resource["issue"][0]["diagnostics"] for o in outcomes)


def test_strict_mode_rejects_what_structural_tolerates(planner: Planner) -> None:
    doc = bundle(patient("a"), {**condition("oi-type-3", pid="a"), "notAnElement": 1})
    assert next(plan_bundle(doc, planner, AT)).kind == "careplan"
    strict = next(plan_bundle(doc, planner, AT, strict=True))
    assert strict.kind == "error"
    assert "fails FHIR R4 validation" in strict.resource["issue"][0]["diagnostics"]


def test_strict_mode_ignores_cross_version_extensions(planner: Planner) -> None:
    r5 = {
        "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-Condition.onsetAge",
        "valueInteger64": "5",
    }
    local = {"url": "http://hospital.example.org/ext", "valueInteger64": "5"}
    accepted = bundle(patient("a"), {**condition("oi-type-3", pid="a"), "extension": [r5]})
    outcome = next(plan_bundle(accepted, planner, AT, strict=True))
    assert outcome.kind == "careplan"
    rejected = bundle(patient("a"), {**condition("oi-type-3", pid="a"), "extension": [local]})
    assert next(plan_bundle(rejected, planner, AT, strict=True)).kind == "error"
