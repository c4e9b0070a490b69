"""The population gap report of `oi-cds plan --ndjson-dir` (issue 15): its numbers against the
CarePlans written beside it and against each vignette planned on its own; the page in Chromium."""

from __future__ import annotations

import collections
import csv
import json
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.plan_builder import Planner, load_knowledge
from services.plan_builder.bundle import split_bundle
from services.plan_builder.structural import validate_resource
from tests.cds_hooks.test_browser import browser  # noqa: F401  (the Chromium fixture)
from tests.conftest import VIGNETTES, load_vignettes, vignette_export_resources, write_export

AT = "2026-06-01"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    export = tmp_path_factory.mktemp("export")
    write_export(export, vignette_export_resources())
    out = tmp_path_factory.mktemp("out")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "plan",
            "--at",
            AT,
            "--ndjson-dir",
            str(export),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_counts_per_recommendation_are_the_careplans(report: Path) -> None:
    careplans = [json.loads(line) for line in (report / "CarePlan.ndjson").read_text().splitlines()]
    expected: collections.Counter[str] = collections.Counter(
        a["detail"]["code"]["coding"][0]["code"] for c in careplans for a in c["activity"]
    )
    rows = {r["recommendation"]: int(r["patients"]) for r in _csv(report / "recommendations.csv")}
    assert rows == dict(expected)
    summary = json.loads((report / "summary.json").read_text())
    assert summary["recommendations"] == dict(sorted(expected.items()))
    assert summary["planned"] == len(careplans)
    assert summary["engine"] == "sqlite"
    assert summary["evaluatedOn"] == AT


def test_the_gaps_are_what_each_record_lacks(report: Path) -> None:
    planner = Planner(load_knowledge())
    expected = {}
    for path in sorted((VIGNETTES / "bundles").glob("*.json")):
        (group,) = split_bundle(json.loads(path.read_text()), validate_resource).groups
        result = planner.plan(group.patient, group.resources, date.fromisoformat(AT), patient_ref=group.ref)
        if result.careplan is None:
            continue
        lacking = {m.fact for m in result.facts.missing}
        covered = {name for m in result.facts.missing for name in m.affects}
        lacking |= {name for name, value in result.facts.vector().items() if value is None} - covered
        if lacking:
            expected[result.careplan["subject"]["reference"]] = sorted(lacking)
    rows = {r["patient"]: sorted(r["missing"].split(";")) for r in _csv(report / "gaps.csv")}
    assert rows == expected
    # the vignettes the contract gives missing-facts are among them, with what they lack
    ids = {v["id"] for v in load_vignettes() if "missing-facts" in v["expected_keys"]}
    assert ids
    assert len(ids) <= len(rows)
    per_fact = collections.Counter(f for facts in rows.values() for f in facts)
    summary = json.loads((report / "summary.json").read_text())
    assert summary["missingFacts"] == dict(sorted(per_fact.items()))
    assert {"birthDate", "severity", "functionalStatus"} <= set(per_fact)  # no ambulatory status


def test_the_page_opens_with_its_charts(report: Path, browser: Any) -> None:  # noqa: F811
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto((report / "gaps.html").as_uri())
    assert page.title() == "OI population gap report"
    charts = page.locator("svg.chart")
    assert charts.count() == 2
    bars = charts.nth(0).locator("rect[data-series]")
    drawn = {}
    for i in range(bars.count()):
        bar = bars.nth(i)
        assert (bar.bounding_box() or {}).get("width", 0) > 0  # drawn, not just in the markup
        drawn[bar.get_attribute("data-category")] = int(bar.get_attribute("data-value") or 0)
    assert drawn == {r["recommendation"]: int(r["patients"]) for r in _csv(report / "recommendations.csv")}
    gaps = page.locator("table.gaps tr").all_inner_texts()
    assert len(gaps) - 1 == len(_csv(report / "gaps.csv"))
    page.screenshot(path=str(Path(__file__).parents[1] / "docs" / "img" / "gaps.png"), full_page=True)
    page.close()
