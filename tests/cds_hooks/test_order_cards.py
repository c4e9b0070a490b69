"""Order-time cards are rendered from the knowledge: what a card offers is data on the action."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.cds_hooks.cards import order_cards
from services.plan_builder import Planner, load_knowledge
from services.plan_builder.engine import PlanCompileError
from services.plan_builder.knowledge import default_profiles_dir
from services.plan_builder.orders import OrderChecker
from tests.cds_hooks.cds_rules import assert_conformant_response
from tests.fhir_builders import condition as c
from tests.fhir_builders import medication as m
from tests.fhir_builders import observation as o
from tests.fhir_builders import patient, service_request

AT = date(2026, 6, 1)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _cards(knowledge_dir: Path | None, drug: str) -> list[dict[str, Any]]:
    knowledge = load_knowledge(knowledge_dir)
    planner, checker = Planner(knowledge), OrderChecker(knowledge)
    result = planner.plan(patient(birth="2018-01-01"), [c("oi-type-3")], AT)
    findings = checker.check([m(drug, status="draft")], result.facts)
    cards = order_cards(findings, result.keys, "Patient/p1")
    assert_conformant_response({"cards": cards})
    return cards


def test_proposed_orders_carry_text_and_an_rxnorm_code() -> None:
    """Issue 19: a suggestion with only text cannot become an order in an EHR or the Sandbox."""
    (card,) = _cards(None, "denosumab")
    proposals = [
        a["resource"]
        for s in card["suggestions"]
        for a in s["actions"]
        if a["type"] == "create" and a["resource"]["resourceType"] == "MedicationRequest"
    ]
    assert len(proposals) == 2
    for resource in proposals:
        concept = resource["medicationCodeableConcept"]
        assert concept["text"] in ("pamidronate (intravenous)", "alendronate (oral)")
        assert [x["system"] for x in concept["coding"]] == [RXNORM]
        assert resource["status"] == "draft"
        assert "doseAndRate" not in resource["dosageInstruction"][0]
    assert card["overrideReasons"]
    assert any(a["type"] == "delete" for s in card["suggestions"] for a in s["actions"])


def test_a_new_order_check_in_the_knowledge_gets_a_complete_card(tmp_path: Path) -> None:
    """No Python change: an order check added to fhir_profiles/ gets override reasons, removal
    and alternatives from the data on its action."""
    folder = tmp_path / "fhir_profiles"
    shutil.copytree(default_profiles_dir(), folder, ignore=shutil.ignore_patterns("examples", "*.py"))
    codes_path = folder / "CodeSystem-oi-recommendation.json"
    codes = json.loads(codes_path.read_text())
    codes["concept"].append({"code": "order-calcitonin-test", "display": "Calcitonin drafted (test check)"})
    codes_path.write_text(json.dumps(codes))
    plan_path = folder / "PlanDefinition-oi-order-checks.json"
    plan = json.loads(plan_path.read_text())
    template = next(a for a in plan["action"] if a["id"] == "order-not-approved")
    action = json.loads(json.dumps(template))
    action["id"] = "order-calcitonin-test"
    action["title"] = "Calcitonin drafted (test check)"
    action["code"][0]["coding"][0].update(
        code="order-calcitonin-test", display="Calcitonin drafted (test check)"
    )
    action["condition"][0]["expression"]["expression"] = "%facts.oi and %order.drugGroup = 'drug-calcitonin'"
    plan["action"].insert(0, action)  # first applying action wins
    plan_path.write_text(json.dumps(plan))

    (card,) = _cards(folder, "calcitonin salmon nasal spray")
    assert card["source"]["topic"]["code"] == "order-calcitonin-test"
    assert card["indicator"] == "warning"
    assert {r["code"] for r in card["overrideReasons"]} == {
        x["code"] for x in json.loads((folder / "CodeSystem-oi-override-reason.json").read_text())["concept"]
    }
    labels = [s["label"] for s in card["suggestions"]]
    assert labels == ["Remove this draft order", "Propose IV pamidronate", "Propose oral alendronate"]
    # and without the alternatives' condition (bisphosphonate-therapy) they are not offered
    (card,) = _cards(None, "calcitonin salmon nasal spray")
    assert card["source"]["topic"]["code"] == "order-no-or-mixed-evidence"
    assert "overrideReasons" not in card


def test_alternatives_need_the_key_they_name() -> None:
    knowledge = load_knowledge()
    planner, checker = Planner(knowledge), OrderChecker(knowledge)
    mild = planner.plan(patient(birth="2018-01-01"), [c("oi-type-1")], AT)
    assert "bisphosphonate-therapy" not in mild.keys
    (card,) = order_cards(
        checker.check([m("denosumab", status="draft")], mild.facts), mild.keys, "Patient/p1"
    )
    assert [s["label"] for s in card["suggestions"]] == ["Remove this draft order"]


PROCEDURE = "https://oi-cds.example.org/CodeSystem/oi-procedure"
FEMUR = {"coding": [{"system": "http://snomed.info/sct", "code": "71341001"}], "text": "Femur"}


@pytest.mark.parametrize(
    ("birth", "drafted", "record", "proposed"),
    [
        ("2011-01-01", "Femoral osteotomy with Fassier-Duval rod", [], "rod-non-telescoping"),
        (
            "2018-01-01",
            "Femoral osteotomy with Rush nail",
            [o("medullary-canal-diameter", 4.0)],
            "rod-telescoping",
        ),
    ],
)
def test_a_mismatched_rod_is_replaced_by_the_other_at_the_same_site(
    birth: str, drafted: str, record: list[dict[str, Any]], proposed: str
) -> None:
    """The rod the card proposes is an ActivityDefinition on the action (replacesOrder): one
    suggestion removes the draft and drafts the other rod type at the drafted bodySite."""
    knowledge = load_knowledge()
    planner, checker = Planner(knowledge), OrderChecker(knowledge)
    result = planner.plan(patient(birth=birth), [c("oi-type-3"), *record], AT)
    order = service_request(drafted, bodySite=[FEMUR])
    (card,) = order_cards(checker.check([order], result.facts), result.keys, "Patient/p1")
    assert_conformant_response({"cards": [card]})
    assert card["source"]["topic"]["code"] == "order-rod-type-mismatch"
    (suggestion,) = card["suggestions"]
    assert suggestion["isRecommended"] is True  # the contract's advice: the other rod type
    remove, create = suggestion["actions"]
    assert remove == {
        "type": "delete",
        "description": f"Remove the draft ServiceRequest/{order['id']}",
        "resourceId": f"ServiceRequest/{order['id']}",
    }
    resource = create["resource"]
    assert create["type"] == "create"
    assert resource["resourceType"] == "ServiceRequest"
    assert [(x["system"], x["code"]) for x in resource["code"]["coding"]] == [(PROCEDURE, proposed)]
    assert resource["bodySite"] == [FEMUR]
    assert resource["subject"] == {"reference": "Patient/p1"}
    assert resource["instantiatesCanonical"] == [
        f"https://oi-cds.example.org/ActivityDefinition/propose-{proposed}|1.0.0"
    ]


@pytest.mark.parametrize(
    ("drug", "recommended"),
    [
        ("denosumab", "Remove this draft order"),  # not approved for OI
        ("romosozumab", "Remove this draft order"),  # investigational
        ("calcitonin", None),  # no or mixed evidence: never removed, no bisphosphonate preferred
    ],
)
def test_the_preferred_suggestion_is_recommended(drug: str, recommended: str | None) -> None:
    (card,) = _cards(None, drug)
    marked = [s["label"] for s in card["suggestions"] if s.get("isRecommended")]
    assert marked == ([recommended] if recommended else [])
    assert len(card["suggestions"]) >= 2  # the bisphosphonate suggestions stay offered


def test_a_preferred_suggestion_the_card_does_not_offer_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "k"
    shutil.copytree(default_profiles_dir(), folder)
    path = folder / "PlanDefinition-oi-order-checks.json"
    plan = json.loads(path.read_text())
    action = next(a for a in plan["action"] if a["id"] == "order-not-approved")
    pref = next(e for e in action["extension"] if e["url"].endswith("cds-card-preferred-suggestion"))
    pref["valueCode"] = "propose-rod-telescoping"
    path.write_text(json.dumps(plan))
    with pytest.raises(
        PlanCompileError, match="preferred suggestion 'propose-rod-telescoping' is not one the card offers"
    ):
        load_knowledge(folder)
