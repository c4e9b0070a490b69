"""The rule book: generated from the knowledge, with source attributes, evidence, codes and the
example patients' results computed when it is built; a missing attribute stops the build."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services import rulebook
from services.plan_builder import PlanSettings, load_knowledge
from services.plan_builder.facts import VOCABULARY
from services.plan_builder.knowledge import default_profiles_dir
from services.rulebook.diagram import svg
from services.rulebook.pdf import browser
from tests.conftest import load_vignettes

SOURCE = Path(__file__).parents[2] / "docs" / "clinical" / "oi-management-summary.md"


@pytest.fixture(scope="module")
def book() -> rulebook.Book:
    return rulebook.build(load_knowledge(), PlanSettings())


@pytest.fixture(scope="module")
def html(book: rulebook.Book) -> str:
    return rulebook.render_html(book, "2026-12-03")


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "fhir_profiles"
    shutil.copytree(default_profiles_dir(), folder, ignore=shutil.ignore_patterns("examples", "__*"))
    return folder


def _edit(folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
    path = folder / name
    return path, json.loads(path.read_text())


def test_every_rule_of_the_knowledge_has_its_section(book: rulebook.Book, html: str) -> None:
    knowledge = load_knowledge()
    actions = [*knowledge.management.actions, *knowledge.order_checks.actions]
    assert [r.action_id for r in book.rules] == [a.id for a in actions]
    ids = set(re.findall(r'id="([^"]+)"', html)) | set(re.findall(r"id='([^']+)'", html))
    # every card topic the service can send has its anchor (source.url is /knowledge#<topic>)
    topics = {a.key for a in actions} | {"careplan-summary", "checks-not-run"}
    assert topics <= ids
    for rule in book.rules:
        assert rule.when
        assert rule.quotes
        assert rule.citation
        section = html[html.index(f'id="{rule.anchor}"') :].split("</section>", 1)[0]
        for quote in rule.quotes:
            assert quote.replace("'", "&#x27;") in section or quote in section


def test_the_source_sentences_are_the_source_texts_own(book: rulebook.Book) -> None:
    text = re.sub(r"\s+", " ", SOURCE.read_text())
    for rule in book.rules:
        for quote in rule.quotes:
            assert re.sub(r"\s+", " ", quote) in text, (rule.key, quote)


def test_the_example_patients_are_computed_and_pass(book: rulebook.Book, html: str) -> None:
    assert book.examples is not None
    assert [x.id for x in book.examples] == [v["id"] for v in load_vignettes()]
    assert all(x.passed for x in book.examples)
    assert f"example patients: {len(book.examples)} of {len(book.examples)} pass now" in html
    for vignette in load_vignettes():
        for key in vignette["expected_keys"]:
            rule = next(r for r in book.rules if r.key == key)
            assert vignette["id"] in [x.id for x in rule.examples]


def test_the_site_thresholds_in_force_are_shown() -> None:
    settings = PlanSettings(recent_fracture_days=30, smallest_telescoping_rod_mm=3.5)
    made = rulebook.build(load_knowledge(), settings)
    fracture = made.rule("fracture-care")
    thresholds = {s: v for f in fracture.facts for s, _, v in f.thresholds}
    assert thresholds["recent_fracture_days"] == 30
    rod = made.rule("prophylactic-rod-telescoping")
    assert {s: v for f in rod.facts for s, _, v in f.thresholds}["smallest_telescoping_rod_mm"] == 3.5
    for spec in VOCABULARY.specs.values():
        assert set(spec.settings) <= set(PlanSettings.model_fields), spec.name


def test_source_attributes_come_from_the_artifacts(book: rulebook.Book) -> None:
    management = book.attributes[0]
    rows = dict(management.rows())
    assert rows["Knowledge version"] == load_knowledge().management.version
    assert rows["Funding source"] == "not stated in the source"  # no true value: said so
    assert "osteogenesis imperfecta" in rows["Intended patient population"]
    assert rows["Release date"] == "2026-11-25"


def test_a_new_recommendation_appears_with_its_attributes(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path, codes = _edit(folder, "CodeSystem-oi-recommendation.json")
    codes["concept"].append({"code": "walking-aids-review", "display": "Review walking aids"})
    path.write_text(json.dumps(codes))
    path, plan = _edit(folder, "PlanDefinition-oi-management.json")
    plan["action"].append(
        {
            "id": "walking-aids-review",
            "title": "Review walking aids",
            "description": "Review the patient's walking aids.",
            "code": [{"coding": [{"system": codes["url"], "code": "walking-aids-review"}]}],
            "condition": [
                {
                    "kind": "applicability",
                    "expression": {
                        "language": "text/fhirpath",
                        "expression": "%facts.oi and %facts.functionalStatus = 'with-aids'",
                        "description": "OI, walks with aids",
                    },
                }
            ],
            "documentation": [
                {
                    "type": "citation",
                    "display": "OI management summary (project source text), Orthopedic Management 1",
                    "extension": [
                        {
                            "url": "https://oi-cds.example.org/StructureDefinition/source-quote",
                            "valueString": "Orthotic treatment: orthosis, walking aids, wheelchairs",
                        }
                    ],
                }
            ],
        }
    )
    path.write_text(json.dumps(plan))
    made = rulebook.build(load_knowledge(folder), PlanSettings())
    page = rulebook.render_html(made, "2026-12-03")
    rule = made.rule("walking-aids-review")
    assert rule.when == "OI, walks with aids"
    assert [f.name for f in rule.facts] == ["oi", "functionalStatus"]
    assert "ambulatory-status-value" in rule.value_sets
    assert rule.withheld_when_unknown == ("functionalStatus",)
    assert 'id="walking-aids-review"' in page
    assert "No example patient is expected to get this rule." in page  # computed, never assumed
    assert "Intended use" in page


@pytest.mark.parametrize(
    ("element", "named"),
    [
        ("purpose", "'intended use' is missing (FHIR purpose)"),
        ("useContext", "'intended patient population' is missing (FHIR useContext focus)"),
        ("effectivePeriod", "'release date' is missing (FHIR effectivePeriod.start)"),
        ("usage", "'cautions' is missing (FHIR usage)"),
    ],
)
def test_a_missing_attribute_stops_the_build(tmp_path: Path, element: str, named: str) -> None:
    folder = _copy(tmp_path)
    path, plan = _edit(folder, "PlanDefinition-oi-order-checks.json")
    del plan[element]
    path.write_text(json.dumps(plan))
    with pytest.raises(
        rulebook.RuleBookError,
        match=re.escape(f"PlanDefinition/oi-order-checks: the source attribute {named}"),
    ):
        rulebook.build(load_knowledge(folder), PlanSettings())


def test_a_quote_that_is_not_in_the_source_text_stops_the_build(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path, plan = _edit(folder, "PlanDefinition-oi-management.json")
    plan["action"][0]["documentation"][0]["extension"][0]["valueString"] = "Avoid all sports."
    path.write_text(json.dumps(plan))
    with pytest.raises(
        rulebook.RuleBookError, match=re.escape("source-quote is not in the source text: 'Avoid all sports.'")
    ):
        rulebook.build(load_knowledge(folder), PlanSettings())


def test_what_changed_is_listed_against_a_previous_version(tmp_path: Path) -> None:
    old = _copy(tmp_path)
    path, vs = _edit(old, "ValueSet-drug-not-approved.json")
    vs["compose"]["include"][-1]["concept"].pop()
    path.write_text(json.dumps(vs))
    path, plan = _edit(old, "PlanDefinition-oi-management.json")
    plan["version"] = "1.0.0"
    plan["action"][0]["condition"][0]["expression"]["expression"] = (
        "%facts.oi and %facts.severity = 'moderate'"
    )
    path.write_text(json.dumps(plan))
    made = rulebook.build(load_knowledge(), PlanSettings(), rulebook.Sources(previous=old))
    diff = "\n".join(made.artifact_diff)
    assert "Osteogenesis imperfecta management: version 1.0.0 -> " in diff
    assert "activity-guidance-mild: condition changed" in diff
    assert "ValueSet drug-not-approved: added http://www.nlm.nih.gov/research/umls/rxnorm|" in diff
    assert made.changes.startswith("## ")  # the changelog's sections for the versions in force


def test_the_diagram_links_every_rule(book: rulebook.Book) -> None:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz is not installed (`make test` installs Debian's graphviz when run as root)")
    drawn = svg(book.rules)
    assert drawn is not None
    assert drawn.startswith("<svg")
    for rule in book.rules:
        assert f'xlink:href="#{rule.anchor}"' in drawn


def test_the_cli_writes_html_and_a_pdf_that_reads(tmp_path: Path) -> None:
    if browser() is None or shutil.which("pdftoppm") is None:
        pytest.skip("Chromium or poppler-utils is not installed (`make test` installs both when run as root)")
    done = subprocess.run(
        [str(Path(".venv/bin/oi-cds").resolve()), "rulebook", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pdf = tmp_path / "rulebook.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    subprocess.run(
        ["pdftoppm", "-png", "-r", "30", "-f", "1", "-l", "2", str(pdf), str(tmp_path / "p")], check=True
    )
    assert sorted(p.name for p in tmp_path.glob("p-*.png")) == ["p-01.png", "p-02.png"]
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "OI-CDS rule book" in text
    assert "Source attributes" in text


def test_the_cli_says_why_the_book_cannot_be_built(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    path, plan = _edit(folder, "PlanDefinition-oi-management.json")
    del plan["purpose"]
    path.write_text(json.dumps(plan))
    done = subprocess.run(
        [
            str(Path(".venv/bin/oi-cds").resolve()),
            "rulebook",
            "--out",
            str(tmp_path / "o"),
            "--knowledge",
            str(folder),
            "--no-pdf",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "the source attribute 'intended use' is missing" in done.stderr
    assert not (tmp_path / "o" / "rulebook.html").exists()
