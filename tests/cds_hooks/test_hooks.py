"""Hook calls against a real uvicorn: prefetch classes, FHIR fallback, 412, bad requests (S1-S18)."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.cds_hooks.cds_rules import assert_conformant_response, careplan_keys, keys_of
from tests.cds_hooks.conftest import example_bundle, hook_request, prefetch_of

PID = "oi-type-iii-child"


def _prefetch() -> dict[str, Any]:
    return prefetch_of(example_bundle(), PID)


def post(service: str, body: Any, service_id: str = "oi-management", **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{service}/cds-services/{service_id}", json=body, timeout=10, **kwargs)


def _outcome(response: httpx.Response) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


def test_patient_view_with_prefetch(service: str) -> None:
    response = post(service, hook_request("patient-view", PID, _prefetch()))
    assert response.status_code == 200  # S1
    body = response.json()
    assert_conformant_response(body)
    summary = body["cards"][0]
    assert summary["source"]["topic"]["code"] == "careplan-summary"
    assert summary["indicator"] == "info"
    action = summary["suggestions"][0]["actions"][0]
    assert action["type"] == "create"
    assert action["resource"]["resourceType"] == "CarePlan"
    assert action["resource"]["subject"] == {"reference": f"Patient/{PID}"}
    assert "rehabilitation" in careplan_keys(body)
    assert "**Rehabilitation program**" in summary["detail"]
    assert "_Source:_" in summary["detail"]


def test_careplan_on_file_current_or_stale(service: str) -> None:
    prefetch = _prefetch()
    first = post(service, hook_request("patient-view", PID, prefetch)).json()
    careplan = first["cards"][0]["suggestions"][0]["actions"][0]["resource"]
    on_file = {**careplan, "id": "plan-on-file", "status": "active"}
    prefetch["carePlans"] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": on_file}]}
    current = post(service, hook_request("patient-view", PID, prefetch)).json()
    assert "current" in current["cards"][0]["summary"]
    assert "suggestions" not in current["cards"][0]
    stale = copy.deepcopy(on_file)
    stale["activity"] = stale["activity"][:1]
    prefetch["carePlans"]["entry"] = [{"resource": stale}]
    body = post(service, hook_request("patient-view", PID, prefetch)).json()
    action = body["cards"][0]["suggestions"][0]["actions"][0]
    assert action["type"] == "update"
    assert action["resource"]["id"] == "plan-on-file"
    assert_conformant_response(body)


def test_patient_without_oi_gets_no_cards(service: str) -> None:
    prefetch = prefetch_of(example_bundle(), "no-oi-fractures")
    response = post(service, hook_request("patient-view", "no-oi-fractures", prefetch))
    assert response.json() == {"cards": []}  # S2


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda p: p.update(medicationStatements=None, carePlans=None), 200),  # S10 null = no data
        (
            lambda p: p.update(medications={"resourceType": "Bundle", "type": "searchset", "total": 0}),
            200,
        ),  # S11
        (lambda p: p.pop("observations"), 412),  # S9: missing key, no fhirServer
        (lambda p: p.update(conditions={"resourceType": "OperationOutcome", "issue": []}), 412),  # S12
        (lambda p: p["conditions"].update(link=[{"relation": "next", "url": "https://x/next"}]), 412),  # S13
        (lambda p: p.update(patient=None), 412),
        (lambda p: p.update(patient={"resourceType": "Condition", "id": "x"}), 400),
        (lambda p: p.update(conditions={"resourceType": "Patient", "id": PID}), 400),
        (lambda p: p.update(conditions=["not", "a", "bundle"]), 400),
        (lambda p: p["patient"].update(id="someone-else"), 400),
        (lambda p: p["patient"].update(birthDate="not-a-date"), 400),
    ],
)
def test_prefetch_classes(service: str, change: Any, status: int) -> None:
    prefetch = _prefetch()
    change(prefetch)
    response = post(service, hook_request("patient-view", PID, prefetch))
    assert response.status_code == status, response.text
    if status != 200:
        assert _outcome(response)
        assert "Example" not in response.text  # no patient data in errors
        assert "not-a-date" not in response.text
        assert "someone-else" not in response.text


def test_best_effort_keys_are_reported(service: str) -> None:
    prefetch = _prefetch()
    del prefetch["medicationStatements"]
    del prefetch["carePlans"]
    body = post(service, hook_request("patient-view", PID, prefetch)).json()
    detail = body["cards"][0]["detail"]
    assert "Could not be checked" in detail
    assert "medication statements" in detail
    assert "care plans on file" in detail


def test_prefetch_member_absent_gives_412_not_500(service: str) -> None:
    response = post(service, hook_request("patient-view", PID))  # S14
    assert response.status_code == 412
    assert "the patient" in _outcome(response)


def test_missing_keys_are_fetched_from_fhir_server(service: str, fhir_stub: str) -> None:
    prefetch = _prefetch()
    del prefetch["observations"]
    del prefetch["conditions"]
    body = hook_request(
        "patient-view",
        PID,
        prefetch,
        fhirServer=fhir_stub,
        fhirAuthorization={
            "access_token": "secret-token-123",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "oi-cds",
        },
    )
    response = post(service, body)
    assert response.status_code == 200, response.text  # S8
    assert "rehabilitation" in careplan_keys(response.json())
    seen = httpx.get(fhir_stub.removesuffix("/fhir") + "/_seen").json()
    mine = [s for s in seen if s["authorization"] == "Bearer secret-token-123"]
    assert {s["path"] for s in mine} == {"/fhir/Condition", "/fhir/Observation"}  # only the missing keys (S7)


def test_server_off_the_allowlist_is_never_contacted(service: str) -> None:
    prefetch = _prefetch()
    del prefetch["conditions"]
    response = post(
        service, hook_request("patient-view", PID, prefetch, fhirServer="http://169.254.169.254/fhir")
    )
    assert response.status_code == 412  # answered as if no server were given (T2)
    assert "no usable FHIR server" in _outcome(response)


@pytest.mark.parametrize(
    ("patient_id", "reason"),
    [
        ("status-500-x", "http-5xx"),
        ("status-401-x", "http-4xx"),
        ("status-404-x", "http-4xx"),
        ("slow-x", "timeout"),
        ("badjson-x", "not-json"),
        ("huge-x", "too-large"),
        ("wrongtype-x", "wrong-type"),
    ],
)
def test_fhir_server_failures_give_412(service: str, fhir_stub: str, patient_id: str, reason: str) -> None:
    """The 412 says which data could not be had, never how the server failed (that would tell a
    caller which ports answer); the operator sees the reason in the metrics."""
    prefetch = _prefetch()
    prefetch["patient"]["id"] = patient_id
    del prefetch["conditions"]
    before = _failures(service, reason)
    response = post(service, hook_request("patient-view", patient_id, prefetch, fhirServer=fhir_stub))
    assert response.status_code == 412
    assert _outcome(response) == (
        "required FHIR data could not be obtained: conditions: not obtainable from the FHIR server"
    )
    assert _failures(service, reason) == before + 1


def _failures(service: str, reason: str) -> float:
    for line in httpx.get(service + "/metrics").text.splitlines():
        if line.startswith(f'oi_cds_fhir_failures_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_unknown_members_and_extensions_are_tolerated(service: str) -> None:
    body = hook_request(
        "patient-view", PID, _prefetch(), extension={"org.example.x": {"a": 1}}, somethingNew=True
    )
    body["context"]["extension"] = {"org.example.y": True}
    assert post(service, body).status_code == 200  # S6


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"hookInstance": "x", "context": {"patientId": PID}}, "hook"),
        ({"hook": "patient-view", "context": {"patientId": PID}}, "hookInstance"),
        ({"hook": "patient-view", "hookInstance": "x"}, "context"),
        (
            {"hook": "order-sign", "hookInstance": "x", "context": {"patientId": PID}},
            "answers the 'patient-view' hook",
        ),
        ({"hook": "patient-view", "hookInstance": "x", "context": {"userId": "Practitioner/1"}}, "patientId"),
        (
            {
                "hook": "patient-view",
                "hookInstance": "x",
                "context": {"patientId": PID},
                "fhirAuthorization": {"access_token": "t"},
            },
            "fhirAuthorization requires fhirServer",
        ),  # S5
        ([1, 2, 3], "JSON object"),
        ({"hook": "patient-view", "hookInstance": "x", "context": "Patient/1"}, "context"),
    ],
)
def test_bad_requests_are_400(service: str, body: Any, words: str) -> None:
    response = post(service, body)
    assert response.status_code == 400  # S4, H1
    assert words in _outcome(response)


def test_http_errors_are_operation_outcomes(service: str) -> None:
    assert post(service, {}, "no-such-service").status_code == 404  # S3
    not_allowed = httpx.get(f"{service}/cds-services/oi-management")
    assert not_allowed.status_code == 405
    assert _outcome(not_allowed)
    bad_json = httpx.post(
        f"{service}/cds-services/oi-management",
        content=b"{oops",
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    assert "not valid JSON" in _outcome(bad_json)
    wrong_type = httpx.post(
        f"{service}/cds-services/oi-management", content=b"{}", headers={"content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    huge = httpx.post(
        f"{service}/cds-services/oi-management",
        content=b"[" + b"1," * 1_100_000 + b"1]",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert _outcome(huge)
    unknown = httpx.get(f"{service}/nowhere")
    assert unknown.status_code == 404
    assert _outcome(unknown)


# order hooks


def _draft(text: str, rid: str = "draft-1", rtype: str = "MedicationRequest") -> dict[str, Any]:
    field = "medicationCodeableConcept" if rtype == "MedicationRequest" else "code"
    return {
        "resourceType": rtype,
        "id": rid,
        "status": "draft",
        "intent": "order",
        field: {"text": text},
        "subject": {"reference": f"Patient/{PID}"},
    }


def test_order_select_looks_only_at_selections(service: str) -> None:
    drafts = [_draft("Denosumab 60 MG/ML", "d1"), _draft("Pamidronate 3 MG/ML", "d2")]
    body = hook_request("order-select", PID, _prefetch(), drafts=drafts, selections=["MedicationRequest/d2"])
    response = post(service, body, "oi-order-select")
    assert keys_of(response.json()) == {"order-bisphosphonate-supported"}  # S15
    sign = hook_request("order-sign", PID, _prefetch(), drafts=drafts)
    assert keys_of(post(service, sign, "oi-order-sign").json()) == {
        "order-bisphosphonate-supported",
        "order-not-approved",
    }


def test_order_not_approved_card(service: str) -> None:
    body = post(
        service,
        hook_request("order-sign", PID, _prefetch(), drafts=[_draft("Teriparatide 20 MCG")]),
        "oi-order-sign",
    ).json()
    assert_conformant_response(body)
    card = body["cards"][0]
    assert card["indicator"] == "warning"
    assert card["overrideReasons"]
    assert card["selectionBehavior"] == "at-most-one"
    delete = card["suggestions"][0]["actions"][0]
    assert delete == {
        "type": "delete",
        "description": "Remove the draft MedicationRequest/draft-1",
        "resourceId": "MedicationRequest/draft-1",
    }
    labels = [s["label"] for s in card["suggestions"]]
    assert "Propose IV pamidronate" in labels  # bisphosphonate-therapy holds for this child


def test_unknown_order_types_and_no_bundle_type(service: str) -> None:
    drafts = [
        {
            "resourceType": "MedicationOrder",
            "id": "order-123",
            "medicationCodeableConcept": {"text": "denosumab"},
        },
        {**_draft("Vitamin D3 1000 unit tablet"), "status": "active"},
    ]  # S16: non-draft tolerated
    body = post(service, hook_request("order-sign", PID, _prefetch(), drafts=drafts), "oi-order-sign").json()
    assert keys_of(body) == {"order-no-or-mixed-evidence"}
    assert not any(
        a["type"] == "delete" for c in body["cards"] for s in c.get("suggestions", []) for a in s["actions"]
    )


@pytest.mark.parametrize(
    ("context_change", "service_id"),
    [
        (lambda c: c.pop("selections"), "oi-order-select"),  # H2
        (lambda c: c.pop("draftOrders"), "oi-order-sign"),  # H3
        (lambda c: c.update(draftOrders={"resourceType": "Patient"}), "oi-order-sign"),
        (lambda c: c.update(selections="MedicationRequest/d1"), "oi-order-select"),
    ],
)
def test_order_context_errors(service: str, context_change: Any, service_id: str) -> None:
    hook = "order-select" if service_id == "oi-order-select" else "order-sign"
    body = hook_request(hook, PID, _prefetch(), drafts=[_draft("denosumab")])
    context_change(body["context"])
    assert post(service, body, service_id).status_code == 400
