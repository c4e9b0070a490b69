"""The FHIR face: knowledge artifacts and $apply (Parameters, Bundle, NDJSON stream)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from services.plan_builder.knowledge import default_profiles_dir
from tests.cds_hooks.conftest import example_bundle

FHIR_JSON = {"Content-Type": "application/fhir+json"}
APPLY = "/fhir/PlanDefinition/oi-management/$apply"


def _valid(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_metadata_and_artifacts(service: str) -> None:
    capability = httpx.get(service + "/fhir/metadata")
    assert capability.headers["content-type"].startswith("application/fhir+json")
    _valid(capability.json())
    plan = httpx.get(service + "/fhir/PlanDefinition/oi-management").json()
    assert plan == json.loads((default_profiles_dir() / "PlanDefinition-oi-management.json").read_text())
    assert httpx.get(service + "/fhir/PlanDefinition").json()["total"] == 2
    for path in (
        "/fhir/ActivityDefinition/fracture-care",
        "/fhir/CodeSystem/oi-recommendation",
        "/fhir/ValueSet/oi-condition",
        "/fhir/StructureDefinition/oi-careplan",
    ):
        _valid(httpx.get(service + path).json())
    for missing in ("/fhir/PlanDefinition/nope", "/fhir/Patient/1"):
        response = httpx.get(service + missing)
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"


def _parameters(subject: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    parameters = [
        {"name": "subject", "valueReference": {"reference": subject}},
        {"name": "data", "resource": data},
    ]
    parameters += [{"name": k, "valueDate": v} for k, v in extra.items()]
    return {"resourceType": "Parameters", "parameter": parameters}


def test_apply_parameters_one_patient(service: str) -> None:
    body = _parameters("Patient/oi-type-iii-child", example_bundle(), evaluationDate="2026-06-01")
    careplan = httpx.post(service + APPLY, json=body, headers=FHIR_JSON).json()
    _valid(careplan)
    assert careplan["created"] == "2026-06-01"
    expected = json.loads(
        (default_profiles_dir() / "examples" / "CarePlan-example-oi-type-iii-child.json").read_text()
    )
    assert careplan == expected
    no_oi = httpx.post(
        service + APPLY, json=_parameters("Patient/no-oi-fractures", example_bundle()), headers=FHIR_JSON
    )
    assert no_oi.json()["issue"][0]["severity"] == "information"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": "Group/1"}]}, 400),
        ({"resourceType": "Parameters", "parameter": [{"name": "subject", "valueString": "Patient/x"}]}, 400),
        ({"resourceType": "Patient"}, 400),
        ([1, 2], 400),
    ],
)
def test_apply_bad_input(service: str, body: Any, status: int) -> None:
    response = httpx.post(service + APPLY, json=body, headers=FHIR_JSON)
    assert response.status_code == status
    assert response.json()["resourceType"] == "OperationOutcome"


def test_apply_content_type_size_and_strict(service: str) -> None:
    assert (
        httpx.post(service + APPLY, content=b"{}", headers={"Content-Type": "text/plain"}).status_code == 415
    )
    assert httpx.post(service + APPLY, content=b"{oops", headers=FHIR_JSON).status_code == 400
    huge = httpx.post(service + APPLY, content=b"[" + b"1," * 1_100_000 + b"1]", headers=FHIR_JSON)
    assert huge.status_code == 413
    data = example_bundle()
    data["entry"][1]["resource"]["notAnElement"] = True  # tolerated unless strict
    lenient = httpx.post(
        service + APPLY, json=_parameters("Patient/oi-type-iii-child", data), headers=FHIR_JSON
    )
    assert lenient.json()["resourceType"] == "CarePlan"
    strict = httpx.post(
        service + APPLY + "?strict=true",
        json=_parameters("Patient/oi-type-iii-child", data),
        headers=FHIR_JSON,
    )
    assert strict.status_code == 422


def test_apply_bundle_of_many_patients(service: str) -> None:
    bundle = example_bundle()
    bundle["entry"].append({"resource": {"resourceType": "Patient", "id": "broken", "birthDate": "soon"}})
    out = httpx.post(service + APPLY + "?evaluationDate=2026-06-01", json=bundle, headers=FHIR_JSON).json()
    _valid(out)
    kinds = [
        (e["resource"]["resourceType"], e["resource"].get("issue", [{}])[0].get("severity"))
        for e in out["entry"]
    ]
    assert kinds == [
        ("CarePlan", None),
        ("CarePlan", None),
        ("OperationOutcome", "information"),
        ("OperationOutcome", "error"),
    ]


def _ndjson(resources: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in resources)


def test_apply_ndjson_stream(service: str) -> None:
    resources = [e["resource"] for e in example_bundle()["entry"]]
    lines = _ndjson(resources) + b"{not json}\n"  # a bad line: the last patient's entry becomes an error
    lines += _ndjson(
        [
            {"resourceType": "Patient", "id": "late"},
            {
                "resourceType": "Condition",
                "id": "c",
                "subject": {"reference": "Patient/elsewhere"},
                "code": {"text": "x"},
            },
        ]
    )
    response = httpx.post(
        service + APPLY + "?evaluationDate=2026-06-01",
        content=lines,
        headers={"Content-Type": "application/fhir+ndjson"},
    )
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    out = [json.loads(line) for line in response.text.splitlines()]
    assert [o["resourceType"] for o in out] == [
        "CarePlan",
        "CarePlan",
        "OperationOutcome",
        "OperationOutcome",
        "OperationOutcome",
    ]
    assert out[2]["issue"][0]["severity"] == "error"  # no-oi-fractures + the bad line
    assert "line" in out[2]["issue"][-1]["diagnostics"]
    assert "does not refer to the Patient" in out[3]["issue"][0]["diagnostics"]
    assert out[4]["issue"][0]["severity"] == "information"  # 'late' has no OI


def test_fhir_face_needs_no_token_in_demo_but_is_guarded(service: str) -> None:
    # (with auth required, test_auth.py's guard test covers /fhir like every route)
    assert httpx.get(service + "/fhir/metadata").status_code == 200


def test_large_ndjson_stream_with_a_client_that_sends_everything_first(service: str) -> None:
    """Most clients write the whole body before reading: the answer must not block on them."""
    from tests.plan_builder.test_stream import _lines

    body = b"".join(line + b"\n" for line in _lines(3_000))  # answers far beyond socket buffers
    response = httpx.post(
        service + APPLY + "?evaluationDate=2026-06-01",
        content=body,
        timeout=60,
        headers={"Content-Type": "application/fhir+ndjson"},
    )
    assert response.status_code == 200
    assert len(response.text.splitlines()) == 3_000
