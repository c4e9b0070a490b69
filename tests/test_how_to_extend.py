"""docs/how-to-extend.md, executed: its JSON and Python blocks, written into a copy of the
knowledge, give a working recommendation on a new Observation fact with no change under
services/cds_hooks/ (the HTTP face's prefetch and card code run unchanged on the result)."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.cds_hooks.cards import patient_view_cards
from services.cds_hooks.prefetch import prefetch_keys
from services.plan_builder import Planner, load_knowledge
from services.plan_builder.canonical import RECOMMENDATION_SYSTEM
from services.plan_builder.errors import KnowledgeError
from services.plan_builder.facts import VOCABULARY, FactSpec
from services.plan_builder.knowledge import default_profiles_dir
from services.plan_builder.site import unavailable
from services.plan_builder.strict import validate_strict
from tests.cds_hooks.cds_rules import assert_conformant_response
from tests.fhir_builders import condition, patient

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "how-to-extend.md"
AT = date(2026, 6, 1)
EXAMPLE = "https://oi-cds.example.org/CodeSystem/how-to-example"
_BLOCK = re.compile(r"^```(\w+)(?: (\w+)=(\S+))?\n(.*?)^```$", re.S | re.M)


def _blocks() -> list[tuple[str, str | None, str | None, str]]:
    return [(m[1], m[2] or None, m[3] or None, m[4]) for m in _BLOCK.finditer(PAGE.read_text())]


def _knowledge_from_page(folder: Path) -> FactSpec:
    """Apply the page's steps to a copy of fhir_profiles/; return the spec its Python defines."""
    shutil.copytree(default_profiles_dir(), folder, ignore=shutil.ignore_patterns("examples", "*.py"))
    spec: FactSpec | None = None
    for language, kind, target, body in _blocks():
        if language == "python":
            namespace: dict[str, Any] = {}
            exec(compile(body, str(PAGE), "exec"), namespace)
            spec = next(v for v in namespace.values() if isinstance(v, FactSpec))
        elif kind == "file":
            (folder / str(target)).write_text(body)
        elif kind in ("concept", "action"):
            path = folder / str(target)
            resource = json.loads(path.read_text())
            resource["concept" if kind == "concept" else "action"].append(json.loads(body))
            path.write_text(json.dumps(resource))
    assert spec is not None, "the page defines the fact's spec in a python block"
    return spec


def _observation(answer: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"example-{answer}",
        "status": "final",
        "code": {"coding": [{"system": EXAMPLE, "code": "example-question"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-05-01",
        "valueCodeableConcept": {"coding": [{"system": EXAMPLE, "code": answer}]},
    }


def test_the_page_holds_every_step() -> None:
    kinds = [(language, kind) for language, kind, _, _ in _blocks()]
    assert kinds.count(("json", "file")) == 3  # two ValueSets, one ActivityDefinition
    assert ("json", "concept") in kinds
    assert ("json", "action") in kinds
    assert ("python", None) in kinds


def test_a_recommendation_on_a_new_observation_fact_needs_no_change_in_the_http_face(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "fhir_profiles"
    spec = _knowledge_from_page(folder)
    # without the spec the service does not start: no rule runs on a fact without a reader
    with pytest.raises(KnowledgeError, match="exampleFinding"):
        load_knowledge(folder)
    knowledge = load_knowledge(folder, vocabulary=VOCABULARY.with_facts(spec))
    planner = Planner(knowledge)
    child, oi = patient(birth="2018-01-01"), condition("oi-type-3")

    result = planner.plan(child, [oi, _observation("present")], AT, patient_ref="Patient/p1", validate=True)
    assert "how-to-example" in result.keys
    rec = next(r for r in result.recommendations if r.key == "how-to-example")
    assert "example finding present" in rec.reasons
    assert "Observation/example-present" in rec.evidence
    assert result.careplan is not None
    validate_strict(result.careplan)
    codes = [c["code"] for a in result.careplan["activity"] for c in a["detail"]["code"]["coding"]]
    assert "how-to-example" in codes

    for record in ([oi, _observation("absent")], [oi]):
        assert "how-to-example" not in planner.plan(child, record, AT).keys

    # the HTTP face, unchanged: its own card, listed in the summary, asked for in the prefetch
    cards = patient_view_cards(result, [], [], planner.plan_definition.version)
    assert_conformant_response({"cards": cards})
    own = [
        c
        for c in cards
        if c["source"]["topic"]
        == {
            "system": RECOMMENDATION_SYSTEM,
            "code": "how-to-example",
            "display": "How-to example recommendation",
        }
    ]
    assert len(own) == 1
    assert own[0]["indicator"] == "info"
    assert "(how-to-example)" in cards[0]["detail"]
    template = next(k.template for k in prefetch_keys(knowledge) if k.key == "observations")
    assert "how-to-example|example-question" in template.replace("%3A", ":").replace("%2F", "/")
    # a site that maps nothing to the question is told the fact is unobtainable there
    labels = [
        label
        for label, _ in unavailable(
            knowledge.site, knowledge.terminology, knowledge.vocabulary.observation_facts
        )
    ]
    assert "example finding" in labels


def test_the_order_check_walkthrough_names_a_test_that_exists() -> None:
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", PAGE.read_text())
    assert named
    for path, name in named:
        assert f"def {name}(" in (ROOT / path).read_text(), f"{path}::{name} named by the page"
