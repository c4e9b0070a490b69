"""The shapes real EHRs send give exactly the recommendations of the clean form (library face).

Every shape of tests/shapes.py is applied to every shared vignette, record and draft orders
alike; the expected keys must not change. The hook face runs the same table in
tests/cds_hooks/test_ehr_shapes_http.py.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.plan_builder import PlanInputError, Planner
from services.plan_builder.bundle import split_bundle
from services.plan_builder.medications import index_medications
from services.plan_builder.orders import OrderChecker
from tests.conftest import load_vignettes, vignette_bundle
from tests.fhir_builders import FORMULARY, bundle, patient
from tests.fhir_builders import condition as c
from tests.fhir_builders import medication as m
from tests.shapes import LOCAL, SHAPES

VIGNETTES = load_vignettes()
AT = date(2026, 6, 1)


def _is_draft(resource: dict[str, Any]) -> bool:
    return any(t.get("code") == "draft-order" for t in resource.get("meta", {}).get("tag", []))


def keys_for(vignette: dict[str, Any], shape: str, planner: Planner, checker: OrderChecker) -> set[str]:
    raw = vignette_bundle(vignette["id"])
    draft_ids = [e["resource"]["id"] for e in raw["entry"] if _is_draft(e["resource"])]
    shaped = SHAPES[shape](raw) if shape != "clean" else raw
    drafts_by_id = {e["resource"].get("id"): e["resource"] for e in shaped["entry"]}
    drafts = [drafts_by_id[i] for i in draft_ids]
    shaped["entry"] = [e for e in shaped["entry"] if e["resource"].get("id") not in draft_ids]
    group = split_bundle(shaped).groups[0]
    at = date.fromisoformat(vignette["evaluation_date"])
    result = planner.plan(group.patient, group.resources, at, patient_ref=group.ref, validate=True)
    if vignette["hook"] == "patient-view":
        return set(result.keys)
    selections = vignette.get("selections")
    orders = [drafts[i] for i in selections] if selections is not None else drafts
    medications = index_medications(e["resource"] for e in shaped["entry"])
    return {f.key for f in checker.check(orders, result.facts, medications)}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_shape_keeps_the_recommendations(
    vignette: dict[str, Any], shape: str, planner: Planner, checker: OrderChecker
) -> None:
    keys = keys_for(vignette, shape, planner, checker)
    assert set(vignette["expected_keys"]) <= keys, (shape, vignette["note"])
    assert not set(vignette["expected_absent"]) & keys, (shape, vignette["note"])
    assert keys == keys_for(vignette, "clean", planner, checker)


def _status(system: str, code: str, local: str) -> dict[str, Any]:
    # the local coding comes first: FHIR says coding order carries no meaning
    return {"coding": [{"system": LOCAL, "code": local}, {"system": system, "code": code}]}


def test_entered_in_error_fracture_with_a_local_coding_first_is_not_counted(planner: Planner) -> None:
    """Safety defect (issue 17): only the first coding of a status was read."""
    femur = c("fracture-femur", "2026-05-20")
    femur["verificationStatus"] = _status(
        "http://terminology.hl7.org/CodeSystem/condition-ver-status", "entered-in-error", "ERR"
    )
    result = planner.plan(patient(birth="2018-01-01"), [c("oi-type-1"), femur], AT, validate=True)
    assert result.careplan is not None
    assert "fracture-care" not in result.keys
    assert result.facts.recent_long_bone_fracture is False
    assert not any(f.ref == f"Condition/{femur['id']}" for f in result.facts.fractures)


def test_oi_with_a_local_status_coding_first_is_still_oi(planner: Planner) -> None:
    oi = c("oi-type-3")
    oi["clinicalStatus"] = _status("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "A")
    oi["verificationStatus"] = _status(
        "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "C"
    )
    result = planner.plan(patient(birth="2018-01-01"), [oi], AT, validate=True)
    assert result.facts.oi
    assert "bisphosphonate-therapy" in result.keys


def test_a_local_status_word_does_not_override_the_standard_coding(planner: Planner) -> None:
    oi = c("oi-type-3")
    oi["verificationStatus"] = _status(
        "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "refuted"
    )
    assert planner.plan(patient(birth="2018-01-01"), [oi], AT).facts.oi


def test_status_without_the_standard_system_is_read_from_a_known_code_or_text(planner: Planner) -> None:
    oi = c("oi-type-3", clinical=None, verification=None)
    oi["verificationStatus"] = {"coding": [{"system": LOCAL, "code": "X1"}], "text": "Entered-in-error"}
    assert not planner.plan(patient(birth="2018-01-01"), [oi], AT).facts.oi


def _contained(name: str, **extra: Any) -> dict[str, Any]:
    med = m(name, **extra)
    concept = med.pop("medicationCodeableConcept")
    med["contained"] = [{"resourceType": "Medication", "id": "med1", "code": concept}]
    med["medicationReference"] = {"reference": "#med1"}
    return med


@pytest.mark.parametrize("drug", ["pamidronate", "zoledronic acid"])
def test_a_child_on_a_bisphosphonate_in_a_contained_medication_is_told_to_continue(
    drug: str, planner: Planner
) -> None:
    """Safety defect (issue 17): a contained Medication was not read."""
    result = planner.plan(patient(birth="2018-01-01"), [c("oi-type-3"), _contained(drug)], AT, validate=True)
    assert "bisphosphonate-continue" in result.keys
    assert "bisphosphonate-therapy" not in result.keys


def test_a_medication_by_ingredient_only_is_recognised(planner: Planner) -> None:
    med = _contained("x")
    med["contained"][0] = {
        "resourceType": "Medication",
        "id": "med1",
        "code": {"coding": [{"system": FORMULARY, "code": "F-99"}]},
        "ingredient": [{"itemCodeableConcept": {"text": "pamidronate disodium"}}],
    }
    result = planner.plan(patient(birth="2018-01-01"), [c("oi-type-3"), med], AT, validate=True)
    assert "bisphosphonate-continue" in result.keys


@pytest.mark.parametrize(
    ("drug", "key"),
    [
        ("denosumab", "order-not-approved"),
        ("teriparatide", "order-not-approved"),
        ("romosozumab", "order-investigational"),
    ],
)
def test_a_drafted_drug_in_a_contained_medication_gets_its_card(
    drug: str, key: str, planner: Planner, checker: OrderChecker
) -> None:
    facts = planner.facts(patient(birth="2018-01-01"), [c("oi-type-3")], AT)
    draft = _contained(drug, status="draft")
    assert [f.key for f in checker.check([draft], facts)] == [key]


def test_a_medication_elsewhere_in_the_bundle_is_read_through_split_bundle(planner: Planner) -> None:
    med = m("alendronate")
    med.pop("medicationCodeableConcept")
    med["medicationReference"] = {"reference": "Medication/alen"}
    drug = {"resourceType": "Medication", "id": "alen", "code": {"text": "alendronate 70 mg"}}
    group = split_bundle(bundle(patient(birth="2018-01-01"), c("oi-type-3"), med, drug)).groups[0]
    assert drug in group.resources
    result = planner.plan(group.patient, group.resources, AT, validate=True)
    assert "bisphosphonate-continue" in result.keys


def test_a_malformed_contained_medication_is_a_clear_input_error(planner: Planner) -> None:
    med = _contained("pamidronate")
    med["contained"][0]["code"] = {"coding": "pamidronate"}
    with pytest.raises(PlanInputError, match=r"Medication\.code"):
        planner.plan(patient(birth="2018-01-01"), [c("oi-type-3"), med], AT, validate=True)


def test_a_needed_resource_with_a_modifier_extension_is_ignored_and_said_so(planner: Planner) -> None:
    femur = c("fracture-femur", "2026-05-20")
    femur["modifierExtension"] = [{"url": LOCAL + "/ext/negated", "valueBoolean": True}]
    result = planner.plan(patient(birth="2018-01-01"), [c("oi-type-1"), femur], AT, validate=True)
    assert "fracture-care" not in result.keys
    assert any("modifierExtension" in n and femur["id"] in n for n in result.notes)
    assert result.careplan is not None
    assert any("modifierExtension" in n["text"] for n in result.careplan["note"])


def test_a_patient_with_a_modifier_extension_is_not_planned(planner: Planner) -> None:
    person = patient(birth="2018-01-01")
    person["modifierExtension"] = [{"url": LOCAL + "/ext/animal", "valueBoolean": True}]
    with pytest.raises(PlanInputError, match="modifierExtension"):
        planner.plan(person, [c("oi-type-1")], AT)
