"""Demo mode: synthetic patients, a read-only FHIR API over them, and the hooks reading it."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from services.cds_hooks.demo import DemoStore
from services.plan_builder import Planner
from tests.cds_hooks.cds_rules import assert_conformant_response, careplan_keys
from tests.cds_hooks.conftest import hook_request

# Each demo patient's expected recommendation keys (today, whatever the day: dates move).
EXPECTED = {
    "demo-ada": {"activity-guidance-mild"},
    "demo-ben": {"activity-guidance-mild", "fracture-care"},
    "demo-cai": {
        "rehabilitation",
        "orthopedic-evaluation",
        "mobility-support",
        "bisphosphonate-therapy",
        "rod-osteotomy-bowing",
        "deformity-correction-child",
        "prophylactic-rod-non-telescoping",
        "fracture-care",
    },
    "demo-dee": {
        "rehabilitation",
        "orthopedic-evaluation",
        "bisphosphonate-therapy",
        "prophylactic-rod-telescoping",
    },
    "demo-eli": {"rehabilitation", "orthopedic-evaluation", "mobility-support", "bisphosphonate-therapy"},
    "demo-fay": {
        "rehabilitation",
        "orthopedic-evaluation",
        "mobility-support",
        "bisphosphonate-therapy",
        "fracture-care",
        "prophylactic-rod-telescoping",
    },
    "demo-gus": {
        "rehabilitation",
        "orthopedic-evaluation",
        "mobility-support",
        "rod-osteotomy-bowing",
        "deformity-correction-young-adult",
    },
    "demo-hal": {
        "rehabilitation",
        "orthopedic-evaluation",
        "mobility-support",
        "bisphosphonate-therapy",
        "spine-deformity",
    },
    "demo-ivy": {"rehabilitation", "orthopedic-evaluation", "basilar-invagination"},
    "demo-jo": {"activity-guidance-mild", "spinal-fracture"},
    "demo-kit": {"rehabilitation", "orthopedic-evaluation", "bisphosphonate-continue"},
    "demo-lou": set(),
    "demo-max": set(),
}


@pytest.mark.parametrize("today", [date(2026, 1, 1), date(2027, 7, 15)])
@pytest.mark.parametrize("pid", sorted(EXPECTED))
def test_demo_patient_keys_stay_true_on_any_day(pid: str, today: date, planner: Planner) -> None:
    store = DemoStore(today)
    resources = [r for rtype in store.resources for r in store.search(rtype, pid)]
    result = planner.plan(store.patients[pid], resources, today)
    assert set(result.keys) == EXPECTED[pid], store.summaries[pid]


def test_demo_data_is_obviously_synthetic() -> None:
    store = DemoStore(date(2026, 1, 1))
    assert len(store.patients) >= 12
    assert sum(1 for k in EXPECTED.values() if not k) == 2  # two patients without OI
    for patient in store.patients.values():
        assert patient["name"][0]["family"].startswith("Demo-")
        assert patient["identifier"][0]["system"] == "https://oi-cds.example.org/demo-patient"


def _get(service: str, path: str) -> Any:
    response = httpx.get(service + "/demo-fhir" + path, headers={"Origin": "http://localhost:8080"})
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["access-control-allow-origin"] == "*"
    return response


def test_demo_fhir_api(service: str) -> None:
    assert _get(service, "/metadata").json()["resourceType"] == "CapabilityStatement"
    listing = _get(service, "/Patient?_count=5").json()
    assert listing["total"] >= 12
    assert len(listing["entry"]) == 5
    next_url = next(link["url"] for link in listing["link"] if link["relation"] == "next")
    assert httpx.get(next_url).json()["entry"][0]["resource"]["resourceType"] == "Patient"
    assert _get(service, "/Patient/demo-cai").json()["id"] == "demo-cai"
    conditions = _get(service, "/Condition?patient=demo-cai&_count=2").json()
    assert conditions["total"] == 4
    assert any(link["relation"] == "next" for link in conditions["link"])
    for bad, status in (
        ("/Patient/nobody", 404),
        ("/Encounter?patient=demo-cai", 404),
        ("/Condition", 400),
        ("/Condition?patient=demo-cai&_count=zero", 400),
    ):
        assert _get(service, bad).status_code == status


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_hooks_read_the_demo_fhir_server(service: str, host: str) -> None:
    base = service.replace("127.0.0.1", host)
    body = hook_request("patient-view", "demo-cai", None, fhirServer=f"{base}/demo-fhir")
    response = httpx.post(base + "/cds-services/oi-management", json=body)
    assert response.status_code == 200, response.text
    assert_conformant_response(response.json())
    assert careplan_keys(response.json()) == EXPECTED["demo-cai"]


def test_demo_fhir_post_search_and_care_plans(service: str) -> None:
    """What the CDS Hooks Sandbox sends: POST _search (form-encoded) and a CarePlan search."""
    response = httpx.post(service + "/demo-fhir/Condition/_search", data={"patient": "demo-cai"})
    assert response.json()["total"] == 4
    care_plans = httpx.get(service + "/demo-fhir/CarePlan?patient=demo-cai&instantiates-canonical=x").json()
    assert care_plans["total"] == 0
