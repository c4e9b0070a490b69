"""Schema-driven fuzzing of the service's own OpenAPI (bounded here; a longer run in docs/security.md),
and hypothesis-made JSON bodies on every POST endpoint: never a 5xx, never a hang."""

from __future__ import annotations

import json
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.core.result import Err, Ok


def test_openapi_operations_never_fail_with_5xx(service: str) -> None:
    """Every operation of /openapi.json, with cases schemathesis derives from it."""
    schema = schemathesis.openapi.from_url(service + "/openapi.json")
    results = list(schema.get_all_operations())
    assert all(isinstance(r, Ok) for r in results), [r.err() for r in results if isinstance(r, Err)]
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) >= 7  # health x2, discovery, hook, feedback, admin, metrics

    for operation in operations:

        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(base_url=service, timeout=10)
            assert response.status_code < 500, (
                f"{case.method} {case.path}: {response.status_code} {response.text[:300]}"
            )

        check()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=30,
)
HOOKISH = st.fixed_dictionaries(
    {
        "hook": st.sampled_from(["patient-view", "order-select", "order-sign", "x"]),
        "hookInstance": st.text(max_size=8),
    },
    optional={
        "context": st.dictionaries(
            st.sampled_from(["patientId", "userId", "draftOrders", "selections"]), JSON
        ),
        "prefetch": st.dictionaries(
            st.sampled_from(["patient", "conditions", "observations", "medications", "carePlans"]), JSON
        ),
        "fhirServer": st.text(max_size=30),
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=JSON | HOOKISH,
    target=st.sampled_from(["oi-management", "oi-order-select", "oi-order-sign"]),
    feedback=st.booleans(),
)
def test_random_json_bodies(service: str, body: Any, target: str, feedback: bool) -> None:
    url = f"{service}/cds-services/{target}" + ("/feedback" if feedback else "")
    content = json.dumps(body)
    response = httpx.post(url, content=content, headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code in {200, 400, 412}, response.text[:300]
    if response.status_code != 200:
        assert response.json()["resourceType"] == "OperationOutcome"


RESOURCEISH = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Parameters", "Bundle", "Patient", "Condition", "Observation", "x"])},
    optional={
        "id": st.text(max_size=10),
        "entry": st.lists(
            st.fixed_dictionaries({}, optional={"resource": JSON, "fullUrl": JSON}), max_size=4
        ),
        "parameter": st.lists(
            st.dictionaries(st.sampled_from(["name", "resource", "valueString"]), JSON), max_size=3
        ),
        "subject": JSON,
        "code": JSON,
        "birthDate": JSON,
    },
)


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=RESOURCEISH | JSON, ndjson=st.booleans(), extra=st.lists(RESOURCEISH | JSON, max_size=5))
def test_random_apply_bodies(service: str, body: Any, ndjson: bool, extra: list[Any]) -> None:
    url = service + "/fhir/PlanDefinition/oi-management/$apply"
    if ndjson:
        content = "\n".join(json.dumps(item) for item in [body, *extra])
        response = httpx.post(
            url, content=content, headers={"Content-Type": "application/fhir+ndjson"}, timeout=10
        )
        assert response.status_code == 200
        for line in response.text.splitlines():
            assert json.loads(line)["resourceType"] in {"CarePlan", "OperationOutcome"}
        return
    response = httpx.post(
        url, content=json.dumps(body), headers={"Content-Type": "application/fhir+json"}, timeout=10
    )
    assert response.status_code in {200, 400, 422}, response.text[:300]
    assert response.json()["resourceType"] in {"CarePlan", "Bundle", "OperationOutcome"}
