"""One typical patient, parsed: facts + rules + CarePlan, against a JSON round trip baseline."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from benchmarks.conftest import VIGNETTES
from services.plan_builder import Planner, load_knowledge
from services.plan_builder.bundle import split_bundle

AT = date(2026, 6, 1)


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner(load_knowledge())


@pytest.fixture(scope="module")
def typical() -> tuple[str, Any]:
    # s04: type III child, bowing, two fractures, wheelchair, canal measured: 8 recommendations
    text = (VIGNETTES / "bundles" / "s04.bundle.json").read_text()
    group = split_bundle(json.loads(text)).groups[0]
    return text, group


@pytest.mark.benchmark(group="one-patient")
def test_baseline_json_round_trip(benchmark: Any, typical: tuple[str, Any]) -> None:
    text, _ = typical
    benchmark(lambda: json.dumps(json.loads(text)))


@pytest.mark.benchmark(group="one-patient")
def test_facts(benchmark: Any, planner: Planner, typical: tuple[str, Any]) -> None:
    _, g = typical
    benchmark(planner.facts, g.patient, g.resources, AT, g.ref)


@pytest.mark.benchmark(group="one-patient")
def test_plan_warm(benchmark: Any, planner: Planner, typical: tuple[str, Any]) -> None:
    _, g = typical
    result = benchmark(planner.plan, g.patient, g.resources, AT, g.ref)
    assert len(result.recommendations) == 8


@pytest.mark.benchmark(group="one-patient")
def test_plan_cold_rules(benchmark: Any, planner: Planner, typical: tuple[str, Any]) -> None:
    """Every round misses the outcome cache: all 16 FHIRPath conditions run."""
    _, g = typical
    cache = planner.plan_definition._cache

    def run() -> Any:
        cache.clear()
        return planner.plan(g.patient, g.resources, AT, g.ref)

    benchmark(run)


@pytest.mark.benchmark(group="one-patient")
def test_strict_model_validation(benchmark: Any, planner: Planner, typical: tuple[str, Any]) -> None:
    """What the hot path avoids: fhir.resources validation of the input and the CarePlan."""
    _, g = typical
    careplan = planner.plan(g.patient, g.resources, AT, g.ref).careplan
    resources = [g.patient, *g.resources, careplan]

    def run() -> None:
        for resource in resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)

    benchmark(run)
