"""Hardening round 2 (issue 16): each finding reproduced as a test, against a real uvicorn
where it can be (respx only for the remote FHIR server's tricks)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from services.cds_hooks.card_ids import KeyDecoder, issue
from services.cds_hooks.fhir_client import FhirClient, FhirFetchError, allowed, normalize_url
from tests.cds_hooks.conftest import example_bundle, hook_request, prefetch_of
from tests.cds_hooks.test_feedback import _count, _feedback, _summary

TENANT = "https://ehr.example.org/fhir/tenantA"
PID = "oi-type-iii-child"


@pytest.fixture
async def client() -> AsyncIterator[FhirClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.5), follow_redirects=False) as http:
        yield FhirClient(http, [TENANT], max_pages=3, max_bytes=50_000)


# 1. the token must not leave the allow-listed path prefix
@pytest.mark.parametrize(
    "url",
    [
        f"{TENANT}/../tenantB/Condition",
        f"{TENANT}/%2e%2e/tenantB/Condition",
        f"{TENANT}/%2E%2E/tenantB/Condition",
        f"{TENANT}/.%2e/tenantB/Condition",
        f"{TENANT}/x%2f..%2f..%2ftenantB",
        f"{TENANT}/x%5c..%5ctenantB",
        f"{TENANT}/x\\..\\tenantB",
        f"{TENANT}B/Condition",
        f"{TENANT}/Condition\x7f",
    ],
)
def test_urls_that_climb_out_of_the_prefix_are_not_allowed(url: str) -> None:
    assert not allowed(url, [TENANT])


def test_unreserved_escapes_are_decoded_before_the_check() -> None:
    assert allowed(f"{TENANT}/P%61tient/1", [TENANT])
    assert normalize_url(f"{TENANT}/./Patient/%31") == f"{TENANT}/Patient/1"


@pytest.mark.anyio
async def test_a_next_link_with_dot_segments_never_carries_the_token(client: FhirClient) -> None:
    with respx.mock(assert_all_called=False) as mock:
        first = mock.get(f"{TENANT}/Condition").respond(
            json={
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": {"resourceType": "Condition", "id": "a"}}],
                "link": [{"relation": "next", "url": f"{TENANT}/../tenantB/Condition?page=2"}],
            }
        )
        other = mock.route(url__startswith="https://ehr.example.org/fhir/tenantB").respond(json={})
        with pytest.raises(FhirFetchError, match="outside the allow-listed"):
            await client.search(TENANT, "Condition?patient=Patient/1", "secret-token", "Condition")
        assert first.called
        assert not other.called


@pytest.mark.anyio
async def test_a_fhir_server_with_encoded_dots_is_not_used(client: FhirClient) -> None:
    assert not client.usable(f"{TENANT}/%2e%2e/tenantB")
    assert client.usable(TENANT)


# 4. card ids cannot be forged; the same instant written twice counts once
def test_a_minted_card_id_decodes_to_no_key() -> None:
    decoder = KeyDecoder(["fracture-care"])
    genuine = issue("fracture-care")
    assert decoder.key_of(genuine) == "fracture-care"
    forged = uuid.UUID(genuine).bytes[:10] + bytes(6)
    assert decoder.key_of(str(uuid.UUID(bytes=forged))) is None
    tampered = bytearray(uuid.UUID(genuine).bytes)
    tampered[5] ^= 1
    assert decoder.key_of(str(uuid.UUID(bytes=bytes(tampered)))) is None


def _a_card(service: str) -> dict[str, Any]:
    body = hook_request("patient-view", PID, prefetch_of(example_bundle(), PID))
    card: dict[str, Any] = httpx.post(f"{service}/cds-services/oi-management", json=body).json()["cards"][0]
    return card


def test_forged_feedback_does_not_move_a_rules_statistics(service: str) -> None:
    genuine = uuid.UUID(_a_card(service)["uuid"]).bytes
    forged = str(uuid.UUID(bytes=genuine[:10] + bytes(6)))
    before = _count(_summary(service), recommendation="careplan-summary", outcome="overridden")
    item = {"card": forged, "outcome": "overridden", "outcomeTimestamp": "2026-11-26T10:00:00Z"}
    assert _feedback(service, [item]).status_code == 200
    assert _count(_summary(service), recommendation="careplan-summary", outcome="overridden") == before


def test_the_same_instant_in_two_spellings_is_one_event(service: str) -> None:
    card = _a_card(service)["uuid"]
    items = [
        {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z"},
        {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00+00:00"},
        {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-27T11:00:00+01:00"},
    ]
    assert _feedback(service, items).json() == {"received": 3, "stored": 1}


# 14. feedback values are validated before the database (the same on SQLite and PostgreSQL)
@pytest.mark.parametrize(
    "item",
    [
        {"card": "x" * 65, "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z"},
        {"card": "a\x00b", "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z"},
        {
            "card": "c",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-27T10:00:00Z",
            "overrideReason": {"reason": {"system": ["x"], "code": "y"}},
        },
        {
            "card": "c",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-27T10:00:00Z",
            "overrideReason": {"reason": {"code": {"nested": 1}}},
        },
        {
            "card": "c",
            "outcome": "overridden",
            "outcomeTimestamp": "2026-11-27T10:00:00Z",
            "overrideReason": {"reason": {"code": "c" * 65}},
        },
        {
            "card": "c",
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "s" * 129}],
            "outcomeTimestamp": "2026-11-27T10:00:00Z",
        },
    ],
    ids=["long-card", "nul", "system-list", "code-object", "long-code", "long-suggestion"],
)
def test_feedback_values_the_database_cannot_keep_are_a_400(item: dict[str, Any], service: str) -> None:
    response = _feedback(service, [item])
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


# 12 and 15: identifiers and URLs that are not what they claim
@pytest.mark.parametrize("patient_id", ["abc\n", "a" * 70_000, "../x", "a b", ""])
def test_a_patient_id_that_is_no_fhir_id_is_a_400(patient_id: str, service: str) -> None:
    body = hook_request("patient-view", patient_id, None, fhirServer="http://127.0.0.1:9/fhir")
    response = httpx.post(f"{service}/cds-services/oi-management", json=body)
    assert response.status_code == 400, response.text
    assert "patientId" in response.json()["issue"][0]["diagnostics"]


def test_a_resource_id_with_a_trailing_newline_is_invalid(service: str) -> None:
    prefetch = prefetch_of(example_bundle(), PID)
    prefetch["conditions"]["entry"][0]["resource"]["id"] += "\n"
    response = httpx.post(
        f"{service}/cds-services/oi-management", json=hook_request("patient-view", PID, prefetch)
    )
    assert response.status_code == 400
    assert "not a valid FHIR id" in response.json()["issue"][0]["diagnostics"]


def test_a_fhir_server_url_the_http_client_would_refuse_is_a_412_not_a_500(service: str) -> None:
    prefetch = prefetch_of(example_bundle(), PID)
    del prefetch["conditions"]
    body = hook_request("patient-view", PID, prefetch, fhirServer="http://127.0.0.1:9/fh\x7fir")
    response = httpx.post(f"{service}/cds-services/oi-management", json=body)
    assert response.status_code == 412, response.text


# 3. in demo mode the Host header must not choose what is fetched with the caller's token
def test_demo_mode_fetches_only_its_own_demo_server_whatever_the_host_header(
    service: str, fhir_stub: str
) -> None:
    stub_host = fhir_stub.removeprefix("http://").split("/")[0]  # another port on this machine
    prefetch = prefetch_of(example_bundle(), PID)
    del prefetch["conditions"]
    body = hook_request(
        "patient-view", PID, prefetch, fhirServer=f"http://{stub_host}/demo-fhir", fhirAuthorization=None
    )
    body.pop("fhirAuthorization")
    response = httpx.post(f"{service}/cds-services/oi-management", json=body, headers={"Host": stub_host})
    assert response.status_code == 412
    assert "no usable FHIR server" in response.json()["issue"][0]["diagnostics"]
    seen = httpx.get(fhir_stub.removesuffix("/fhir") + "/_seen").json()
    assert not any(s["path"].startswith("/demo-fhir") for s in seen)
    # its own demo server, by its bound address, is used
    own = hook_request("patient-view", "demo-cai", None, fhirServer=f"{service}/demo-fhir")
    assert httpx.post(f"{service}/cds-services/oi-management", json=own).status_code == 200


# 9. one absurd onsetAge must not break every hook call for that patient
@pytest.mark.parametrize(
    "age", [{"value": 1000000, "code": "a"}, {"value": 1e300, "code": "wk"}, {"value": 1e300, "code": "a"}]
)
def test_an_overflowing_onset_age_is_ignored_with_a_note(age: dict[str, Any], service: str) -> None:
    prefetch = prefetch_of(example_bundle(), PID)
    fracture = {
        "resourceType": "Condition",
        "id": "absurd-age",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "71620000"}]},
        "onsetAge": {**age, "system": "http://unitsofmeasure.org"},
        "subject": {"reference": f"Patient/{PID}"},
    }
    prefetch["conditions"]["entry"].append({"resource": fracture})
    response = httpx.post(
        f"{service}/cds-services/oi-management", json=hook_request("patient-view", PID, prefetch)
    )
    assert response.status_code == 200, response.text
    assert "onsetAge is out of any date range" in response.json()["cards"][0]["detail"]


# 11. mistyped $apply Parameters are a 400
APPLY = "/fhir/PlanDefinition/oi-management/$apply"


@pytest.mark.parametrize(
    ("parameters", "query"),
    [
        ({"parameter": 5}, ""),
        ({"parameter": ["x"]}, ""),
        ({"parameter": [{"name": "subject", "valueReference": "Patient/a"}]}, ""),
        ({"parameter": [{"name": "evaluationDate", "valueDate": 20260101}]}, ""),
        ({"parameter": [{"name": "evaluationDate", "valueDateTime": 5}]}, ""),
        ({"parameter": []}, "?evaluationDate=0001-01-01"),
    ],
    ids=[
        "parameter-number",
        "parameter-string",
        "reference-string",
        "date-number",
        "datetime-number",
        "year-1",
    ],
)
def test_mistyped_apply_parameters_are_a_400(parameters: dict[str, Any], query: str, service: str) -> None:
    body = {"resourceType": "Parameters", **parameters}
    response = httpx.post(
        f"{service}{APPLY}{query}", json=body, headers={"Content-Type": "application/fhir+json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["resourceType"] == "OperationOutcome"


# 13. a line nested deeper than any resource is that line's error, not the end of the stream
def test_a_deeply_nested_ndjson_line_is_one_error_line(service: str) -> None:
    patient = b'{"resourceType":"Patient","id":"p1","birthDate":"2015-01-01"}'
    deep = b"[" * 200_000 + b"]" * 200_000
    other = b'{"resourceType":"Patient","id":"p2","birthDate":"2015-01-01"}'
    condition = (
        b'{"resourceType":"Condition","id":"c2","code":{"coding":[{"system":"http://snomed.info/sct",'
        b'"code":"385483009"}]},"subject":{"reference":"Patient/p2"}}'
    )
    body = b"\n".join([patient, deep, other, condition]) + b"\n"
    response = httpx.post(
        f"{service}{APPLY}?evaluationDate=2026-06-01",
        content=body,
        headers={"Content-Type": "application/fhir+ndjson"},
        timeout=60,
    )
    assert response.status_code == 200
    lines = [json.loads(x) for x in response.text.splitlines() if x]
    assert len(lines) == 2
    assert lines[0]["resourceType"] == "OperationOutcome"
    assert "nested too deeply" in str(lines[0])
    assert lines[1]["resourceType"] == "CarePlan"
