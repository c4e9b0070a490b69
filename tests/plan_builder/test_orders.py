"""Order-time checks: drug groups by code and by name, routes, rods, one card per order."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.plan_builder import Planner
from services.plan_builder.orders import OrderChecker
from tests.fhir_builders import PROC, condition, medication, observation, patient, service_request

AT = date(2026, 6, 1)
CHILD = patient(birth="2016-01-01", gender="male")


def _keys(
    planner: Planner,
    checker: OrderChecker,
    orders: list[dict[str, Any]],
    *record: dict[str, Any],
    pat: dict[str, Any] = CHILD,
) -> list[str]:
    facts = planner.facts(pat, list(record) or [condition("oi-type-4")], AT)
    return [f.key for f in checker.check(orders, facts)]


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Pamidronate disodium 3 MG/ML Injectable Solution", "order-bisphosphonate-supported"),
        ("ZOLEDRONIC ACID 5 mg/100 mL", "order-bisphosphonate-supported"),
        ("Alendronate sodium 70 MG / Cholecalciferol 2800 UNT Oral Tablet", "order-bisphosphonate-supported"),
        ("Calcitonin salmon 200 UNT/ACTUAT Nasal Spray", "order-no-or-mixed-evidence"),
        ("Calcium citrate 950 MG Oral Tablet", "order-no-or-mixed-evidence"),
        ("Calcitriol 0.25 MCG Oral Capsule", "order-no-or-mixed-evidence"),
        ("Vitamin D3 1000 unit tablet", "order-no-or-mixed-evidence"),
        ("Ascorbic acid 500 MG Oral Tablet", "order-no-or-mixed-evidence"),
        ("Magnesium oxide 400 MG Oral Tablet", "order-no-or-mixed-evidence"),
        ("Testosterone cypionate 200 MG/ML", "order-no-or-mixed-evidence"),
        ("Sodium fluoride 2.2 MG Oral Tablet", "order-no-or-mixed-evidence"),
        ("Denosumab 60 MG/ML Prefilled Syringe", "order-not-approved"),
        ("Teriparatide 20 MCG/DOSE Pen Injector", "order-not-approved"),
        ("Romosozumab-aqqg 105 MG/1.17ML Prefilled Syringe", "order-investigational"),
        ("Fresolimumab (anti-TGF-beta antibody) infusion", "order-investigational"),
    ],
)
def test_drug_groups_by_name(name: str, key: str, planner: Planner, checker: OrderChecker) -> None:
    assert _keys(planner, checker, [medication(name, status="draft")]) == [key]


@pytest.mark.parametrize(
    "order",
    [
        medication("Sodium fluoride 1.1 % Dental Gel", status="draft"),
        medication(
            "Sodium fluoride 0.2% solution", status="draft", dosageInstruction=[{"route": {"text": "dental"}}]
        ),
        medication(
            "Sodium fluoride 0.2% solution",
            status="draft",
            dosageInstruction=[{"route": {"coding": [{"display": "Topical route"}]}}],
        ),
        medication("Amoxicillin 500 MG Oral Capsule", status="draft"),
        medication("Calcifediolx tablet", status="draft"),  # word boundaries: not calcifediol
        {
            "resourceType": "MedicationOrder",
            "id": "dstu2",
            "medicationCodeableConcept": {"text": "denosumab"},
        },
    ],
)
def test_orders_without_a_card(order: dict[str, Any], planner: Planner, checker: OrderChecker) -> None:
    assert _keys(planner, checker, [order]) == []


def test_rxnorm_code_without_name(planner: Planner, checker: OrderChecker) -> None:
    order = medication("x", status="draft")
    order["medicationCodeableConcept"] = {
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "993452"}]
    }
    assert _keys(planner, checker, [order]) == ["order-not-approved"]


def test_service_request_gene_and_cell_therapy(planner: Planner, checker: OrderChecker) -> None:
    orders = [
        service_request("COL1A1 gene therapy (experimental)"),
        service_request("Mesenchymal stem cell transplantation"),
    ]
    assert _keys(planner, checker, orders) == ["order-investigational", "order-investigational"]


def test_no_cards_for_a_patient_without_oi(planner: Planner, checker: OrderChecker) -> None:
    assert _keys(planner, checker, [medication("denosumab")], condition("fracture-femur", "2026-05-01")) == []


TELESCOPING = service_request("Femoral osteotomy with Fassier-Duval rod")
NON_TELESCOPING = service_request("Femoral osteotomy", code=(PROC, "rod-non-telescoping"))


@pytest.mark.parametrize(
    ("order", "pat", "record", "expected"),
    [
        (TELESCOPING, patient(birth="2011-01-01", gender="female"), [condition("oi-type-3")], ["warning"]),
        (TELESCOPING, CHILD, [condition("oi-type-3")], []),
        (TELESCOPING, patient(birth=None), [condition("oi-type-3")], []),  # maturity unknown: no card
        (
            NON_TELESCOPING,
            CHILD,
            [condition("oi-type-3"), observation("medullary-canal-diameter", 4.0)],
            ["info"],
        ),
        (NON_TELESCOPING, CHILD, [condition("oi-type-3")], []),  # size unknown: no card
        (NON_TELESCOPING, CHILD, [condition("oi-type-3"), observation("medullary-canal-diameter", 3.0)], []),
        (
            NON_TELESCOPING,
            CHILD,
            [condition("oi-type-3"), condition("bowing"), observation("medullary-canal-diameter", 4.0)],
            [],
        ),
    ],
)
def test_rod_type_mismatch(
    order: dict[str, Any],
    pat: dict[str, Any],
    record: list[dict[str, Any]],
    expected: list[str],
    planner: Planner,
    checker: OrderChecker,
) -> None:
    facts = planner.facts(pat, record, AT)
    findings = checker.check([order], facts)
    assert [f.indicator for f in findings] == expected
    assert all(f.key == "order-rod-type-mismatch" for f in findings)


def test_rod_size_at_the_ordered_site(planner: Planner, checker: OrderChecker) -> None:
    femur = {"coding": [{"system": "http://snomed.info/sct", "code": "femur-site"}]}
    record = [
        condition("oi-type-3"),
        observation("medullary-canal-diameter", 4.5, bodySite=femur),
        observation("medullary-canal-diameter", 2.0, bodySite={"text": "tibia"}),
    ]
    facts = planner.facts(CHILD, record, AT)
    at_femur = {**NON_TELESCOPING, "bodySite": [femur]}
    assert [f.indicator for f in checker.check([at_femur], facts)] == ["info"]
    assert checker.check([NON_TELESCOPING], facts) == []  # no site: the smallest (2.0 mm) counts


def test_rod_site_matches_whatever_the_order_of_codings(planner: Planner, checker: OrderChecker) -> None:
    """FHIR: coding order carries no meaning; a local coding first must not hide the bone."""
    snomed = {"system": "http://snomed.info/sct", "code": "femur-site"}
    local = {"system": "urn:oid:2.16.840.1.113883.19.5.99.6", "code": "L-FEMUR"}
    record = [
        condition("oi-type-3"),
        observation("medullary-canal-diameter", 4.5, bodySite={"coding": [local, snomed]}),
        observation("medullary-canal-diameter", 2.0, bodySite={"text": "tibia"}),
    ]
    facts = planner.facts(CHILD, record, AT)
    at_femur = {**NON_TELESCOPING, "bodySite": [{"coding": [snomed]}]}
    assert [f.indicator for f in checker.check([at_femur], facts)] == ["info"]
