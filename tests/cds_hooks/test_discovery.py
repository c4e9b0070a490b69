"""Discovery (checklist rows D1-D10) against a real uvicorn."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.cds_hooks.cds_rules import TOKEN, assert_no_empty

ALLOWED_TOKENS = {
    "context.patientId",
    "context.userId",
    "context.encounterId",
    "userPractitionerId",
    "userPractitionerRoleId",
    "userPatientId",
    "userRelatedPersonId",
}
EXPECTED = {"oi-management": "patient-view", "oi-order-select": "order-select", "oi-order-sign": "order-sign"}
PREFETCH_KEYS = {
    "patient",
    "conditions",
    "observations",
    "medications",
    "medicationStatements",
    "serviceRequests",
    "carePlans",
}


def test_discovery(service: str) -> None:
    response = httpx.get(service + "/cds-services")
    assert response.status_code == 200  # D1
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["services"], list)  # D2
    assert_no_empty(body)  # D8
    assert {s["id"]: s["hook"] for s in body["services"]} == EXPECTED  # D9, D10
    for service_entry in body["services"]:
        for field in ("hook", "description", "id", "title", "usageRequirements"):
            assert isinstance(service_entry[field], str)  # D3, D4
            assert service_entry[field]
        assert re.fullmatch(r"[A-Za-z0-9._~-]+", service_entry["id"])
        prefetch = service_entry["prefetch"]
        assert set(prefetch) == PREFETCH_KEYS  # D5
        for template in prefetch.values():
            assert set(TOKEN.findall(template)) <= ALLOWED_TOKENS  # D6
            path, _, query = template.partition("?")
            assert re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.patientId\}\})?", path)
            for name, _value in parse_qsl(query):
                # D7: the recommended subset; nothing filters away old or completed data
                assert name in {"patient", "code", "_include", "status", "_count", "_sort"}, name
                assert ":" not in name
            # only the plans on file and the active orders reviewed at patient-view are narrowed by
            # status: every fact reads completed and old data too
            if not path.startswith(("CarePlan", "ServiceRequest")):
                assert "status" not in dict(parse_qsl(query))
            assert urlsplit(template).scheme == ""
