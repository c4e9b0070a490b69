"""Drug groups by the names real clients send: RxNorm, US (USAN) and INN names, salts, brands.

The RxNorm rows are those the CDS Hooks Sandbox sends (shared/reference/rxnorm-sandbox-subset.tsv,
copied to tests/data/rxnorm-sandbox-subset.tsv): each must land in its group by name alone and,
for the bisphosphonates, by code alone.
"""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import pytest

from services.plan_builder import Planner
from services.plan_builder.orders import OrderChecker
from tests.fhir_builders import condition as c
from tests.fhir_builders import medication as m
from tests.fhir_builders import patient

AT = date(2026, 6, 1)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
TSV = Path(__file__).parents[1] / "data" / "rxnorm-sandbox-subset.tsv"
ROWS = list(csv.DictReader(TSV.read_text().splitlines(), delimiter="\t"))

# per group: (name as sent, kind of name)
NAMES = {
    "drug-bisphosphonate": [
        ("Alendronic acid 35 MG Oral Tablet", "RxNorm"),
        ("alendronate sodium 70 mg tablet", "US name, salt"),
        ("Fosamax 70 mg", "brand"),
        ("ibandronic acid 150 MG Oral Tablet", "RxNorm / INN"),
        ("Boniva", "brand"),
        ("Clodronic Acid 400 MG Oral Capsule", "RxNorm / INN"),
        ("risedronate sodium 35 MG Oral Tablet [Actonel]", "RxNorm, salt, brand"),
        ("Atelvia", "brand"),
        ("pamidronate disodium 90 mg/10 mL", "US name, salt"),
        ("pamidronic acid", "INN"),
        ("Aredia", "brand"),
        ("zoledronic acid 5 mg/100 mL", "INN / US name"),
        ("Reclast", "brand"),
        ("Zometa 4 mg", "brand"),
        ("Etidronate Disodium 400 MG Oral Tablet", "RxNorm, salt"),
        ("Didronel", "brand"),
        ("tiludronic acid 200 MG Oral Tablet [Skelid]", "RxNorm, brand"),
        ("neridronic acid", "INN"),
    ],
    "drug-not-approved": [
        ("denosumab 60 MG/ML Prefilled Syringe", "INN / US name"),
        ("Prolia", "brand"),
        ("teriparatide 20 mcg", "INN / US name"),
        ("Forteo pen", "brand"),
    ],
    "drug-investigational": [
        ("romosozumab-aqqg 105 mg/1.17 mL", "US name"),
        ("Evenity", "brand"),
        ("setrusumab", "INN only (sclerostin antibody)"),
        ("blosozumab", "INN only (sclerostin antibody)"),
        ("fresolimumab", "INN"),
    ],
    "drug-calcium": [
        ("Calcium Carbonate 420 MG Chewable Tablet", "RxNorm"),
        ("Biotin / Calcium Carbonate Pill", "RxNorm combination"),
        ("calcium citrate", "US name"),
    ],
    "drug-vitamin-d": [
        ("Cholecalciferol 2000 UNT Oral Capsule", "RxNorm"),
        ("Calcitriol 0.00025 MG", "RxNorm"),
    ],
    "drug-sex-hormone": [("Estradiol 1.5 MG", "RxNorm"), ("Methyltestosterone 10 MG Oral Tablet", "RxNorm")],
    "drug-sodium-fluoride": [("Sodium Fluoride 1 MG Oral Tablet", "RxNorm")],
    "drug-magnesium-oxide": [("Magnesium Oxide 400 MG Oral Capsule", "RxNorm")],
    "drug-vitamin-c": [("Ascorbic Acid 500 MG Extended Release Oral Tablet", "RxNorm")],
}
NOT_A_DRUG_GROUP = [
    "Rosuvastatin calcium 20 MG Oral Tablet [Crestor]",  # a statin's calcium salt, not calcium
    "paracetamol 500 mg",
]
GROUP_OF_WORD = {
    "alendron": "drug-bisphosphonate",
    "ibandron": "drug-bisphosphonate",
    "clodron": "drug-bisphosphonate",
    "etidron": "drug-bisphosphonate",
    "risedron": "drug-bisphosphonate",
    "tiludron": "drug-bisphosphonate",
    "ascorbic": "drug-vitamin-c",
    "calcitriol": "drug-vitamin-d",
    "cholecalciferol": "drug-vitamin-d",
    "ergocalciferol": "drug-vitamin-d",
    "vitamin d": "drug-vitamin-d",
    "calcium": "drug-calcium",
    "estradiol": "drug-sex-hormone",
    "testosterone": "drug-sex-hormone",
    "fluoride": "drug-sodium-fluoride",
    "magnesium oxide": "drug-magnesium-oxide",
}


