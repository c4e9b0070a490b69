"""The generic engine: memoized outcomes equal fhirpathpy's, and knowledge is data."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import fhirpathpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.plan_builder import Knowledge, Planner, load_knowledge
from services.plan_builder.engine import PlanCompileError
from services.plan_builder.errors import KnowledgeError
from services.plan_builder.knowledge import default_profiles_dir
from tests.fhir_builders import condition as c
from tests.fhir_builders import patient

TRI = st.sampled_from([True, False, None])
VECTORS = st.fixed_dictionaries(
    {
        "oi": st.booleans(),
        "severity": st.sampled_from(["mild", "moderate", "severe", None]),
        "ageLow": st.none(),
        "ageHigh": st.none(),
        "ageUnder18": TRI,
        "skeletallyImmature": TRI,
        "youngAdult": TRI,
        "recentLongBoneFracture": TRI,
        "recurrentLongBoneFractures": TRI,
        "longBoneBowing": st.booleans(),
        "spineDeformity": st.booleans(),
        "basilarInvagination": st.booleans(),
        "vertebralFracture": st.booleans(),
        "functionalStatus": st.sampled_from(
            ["independent", "with-aids", "wheelchair", "non-ambulatory", None]
        ),
        "activeBisphosphonate": TRI,
        "boneSize": st.sampled_from(["small", "fits", "unknown"]),
        "missingFacts": st.booleans(),
    }
)


def _oracle(expression: str, vector: dict[str, Any]) -> bool | None:
    value = fhirpathpy.evaluate({}, expression, {"facts": vector})
    return value[0] if value else None


@settings(max_examples=300, deadline=None)
@given(vector=VECTORS)
def test_memoized_outcome_equals_fresh_fhirpath_evaluation(
    vector: dict[str, Any], knowledge: Knowledge
) -> None:
    plan = knowledge.management
    outcome = plan.evaluate({"facts": vector})
    again = plan.evaluate({"facts": vector})  # second call is a cache hit
    expected = tuple(_oracle(a.expression, vector) for a in plan.actions)
    assert outcome == expected == again


def _copy_profiles(tmp_path: Path) -> Path:
    target = tmp_path / "profiles"
    shutil.copytree(default_profiles_dir(), target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    return target


def _edit(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_new_recommendation_needs_only_knowledge_files(tmp_path: Path) -> None:
    """Add a key by editing fhir_profiles/ copies only; the engine plans it with no code change."""
    profiles = _copy_profiles(tmp_path)
    key = "dental-review"

    def add_code(cs: dict[str, Any]) -> None:
        cs["concept"].append({"code": key, "display": "Dental review", "definition": "test key"})

    def add_action(pd: dict[str, Any]) -> None:
        pd["action"].append(
            {
                "id": key,
                "title": "Dental review",
                "description": "Refer for dental review.",
                "code": [
                    {
                        "coding": [
                            {"system": "https://oi-cds.example.org/CodeSystem/oi-recommendation", "code": key}
                        ]
                    }
                ],
                "condition": [
                    {
                        "kind": "applicability",
                        "expression": {
                            "language": "text/fhirpath",
                            "expression": "%facts.oi and %facts.ageUnder18 and %facts.spineDeformity.not()",
                        },
                    }
                ],
                "documentation": [{"type": "citation", "display": "test source"}],
            }
        )

    _edit(profiles / "CodeSystem-oi-recommendation.json", add_code)
    _edit(profiles / "PlanDefinition-oi-management.json", add_action)
    planner = Planner(load_knowledge(profiles))
    result = planner.plan(patient(birth="2016-01-01"), [c("oi-type-1")], date(2026, 6, 1))
    assert key in result.keys
    assert (
        key
        not in Planner(load_knowledge())
        .plan(patient(birth="2016-01-01"), [c("oi-type-1")], date(2026, 6, 1))
        .keys
    )


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("%facts.oi and %facts.notAFact", "not a known fact"),
        ("%secret.oi", "unknown variable"),
        ("%facts.oi and (", "does not compile"),
    ],
)
def test_bad_conditions_stop_loading(tmp_path: Path, expression: str, message: str) -> None:
    profiles = _copy_profiles(tmp_path)
    _edit(
        profiles / "PlanDefinition-oi-management.json",
        lambda pd: pd["action"][0]["condition"][0]["expression"].update(expression=expression),
    )
    with pytest.raises(PlanCompileError, match=message):
        load_knowledge(profiles)


def test_unknown_key_and_dangling_definition_stop_loading(tmp_path: Path) -> None:
    profiles = _copy_profiles(tmp_path)
    _edit(
        profiles / "PlanDefinition-oi-management.json",
        lambda pd: pd["action"][0]["code"][0]["coding"][0].update(code="nope"),
    )
    with pytest.raises(KnowledgeError, match="nope"):
        load_knowledge(profiles)
    profiles = _copy_profiles(tmp_path / "again")
    (profiles / "ActivityDefinition-fracture-care.json").unlink()
    with pytest.raises(PlanCompileError, match="does not resolve"):
        load_knowledge(profiles)


def test_unreadable_artifact_stops_loading(tmp_path: Path) -> None:
    profiles = _copy_profiles(tmp_path)
    (profiles / "ValueSet-broken.json").write_text("{not json")
    with pytest.raises(KnowledgeError, match=r"ValueSet-broken\.json"):
        load_knowledge(profiles)


def test_changing_a_value_set_changes_recognition(tmp_path: Path) -> None:
    """Codes are matched through fhir_profiles/, not through code lists in Python."""
    profiles = _copy_profiles(tmp_path)
    local = {"system": "http://hospital.example.org/problems", "code": "OI-3"}
    _edit(
        profiles / "ValueSet-oi-type-iii.json",
        lambda vs: vs["compose"]["include"].append(
            {"system": local["system"], "concept": [{"code": local["code"]}]}
        ),
    )
    condition = c("oi-type-3")
    condition["code"] = {"coding": [local]}
    assert Planner(load_knowledge()).plan(patient(), [condition], date(2026, 6, 1)).careplan is None
    keys = Planner(load_knowledge(profiles)).plan(patient(), [condition], date(2026, 6, 1)).keys
    assert "rehabilitation" in keys  # recognised as OI type III -> severe
