from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.plan_builder import Knowledge, Planner, PlanResult, load_knowledge
from services.plan_builder.orders import OrderChecker

DATA = Path(__file__).parent / "data"
VIGNETTES = DATA / "vignettes"
AT = date(2026, 6, 1)


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return load_knowledge()


@pytest.fixture(scope="session")
def planner(knowledge: Knowledge) -> Planner:
    return Planner(knowledge)


@pytest.fixture(scope="session")
def checker(knowledge: Knowledge) -> OrderChecker:
    return OrderChecker(knowledge)


@pytest.fixture
def plan(planner: Planner):  # type: ignore[no-untyped-def]
    """plan(patient, *resources, at=AT) -> PlanResult"""

    def run(patient: dict[str, Any], *resources: dict[str, Any], at: date = AT) -> PlanResult:
        return planner.plan(patient, list(resources), at)

    return run


def load_vignettes() -> list[dict[str, Any]]:
    vignettes: list[dict[str, Any]] = json.loads((VIGNETTES / "vignettes.json").read_text())
    return vignettes


def vignette_bundle(vid: str) -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads((VIGNETTES / "bundles" / f"{vid}.bundle.json").read_text())
    return bundle
