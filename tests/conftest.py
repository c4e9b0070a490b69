from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.plan_builder import Knowledge, Planner, PlanResult, load_knowledge
from services.plan_builder.orders import OrderChecker
from tests.node_tools import HL7, Hl7Tools, npm_installed

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


@pytest.fixture
def anyio_backend() -> str:
    """The async tests (anyio's plugin) run on asyncio, as uvicorn does."""
    return "asyncio"


def vignette_export_resources() -> list[dict[str, Any]]:
    """Every vignette's resources as a Bulk Data export holds them: patients referred to as
    Patient/<id> (the Bundles use urn:uuid fullUrls)."""
    resources: list[dict[str, Any]] = []
    for path in sorted((VIGNETTES / "bundles").glob("*.json")):
        doc = json.loads(path.read_text())
        text = json.dumps(doc)
        for entry in doc["entry"]:
            if entry["resource"]["resourceType"] == "Patient":
                pid = entry["resource"]["id"]
                text = text.replace(f'"urn:uuid:{pid}"', f'"Patient/{pid}"')
        resources.extend(entry["resource"] for entry in json.loads(text)["entry"])
    return resources


def append_ndjson(path: Path, *lines: str) -> None:
    with path.open("a") as fh:
        for line in lines:
            fh.write(line + "\n")


def write_export(folder: Path, resources: list[dict[str, Any]]) -> None:
    """One NDJSON file per resource type (appended to), as $export writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    for resource in resources:
        append_ndjson(folder / f"{resource['resourceType']}.ndjson", json.dumps(resource))


@pytest.fixture(scope="session")
def hl7() -> Hl7Tools:
    """HL7's R4 JSON Schema and fhirpath.js under Node.js; skips, saying why, without them."""
    why = npm_installed(HL7, "fhirpath")
    if why is not None:
        pytest.skip(f"HL7 R4 JSON Schema / fhirpath.js unavailable: {why}")
    return Hl7Tools()
