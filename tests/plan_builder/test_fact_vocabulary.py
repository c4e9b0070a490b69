"""The fact vocabulary: every fact has a spec with a reader, a meaning and a row here.

A fact added to services/plan_builder/facts/vocabulary.py without a row in ROWS fails
test_every_fact_has_a_row; one without a reader, a description or known ValueSets fails
test_every_spec_is_complete.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.plan_builder import Planner, load_knowledge
from services.plan_builder.facts import VOCABULARY, FactSpec
from tests.conftest import load_vignettes, vignette_bundle
from tests.fhir_builders import condition as c
from tests.fhir_builders import medication as m
from tests.fhir_builders import observation as o
from tests.fhir_builders import patient

AT = date(2026, 6, 1)
CHILD = "2018-01-01"
OI = c("oi-type-3")
TYPES = {
    "boolean": (bool,),
    "boolean-or-unknown": (bool, type(None)),
    "code": (str, type(None)),
    "integer": (int, type(None)),
}

# (fact, birth date, record without the Patient, expected value): one row at least per fact,
# each with a value other than the one a patient with no record gets where one exists.
ROWS: list[tuple[str, str | None, list[dict[str, Any]], Any]] = [
    ("oi", CHILD, [OI], True),
    ("oi", CHILD, [c("oi-type-3", verification="provisional")], False),
    ("severity", CHILD, [c("oi-type-1")], "mild"),
    ("severity", CHILD, [c("oi")], None),
    ("ageLow", "2015", [OI], 10),
    ("ageHigh", "2015", [OI], 11),
    ("ageUnder18", CHILD, [OI], True),
    ("ageUnder18", "2008", [OI], None),
    ("skeletallyImmature", CHILD, [OI], True),
    ("skeletallyImmature", CHILD, [OI, o("skeletal-maturity", "mature")], False),
    ("youngAdult", "2000-01-01", [OI], True),
    ("youngAdult", CHILD, [OI], False),
    ("recentLongBoneFracture", CHILD, [OI, c("fracture-femur", "2026-05-20")], True),
    ("recentLongBoneFracture", CHILD, [OI, c("fracture-femur", "2026-01-20")], False),
    (
        "recurrentLongBoneFractures",
        CHILD,
        [OI, c("fracture-femur", "2026-01-20"), c("fracture-tibia", "2025-09-01")],
        True,
    ),
    ("recurrentLongBoneFractures", CHILD, [OI, c("fracture-femur", "2026-01-20")], False),
    ("longBoneBowing", CHILD, [OI, c("bowing")], True),
    ("spineDeformity", CHILD, [OI, c("scoliosis")], True),
    ("basilarInvagination", CHILD, [OI, c("basilar-invagination")], True),
    ("vertebralFracture", CHILD, [OI, c("fracture-vertebra")], True),
    ("functionalStatus", CHILD, [OI, o("ambulatory-status", "wheelchair")], "wheelchair"),
    ("functionalStatus", CHILD, [OI, o("ambulatory-status", "wheelchair", "2023-01-01")], None),
    ("activeBisphosphonate", CHILD, [OI, m("alendronate")], True),
    ("activeBisphosphonate", CHILD, [OI, m("alendronate", "stopped")], False),
    ("boneSize", CHILD, [OI, o("medullary-canal-diameter", 2.5)], "small"),
    ("boneSize", CHILD, [OI, o("medullary-canal-diameter", 6.0)], "fits"),
    ("boneSize", CHILD, [OI], "unknown"),
    ("missingFacts", None, [OI], True),
    ("missingFacts", CHILD, [OI], False),
]


@pytest.mark.parametrize(("name", "birth", "record", "expected"), ROWS)
def test_fact_row(name: str, birth: str | None, record: list[dict[str, Any]], expected: Any) -> None:
    facts = Planner(load_knowledge()).facts(patient(birth=birth), record, AT)
    assert facts.vector()[name] == expected
    assert isinstance(facts.describe(name), str)
    assert facts.describe(name)


def test_every_fact_has_a_row() -> None:
    assert {row[0] for row in ROWS} == VOCABULARY.names


@pytest.mark.parametrize("spec", VOCABULARY.specs.values(), ids=lambda s: s.name)
def test_every_spec_is_complete(spec: FactSpec) -> None:
    knowledge = load_knowledge()
    value_sets = {v["id"] for v in knowledge.by_type("ValueSet")}
    assert callable(spec.reader)
    assert callable(spec.describe)
    assert spec.type in TYPES
    assert len(spec.description) > 20
    assert set(spec.reads) <= value_sets, "a fact reads only ValueSets of the knowledge"
    if spec.observation is not None:
        assert spec.observation.question in spec.reads
        assert spec.observation.answers is None or spec.observation.answers in spec.reads


def test_every_fact_the_plans_read_is_in_the_vocabulary_and_typed_as_specified() -> None:
    knowledge = load_knowledge()
    read = {n for plan in knowledge.plans.values() for v, n in plan.reads if v == "facts"}
    assert read <= VOCABULARY.names
    planner = Planner(knowledge)
    for vignette in load_vignettes():
        bundle = vignette_bundle(vignette["id"])
        resources = [e["resource"] for e in bundle["entry"]]
        at = date.fromisoformat(vignette["evaluation_date"])
        facts = planner.facts(resources[0], resources[1:], at)
        for name, spec in VOCABULARY.specs.items():
            assert isinstance(facts.vector()[name], TYPES[spec.type]), (vignette["id"], name)


def test_a_patient_without_oi_reads_nothing_and_has_every_fact() -> None:
    facts = VOCABULARY.without_oi(AT, "Patient/p1")
    assert set(facts.vector()) == VOCABULARY.names
    assert facts.vector()["oi"] is False
    assert not facts.evidence
    assert not facts.notes
