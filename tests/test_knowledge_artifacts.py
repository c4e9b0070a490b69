"""fhir_profiles/: valid FHIR R4 (R4B models), complete against the contract, examples round-trip."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from services.plan_builder import Knowledge, Planner
from services.plan_builder.batch import plan_bundle
from services.plan_builder.conformance import check_profile
from services.plan_builder.knowledge import default_profiles_dir
from tests.conftest import AT

PROFILES = default_profiles_dir()
FILES = sorted(PROFILES.glob("*.json")) + sorted((PROFILES / "examples").glob("*.json"))
CARE_PLAN_KEYS = {
    "activity-guidance-mild",
    "fracture-care",
    "rehabilitation",
    "orthopedic-evaluation",
    "mobility-support",
    "bisphosphonate-therapy",
    "bisphosphonate-continue",
    "rod-osteotomy-bowing",
    "deformity-correction-child",
    "deformity-correction-young-adult",
    "prophylactic-rod-telescoping",
    "prophylactic-rod-non-telescoping",
    "spine-deformity",
    "basilar-invagination",
    "spinal-fracture",
    "missing-facts",
}
ORDER_KEYS = {
    "order-bisphosphonate-supported",
    "order-no-or-mixed-evidence",
    "order-not-approved",
    "order-investigational",
    "order-rod-type-mismatch",
}


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_artifact_is_valid_fhir_and_round_trips(path: Path) -> None:
    data = json.loads(path.read_text())
    if path.parent == PROFILES:
        assert path.name == f"{data['resourceType']}-{data['id']}.json", "artifacts are named Type-id.json"
    model = get_fhir_model_class(data["resourceType"]).model_validate(data)
    assert model.model_dump(mode="json", exclude_none=True) == data


def test_recommendation_codesystem_has_every_contract_key(knowledge: Knowledge) -> None:
    codes = knowledge.recommendation_codes
    kinds: dict[str, set[str]] = {}
    for code, concept in codes.items():
        kind = next(p["valueCode"] for p in concept["property"] if p["code"] == "kind")
        kinds.setdefault(kind, set()).add(code)
        assert concept.get("display"), code
        assert concept.get("definition"), code
    assert kinds["care-plan"] == CARE_PLAN_KEYS
    assert kinds["order-time"] == ORDER_KEYS
    assert kinds["card-topic"] == {"careplan-summary"}


def test_management_plan_has_one_cited_action_per_care_plan_key(knowledge: Knowledge) -> None:
    plan = knowledge.get("PlanDefinition", "oi-management")
    assert plan is not None
    assert re.fullmatch(r"\d+\.\d+\.\d+", plan["version"])
    assert "Clinical decision support" in plan["usage"]
    assert any("project source text" in a.get("label", "") for a in plan["relatedArtifact"])
    keys = [a["code"][0]["coding"][0]["code"] for a in plan["action"]]
    assert sorted(keys) == sorted(CARE_PLAN_KEYS)
    for action in plan["action"]:
        assert action["condition"][0]["kind"] == "applicability"
        assert action["condition"][0]["expression"]["language"] == "text/fhirpath"
        assert action["documentation"][0]["citation"].startswith(
            "OI management summary (project source text)"
        )
        definition = knowledge.resources[action["definitionCanonical"]]
        assert definition["code"]["coding"][0]["code"] == action["code"][0]["coding"][0]["code"]
        assert definition["relatedArtifact"], action["id"]


def test_order_plan_covers_every_order_key(knowledge: Knowledge) -> None:
    assert {a.key for a in knowledge.order_checks.actions} == ORDER_KEYS
    assert all(a.indicator in {"info", "warning"} for a in knowledge.order_checks.actions)


def test_not_oi_code_is_left_out(knowledge: Knowledge) -> None:
    # 254112001 (osteoporosis with pseudoglioma) is in the CMS eCQM OI value set but is not OI
    assert knowledge.terminology.lookup("http://snomed.info/sct", "254112001") == frozenset()
    assert "oi-condition" in knowledge.terminology.lookup("http://snomed.info/sct", "78314001")


def test_examples_are_what_the_engine_produces(planner: Planner, knowledge: Knowledge) -> None:
    """The example CarePlans are regenerated from the example Bundle: they never go stale."""
    bundle = json.loads((PROFILES / "examples" / "Bundle-example-patients.json").read_text())
    produced = {o.patient_ref: o.resource for o in plan_bundle(bundle, planner, AT) if o.kind == "careplan"}
    examples = sorted((PROFILES / "examples").glob("CarePlan-*.json"))
    assert len(examples) == len(produced) == 2
    profile = knowledge.get("StructureDefinition", "oi-careplan")
    assert profile is not None
    for path in examples:
        example: dict[str, Any] = json.loads(path.read_text())
        assert produced[example["subject"]["reference"]] == example, path.name
        assert check_profile(example, profile, knowledge.terminology) == []