def _group(
    checker: OrderChecker, planner: Planner, text: str, coding: dict[str, str] | None = None
) -> str | None:
    facts = planner.facts(patient(birth="2018-01-01"), [c("oi-type-3")], AT)
    concept: dict[str, object] = {"coding": [coding]} if coding else {"text": text}
    order = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": concept,
    }
    group = checker.order_facts(order, facts)["drugGroup"]
    return str(group) if group else None


@pytest.mark.parametrize(
    ("group", "name", "kind"),
    [(g, n, k) for g, names in NAMES.items() for n, k in names],
    ids=lambda x: str(x)[:30],
)
def test_drug_group_by_every_kind_of_name(
    group: str, name: str, kind: str, checker: OrderChecker, planner: Planner
) -> None:
    assert _group(checker, planner, name) == group, kind


@pytest.mark.parametrize("name", NOT_A_DRUG_GROUP)
def test_names_that_only_look_like_a_group_are_not_one(
    name: str, checker: OrderChecker, planner: Planner
) -> None:
    assert _group(checker, planner, name) is None


def _expected(row: dict[str, str]) -> str | None:
    name = row["name"].lower()
    if "rosuvastatin" in name:
        return None
    if row["group_word"] == "calcium" and "sodium fluoride" in name:
        return "drug-sodium-fluoride"  # a combination takes the first group in the contract's order
    if row["group_word"] == "magnesium oxide" and "vitamin b6" in name and "melatonin" not in name:
        return "drug-magnesium-oxide"
    if "alendron" in name:
        return "drug-bisphosphonate"  # Fosamax Plus D also holds cholecalciferol
    if row["group_word"] == "calcium" and name.startswith("tricalcium"):
        return None  # the contract's calcium is an ingredient that starts with "calcium"
    if "ferrous" in name or "vitamin e" in name:
        return GROUP_OF_WORD[row["group_word"]]
    if row["group_word"] in ("ascorbic",):
        return "drug-vitamin-c"
    if row["group_word"] in ("vitamin d", "cholecalciferol") and ("vitamin a" in name or "calcium" in name):
        return "drug-calcium" if "calcium" in name else "drug-vitamin-d"
    return GROUP_OF_WORD[row["group_word"]]


@pytest.mark.parametrize("row", ROWS, ids=[r["rxcui"] for r in ROWS])
def test_every_rxnorm_row_the_sandbox_sends_lands_in_its_group(
    row: dict[str, str], checker: OrderChecker, planner: Planner
) -> None:
    assert _group(checker, planner, row["name"]) == _expected(row), row["name"]


@pytest.mark.parametrize("row", [r for r in ROWS if GROUP_OF_WORD[r["group_word"]] == "drug-bisphosphonate"])
def test_bisphosphonates_by_rxnorm_code_alone(
    row: dict[str, str], checker: OrderChecker, planner: Planner
) -> None:
    coding = {"system": RXNORM, "code": row["rxcui"]}
    assert _group(checker, planner, "", coding) == "drug-bisphosphonate", row["name"]


def test_a_child_on_alendronic_acid_is_told_to_continue(planner: Planner) -> None:
    """Safety defect (issue 19): RxNorm's "Alendronic acid" was not a bisphosphonate."""
    result = planner.plan(
        patient(birth="2018-01-01"), [c("oi-type-3"), m("Alendronic acid 35 MG Oral Tablet")], AT
    )
    assert "bisphosphonate-continue" in result.keys
    assert "bisphosphonate-therapy" not in result.keys
