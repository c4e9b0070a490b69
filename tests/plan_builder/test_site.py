"""Site terminology maps (OI_CDS_SITE_DIR): a hospital's own codes count as the project's.

The worked example (docs/site-example) is applied to every demo patient and shared vignette,
rewritten the way that invented hospital records them: the recommendations must not change.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.cds_hooks.demo import DemoStore
from services.plan_builder import Knowledge, Planner, load_knowledge
from services.plan_builder.bundle import split_bundle
from services.plan_builder.errors import KnowledgeError
from services.plan_builder.facts import OBSERVATION_FACTS
from services.plan_builder.orders import OrderChecker
from services.plan_builder.site import SiteError, unavailable
from tests.conftest import load_vignettes, vignette_bundle
from tests.fhir_builders import condition as c
from tests.fhir_builders import patient
from tests.shapes import SITE, SITE_DIR, site_codes

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / SITE_DIR
AT = date(2026, 6, 1)
VIGNETTES = [v for v in load_vignettes() if v["hook"] == "patient-view"]


@pytest.fixture(scope="module")
def site_knowledge() -> Knowledge:
    return load_knowledge(site_dir=EXAMPLE)


def _keys(planner: Planner, bundle: dict[str, Any], at: date) -> tuple[set[str], Any]:
    group = split_bundle(bundle).groups[0]
    result = planner.plan(group.patient, group.resources, at, patient_ref=group.ref, validate=True)
    return set(result.keys), result.facts


def _demo_bundles() -> list[tuple[str, dict[str, Any]]]:
    store = DemoStore(AT)
    out = []
    for pid in store.patients:
        resources = [store.patients[pid], *[r for t in store.resources for r in store.search(t, pid)]]
        out.append(
            (
                pid,
                {
                    "resourceType": "Bundle",
                    "type": "collection",
                    "entry": [{"resource": r} for r in resources],
                },
            )
        )
    return out


@pytest.mark.parametrize("maturity_as", ["boolean", "text"])
def test_demo_patients_in_local_codes_get_the_same_plan_through_the_site_map(
    maturity_as: str, planner: Planner, site_knowledge: Knowledge
) -> None:
    site_planner = Planner(site_knowledge)
    changed = 0
    for pid, bundle in _demo_bundles():
        clean, clean_facts = _keys(planner, bundle, AT)
        local = site_codes(bundle, maturity_as)
        keys, facts = _keys(site_planner, local, AT)
        assert keys == clean, pid
        assert (
            facts.functional_status,
            facts.skeletally_immature,
            facts.medullary_canal_diameter_mm,
        ) == pytest.approx(
            (
                clean_facts.functional_status,
                clean_facts.skeletally_immature,
                clean_facts.medullary_canal_diameter_mm,
            )
        ), pid
        # without the map the same records lose their function and maturity facts
        _, unmapped = _keys(planner, local, AT)
        changed += (unmapped.functional_status, unmapped.skeletal_maturity_source) != (
            clean_facts.functional_status,
            clean_facts.skeletal_maturity_source,
        )
    assert changed >= 3  # the demo has patients with ambulatory status and observed maturity


@pytest.mark.parametrize("vignette", VIGNETTES, ids=[v["id"] for v in VIGNETTES])
def test_every_vignette_in_local_codes(
    vignette: dict[str, Any], planner: Planner, site_knowledge: Knowledge
) -> None:
    at = date.fromisoformat(vignette["evaluation_date"])
    bundle = vignette_bundle(vignette["id"])
    keys, _ = _keys(Planner(site_knowledge), site_codes(bundle), at)
    assert set(vignette["expected_keys"]) <= keys
    assert not set(vignette["expected_absent"]) & keys
    assert keys == _keys(planner, bundle, at)[0]


def test_formulary_and_order_codes_map_to_drug_groups_and_rods(site_knowledge: Knowledge) -> None:
    checker, site_planner = OrderChecker(site_knowledge), Planner(site_knowledge)
    facts = site_planner.facts(patient(birth="2018-01-01"), [c("oi-type-3")], AT)
    denosumab = {
        "resourceType": "MedicationRequest",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": SITE + ".4", "code": "FORM-2001"}]},
    }
    rod = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": SITE + ".5", "code": "ORD-OR-311"}]},
    }
    assert checker.order_facts(denosumab, facts)["drugGroup"] == "drug-not-approved"
    assert checker.order_facts(rod, facts)["rodType"] == "telescoping"
    pamidronate = {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": SITE + ".4", "code": "FORM-1001"}]},
        "subject": {"reference": "Patient/p1"},
    }
    result = site_planner.plan(patient(birth="2018-01-01"), [c("oi-type-3"), pamidronate], AT)
    assert "bisphosphonate-continue" in result.keys


def test_a_narrower_mapping_does_not_count(tmp_path: Path) -> None:
    cmap = json.loads((EXAMPLE / "ConceptMap-example-site.json").read_text())
    cmap["group"][0]["element"][0]["target"][0]["equivalence"] = "narrower"
    (tmp_path / "map.json").write_text(json.dumps(cmap))
    knowledge = load_knowledge(site_dir=tmp_path)
    assert not knowledge.terminology.lookup(SITE + ".1", "FLO-7001")
    assert knowledge.terminology.lookup(SITE + ".1", "FLO-7002")


def _broken(tmp_path: Path, change: Any) -> Path:
    cmap = json.loads((EXAMPLE / "ConceptMap-example-site.json").read_text())
    change(cmap)
    (tmp_path / "map.json").write_text(json.dumps(cmap))
    return tmp_path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["group"][0].pop("source"), "group.source"),
        (lambda m: m["group"][0]["element"][0]["target"][0].update(code="walking"), "not a project concept"),
        (lambda m: m["group"][0].update(target="http://snomed.info/sct/none"), "not a system of the project"),
        (lambda m: m.update(resourceType="ValueSet"), "ConceptMaps only"),
        (lambda m: m.pop("url"), "canonical url"),
        (
            lambda m: m["group"][4]["element"][1]["target"][0]["extension"][0].update(valueDecimal=-1),
            "positive factor",
        ),
    ],
    ids=[
        "no-source",
        "unknown-target",
        "foreign-target-system",
        "not-a-conceptmap",
        "no-url",
        "bad-unit-factor",
    ],
)
def test_a_broken_site_map_stops_start_up_with_a_clear_message(
    change: Any, message: str, tmp_path: Path
) -> None:
    with pytest.raises(SiteError, match=message):
        load_knowledge(site_dir=_broken(tmp_path, change))


def test_missing_or_empty_site_directories_are_errors(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="does not exist"):
        load_knowledge(site_dir=tmp_path / "nowhere")
    with pytest.raises(KnowledgeError, match="no ConceptMap"):
        load_knowledge(site_dir=tmp_path)


def test_what_a_site_cannot_supply(knowledge: Knowledge, site_knowledge: Knowledge, tmp_path: Path) -> None:
    gaps = unavailable(knowledge.site, knowledge.terminology, OBSERVATION_FACTS)
    assert [label for label, _ in gaps] == [f.label for f in OBSERVATION_FACTS]  # no map: nothing
    assert unavailable(site_knowledge.site, site_knowledge.terminology, OBSERVATION_FACTS) == []
    shutil.copy(EXAMPLE / "ConceptMap-example-site.json", tmp_path / "map.json")
    cmap = json.loads((tmp_path / "map.json").read_text())
    cmap["group"] = [g for g in cmap["group"] if g["source"] != SITE + ".2"]  # no answer list
    (tmp_path / "map.json").write_text(json.dumps(cmap))
    partial = load_knowledge(site_dir=tmp_path)
    assert unavailable(partial.site, partial.terminology, OBSERVATION_FACTS) == [
        ("functional status (ambulatory status)", "no local answer is mapped to ambulatory-status-value")
    ]


def test_the_plan_says_once_which_facts_this_site_cannot_supply(
    planner: Planner, site_knowledge: Knowledge
) -> None:
    moderate = [c("oi-type-4")]
    notes = planner.plan(patient(birth="2018-01-01"), moderate, AT).notes
    site_notes = [n for n in notes if n.startswith("Not available at this site")]
    assert len(site_notes) == 1
    assert "functional status" in site_notes[0]
    assert "bone size" in site_notes[0]
    # a site that maps them says nothing of the kind
    assert not [
        n
        for n in Planner(site_knowledge).plan(patient(birth="2018-01-01"), moderate, AT).notes
        if "this site" in n
    ]
